import HTTPTypes
import Hummingbird
import NIOCore

/// What the route handlers share: the sessions, the compute pool, body limits and metrics.
struct RouteDependencies: Sendable {
    let sessions: SessionRegistry
    let pool: ComputePool
    let bodies: BodyReader
    let metrics: ServerMetrics
    let admin: TokenDigest?
    /// How long staged parts of a step live without a new part or the commit.
    let stagedStepTTL: Duration

    /// A binary (`application/octet-stream`) response, gzip/deflate-compressed on the compute pool
    /// when the client accepts it and it is worthwhile (see ``BodyCompression``).
    func binaryResponse(_ body: ByteBuffer, for request: Request, headers: HTTPFields = [:]) async throws -> Response {
        var headers = headers
        headers[.contentType] = "application/octet-stream"
        headers[.vary] = "Accept-Encoding"
        let coding = ContentCoding(acceptEncoding: request.headers[.acceptEncoding])
        guard coding != .identity else { return Response(status: .ok, headers: headers, body: .init(byteBuffer: body)) }
        let compressed = try await pool.run { BodyCompression.compressIfWorthwhile(body, coding: coding) }
        guard let compressed else { return Response(status: .ok, headers: headers, body: .init(byteBuffer: body)) }
        headers[.contentEncoding] = coding.rawValue
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: compressed))
    }
}
