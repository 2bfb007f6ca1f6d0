import Hummingbird
import NIOCore

/// Reads request bodies under the daemon's limits: collects at most `maxBytes`, then decompresses
/// on the compute pool with the same bound.
///
/// Order of checks: an unknown `Content-Encoding` is refused (415) before any byte is read; a
/// `Content-Length` over the limit is refused (413) at once; a body that turns out longer, or that
/// inflates past the limit, is refused (413) as soon as it crosses it. Unread body bytes are drained
/// by the server after the response, so the connection stays usable.
struct BodyReader: Sendable {
    let maxBytes: Int
    let pool: ComputePool
    let metrics: ServerMetrics

    /// The request's body, decompressed.
    func read(_ request: Request) async throws -> ByteBuffer {
        let (body, coding) = try await collect(request)
        guard coding != .identity else { return body }
        let limit = maxBytes
        return try await pool.run { try BodyCompression.decompress(body, coding: coding, limit: limit) }
    }

    /// The request's body decompressed and parsed as safetensors, both on the compute pool.
    func readTensors(_ request: Request) async throws -> TensorPayload {
        let (body, coding) = try await collect(request)
        let limit = maxBytes
        return try await pool.run {
            try TensorPayload(parsing: BodyCompression.decompress(body, coding: coding, limit: limit))
        }
    }

    /// The raw body (at most `maxBytes`) and its content coding.
    private func collect(_ request: Request) async throws -> (body: ByteBuffer, coding: ContentCoding) {
        let coding = try ContentCoding(contentEncoding: request.headers[.contentEncoding])
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBytes {
            throw ProblemError.bodyTooLarge(limit: maxBytes)
        }
        do {
            let body = try await request.body.collect(upTo: maxBytes)
            metrics.recordBytesIn(body.readableBytes)
            return (body, coding)
        } catch is NIOTooManyBytesError {
            throw ProblemError.bodyTooLarge(limit: maxBytes)
        }
    }
}
