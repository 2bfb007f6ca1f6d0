import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing

/// `GET /openapi.yaml` serves the document compiled into the binary, which must be the repository's
/// `openapi.yaml` (the single source of truth) byte for byte.
struct OpenAPIDocumentTests {
    /// `<repository>/openapi.yaml`, found from this file's path (Tests/OptimizerServerTests/Routes/).
    static let repositoryDocument = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("openapi.yaml")

    @Test func servesTheEmbeddedDocumentEqualToTheRepositorysFile() async throws {
        let expected = try Data(contentsOf: Self.repositoryDocument)
        // The default configuration (no OpenAPI path) reads no file: the document is in the binary.
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType] == "application/yaml")
            let served = Data(response.body.readableBytesView)
            #expect(
                served == expected,
                "the embedded document differs from \(Self.repositoryDocument.path): rebuild (SwiftPM embeds it at build time)"
            )
        }
    }
}
