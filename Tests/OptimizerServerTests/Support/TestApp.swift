import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import OptimizerServer
import OptimizerWire
import Testing

/// Builds the daemon's application for a test: the real `buildApplication`, quiet logs.
func makeApp(
    maxBodyBytes: Int = 1 << 30,
    adminToken: String? = nil,
    computeThreads: Int = 2,
    openAPIPath: String? = nil,
    tls: (certificate: String, key: String)? = nil,
    idleTimeout: Duration = .seconds(60),
    maxMemory: Int? = nil,
    stagedStepTTL: Duration = .seconds(600),
    logger: Logger? = nil
) throws -> some ApplicationProtocol {
    var quiet = Logger(label: "optimizerd-test")
    quiet.logLevel = .critical
    return try buildApplication(
        configuration: ServerConfiguration(
            host: "127.0.0.1", port: 0, maxBodyBytes: maxBodyBytes, adminToken: adminToken,
            tlsCertificatePath: tls?.certificate, tlsKeyPath: tls?.key, computeThreads: computeThreads, openAPIPath: openAPIPath,
            idleTimeout: idleTimeout, maxMemory: maxMemory.map { MemoryLimit(bytes: $0, source: "test") },
            stagedStepTTL: stagedStepTTL
        ),
        logger: logger ?? quiet
    )
}

/// A created session as the client sees it.
struct CreatedSession: Sendable {
    var id: String
    var token: String

    /// Reads a `201` answer to `POST /v1/sessions`.
    init(_ response: TestResponse) throws {
        #expect(response.status == .created, "\(String(buffer: response.body))")
        let object = try jsonObject(response)
        id = try #require(object["id"] as? String)
        token = try #require(object["token"] as? String)
        #expect(response.headers[.location] == "/v1/sessions/\(id)")
    }

    init(id: String, token: String) {
        self.id = id
        self.token = token
    }

    var path: String { "/v1/sessions/\(id)" }
    var auth: HTTPFields { [.authorization: "Bearer \(token)"] }
}

extension TestClientProtocol {
    /// `POST /v1/sessions` with a JSON body; expects 201.
    func createSession(_ json: String, headers: HTTPFields = [:]) async throws -> CreatedSession {
        try CreatedSession(try await execute(uri: "/v1/sessions", method: .post, headers: headers, body: ByteBuffer(string: json)))
    }

    /// `PUT …/parameters`; expects 200.
    func putParameters(_ session: CreatedSession, _ body: ByteBuffer) async throws {
        let response = try await execute(uri: session.path + "/parameters", method: .put, headers: session.auth, body: body)
        #expect(response.status == .ok, "\(String(buffer: response.body))")
    }

    /// `GET …/parameters` raw bytes.
    func parameterBytes(_ session: CreatedSession) async throws -> ByteBuffer {
        let response = try await execute(uri: session.path + "/parameters", method: .get, headers: session.auth)
        #expect(response.status == .ok)
        return response.body
    }

    /// `GET …` summary as a JSON object.
    func summary(_ session: CreatedSession) async throws -> [String: Any] {
        let response = try await execute(uri: session.path, method: .get, headers: session.auth)
        #expect(response.status == .ok)
        return try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
    }
}

/// The problem+json body of a response.
func problem(_ response: TestResponse) throws -> (status: Int, type: String, detail: String) {
    #expect(response.headers[.contentType] == "application/problem+json")
    let object = try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
    return (try #require(object["status"] as? Int), try #require(object["type"] as? String), try #require(object["detail"] as? String))
}

/// A JSON object body.
func jsonObject(_ response: TestResponse) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
}

/// How a test reaches the application: straight through the router, or over a real socket.
struct Transport: Sendable, CustomStringConvertible {
    let setup: TestingSetup
    let description: String

    static let router = Transport(setup: .router, description: "router")
    static let live = Transport(setup: .live, description: "live")
    static let all = [router, live]
}
