import Hummingbird
import NIOCore

/// Reads request bodies under the daemon's limits: collects at most `maxBytes` (JSON bodies:
/// ``RequestLimits/maxJSONBodyBytes``), then decompresses and decodes on the compute pool with the
/// same bound; safetensors headers are held to ``RequestLimits/safetensors``.
///
/// Order of checks: an unknown `Content-Encoding` is refused (415) before any byte is read; a
/// `Content-Length` over the limit is refused (413) at once; a body that turns out longer, or that
/// inflates past the limit, is refused (413) as soon as it crosses it; a body that ends early (the
/// client vanished) is a 400. Unread body bytes are drained by the server after the response, so
/// the connection stays usable.
struct BodyReader: Sendable {
    let maxBytes: Int
    let pool: ComputePool
    let metrics: ServerMetrics

    /// The request's JSON body, decompressed and decoded on the compute pool.
    ///
    /// - Throws: ``ProblemError`` (413, 415), `DecodingError` (400 naming the field).
    func readJSON<T: Decodable & Sendable>(_ type: T.Type, from request: Request) async throws -> T {
        let limit = min(maxBytes, RequestLimits.maxJSONBodyBytes)
        let (body, coding) = try await collect(request, limit: limit)
        return try await pool.run {
            try JSONCoding.decode(T.self, from: BodyCompression.decompress(body, coding: coding, limit: limit))
        }
    }

    /// The request's body decompressed and parsed as safetensors, both on the compute pool.
    func readTensors(_ request: Request) async throws -> TensorPayload {
        var timing = ServerTiming()
        return try await readTensors(request, timing: &timing)
    }

    /// ``readTensors(_:)``, recording `receive` (until the last body byte arrived) and `decode`
    /// (decompression and the safetensors header) in `timing`.
    func readTensors(_ request: Request, timing: inout ServerTiming) async throws -> TensorPayload {
        let limit = maxBytes
        let start = ContinuousClock.now
        let (body, coding) = try await collect(request, limit: limit)
        let received = ContinuousClock.now
        timing.record("receive", received - start)
        let payload = try await pool.run {
            try TensorPayload(parsing: BodyCompression.decompress(body, coding: coding, limit: limit), limits: RequestLimits.safetensors)
        }
        timing.record("decode", ContinuousClock.now - received)
        return payload
    }

    /// The raw body (at most `limit` bytes) and its content coding.
    private func collect(_ request: Request, limit: Int) async throws -> (body: ByteBuffer, coding: ContentCoding) {
        let coding = try ContentCoding(contentEncoding: request.headers[.contentEncoding])
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > limit { throw ProblemError.bodyTooLarge(limit: limit) }
        // One buffer of the declared size: no re-allocation and copying while a large body arrives.
        var body = ByteBufferAllocator().buffer(capacity: declared ?? 0)
        do {
            for try await chunk in request.body {
                guard chunk.readableBytes <= limit - body.readableBytes else { throw ProblemError.bodyTooLarge(limit: limit) }
                body.writeImmutableBuffer(chunk)
            }
        } catch let problem as ProblemError {
            throw problem
        } catch {
            // The connection was closed, reset or timed out, or the framing broke, mid-body: the
            // client's doing (a 400, logged as a refusal), never a server error.
            throw ProblemError.incompleteBody(error)
        }
        metrics.recordBytesIn(body.readableBytes)
        return (body, coding)
    }
}
