import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import OptimizerWire

/// JSON bodies in and out of the routes.
enum JSONCoding {
    /// Decodes a JSON request body (every route's JSON body comes through here), after checking it
    /// strictly (``OptimizerWire/JSONBody``): `JSONDecoder` would keep one of two equal keys silently.
    ///
    /// - Throws: ``OptimizerWire/JSONBodyError`` (a duplicate key, invalid JSON) or `DecodingError`,
    ///   both answered as 400 naming the field.
    static func decode<T: Decodable>(_ type: T.Type, from body: ByteBuffer) throws -> T {
        try body.withUnsafeReadableBytes { bytes throws(JSONBodyError) in try JSONBody.check(bytes) }
        return try JSONDecoder().decode(T.self, from: Data(body.readableBytesView))
    }

    /// A JSON response (`application/json`, keys sorted, no escaped slashes).
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        var headers = headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(value))))
    }
}

/// A `CodingKey` for any member name, to reject unknown members of request objects, or for an
/// array element in an error's coding path.
struct MemberKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(_ name: String) { stringValue = name }
    init(index: Int) {
        stringValue = String(index)
        intValue = index
    }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

extension KeyedDecodingContainer where Key == MemberKey {
    /// Throws a `DecodingError` naming the first member that is not in `allowed`.
    func rejectUnknownMembers(_ allowed: Set<String>) throws {
        if let unknown = allKeys.map(\.stringValue).sorted().first(where: { !allowed.contains($0) }) {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: codingPath + [MemberKey(unknown)],
                    debugDescription: "unknown field; expected \(allowed.sorted().joined(separator: ", "))"
                )
            )
        }
    }
}
