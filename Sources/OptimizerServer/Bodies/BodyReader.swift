import Hummingbird
import NIOCore
import OptimizerStore
import OptimizerWire

/// Reads request bodies under the daemon's limits: collects at most `maxBytes` (JSON bodies:
/// ``RequestLimits/maxJSONBodyBytes``), then decompresses and decodes on the compute pool with the
/// same bound; safetensors headers are held to ``RequestLimits/safetensors``.
///
/// Order of checks: an unknown `Content-Encoding` is refused (415) before any byte is read; a
/// `Content-Length` over the limit is refused (413) at once; a body that turns out longer, or that
/// inflates past the limit, is refused (413) as soon as it crosses it; a body that ends early (the
/// client vanished) is a 400. Unread body bytes are drained by the server after the response, so
/// the connection stays usable.
///
/// Every body is admitted against the memory budget before it is buffered (its `Content-Length`,
/// or chunk by chunk, and its decompressed size as it inflates): a body that does not fit is
/// refused (507) and the bytes are held (``TensorPayload/memory``) until the request is done.
struct BodyReader: Sendable {
    let maxBytes: Int
    let pool: ComputePool
    let metrics: ServerMetrics
    let memory: MemoryBudget

    /// The request's JSON body, decompressed and decoded on the compute pool.
    ///
    /// - Throws: ``ProblemError`` (413, 415), `DecodingError` (400 naming the field).
    func readJSON<T: Decodable & Sendable>(_ type: T.Type, from request: Request) async throws -> T {
        let limit = min(maxBytes, RequestLimits.maxJSONBodyBytes)
        let reservation = MemoryReservation(budget: memory, kind: .bodies)
        defer { reservation.release() }
        let (body, coding, _, _) = try await collect(request, limit: limit, reservation: reservation, purpose: "this request body")
        return try await pool.run {
            try JSONCoding.decode(
                T.self,
                from: BodyCompression.decompress(
                    body, coding: coding, limit: limit, reserve: reservation.admitting(body, purpose: "this request body")))
        }
    }

    /// The request's body decompressed and parsed as safetensors, both on the compute pool.
    ///
    /// - Parameters:
    ///   - purpose: What the body is for, as a memory-budget refusal names it ("this upload").
    ///   - stepRoom: Up to how many bytes the body may use the budget's room kept for steps (a step's
    ///     body, ``SessionHandle/withStepBodyRoom(_:)``); 0 for any other body.
    func readTensors(_ request: Request, purpose: String, stepRoom: Int = 0) async throws -> TensorPayload {
        var timing = ServerTiming()
        return try await readTensors(request, purpose: purpose, stepRoom: stepRoom, timing: &timing)
    }

    /// ``readTensors(_:purpose:stepRoom:)``, recording `receive` (until the last body byte arrived)
    /// and `decode` (decompression and the safetensors header) in `timing`.
    ///
    /// With a `spool` target, an uncompressed body of at least its minimum size is written to a
    /// spool file as it arrives (``BodySpool``), for the write-ahead log to adopt
    /// (``TensorPayload/spooled``); `spool` in `timing` is the wait for its last writes. With
    /// `summing`, an uncompressed body's float32 tensors are summed as they arrive
    /// (``ArrivingSums``, ``TensorPayload/knownSumsOfSquares``): step bodies.
    func readTensors(
        _ request: Request, purpose: String, stepRoom: Int = 0, spool: SpoolTarget? = nil, summing: Bool = false,
        timing: inout ServerTiming
    ) async throws -> TensorPayload {
        let limit = maxBytes
        let start = ContinuousClock.now
        let reservation = MemoryReservation(budget: memory, kind: .bodies)
        let (body, coding, spooler, sums) = try await collect(
            request, limit: limit, reservation: reservation, purpose: purpose, stepRoom: stepRoom, spool: spool, summing: summing)
        var received = ContinuousClock.now
        timing.record("receive", received - start)
        var spooled: SpooledBody?
        if let spooler {
            spooled = await body.withUnsafeReadableBytes { bytes in UncheckedBytes(bytes) }.finish(with: spooler)
            let now = ContinuousClock.now
            timing.record("spool", now - received)
            received = now
        }
        var payload = try await pool.run {
            let reserve = reservation.admitting(body, purpose: purpose, stepRoom: stepRoom)
            let decompressed = try BodyCompression.decompress(body, coding: coding, limit: limit, reserve: reserve)
            try reservation.resize(to: decompressed.readableBytes, purpose: purpose, isStep: decompressed.readableBytes <= stepRoom)
            return try TensorPayload(parsing: decompressed, limits: RequestLimits.safetensors, memory: reservation)
        }
        payload.spooled = spooled
        payload.knownSumsOfSquares = sums
        timing.record("decode", ContinuousClock.now - received)
        return payload
    }

    /// The raw body (at most `limit` bytes) and its content coding, admitted in `reservation`, the
    /// spool it is being written to and the sums of its float32 tensors (see
    /// ``readTensors(_:purpose:stepRoom:spool:summing:timing:)``).
    private func collect(
        _ request: Request, limit: Int, reservation: MemoryReservation, purpose: String, stepRoom: Int = 0,
        spool target: SpoolTarget? = nil, summing: Bool = false
    ) async throws -> (body: ByteBuffer, coding: ContentCoding, spool: BodySpool?, sums: [String: Double]) {
        let coding = try ContentCoding(contentEncoding: request.headers[.contentEncoding])
        let declared = request.headers[.contentLength].flatMap(Int.init)
        if let declared, declared > limit { throw ProblemError.bodyTooLarge(limit: limit) }
        try reservation.resize(to: declared ?? 0, purpose: purpose, isStep: (declared ?? 0) <= stepRoom)
        // One buffer of the declared size (no re-allocation and copying while a large body arrives),
        // from the pool: a large one is already resident, not page-faulted in byte by byte. (Never
        // of capacity 0, which would be NIO's shared empty buffer, growing outside the pool.)
        var body = BufferPool.allocator.buffer(capacity: max(declared ?? 0, 1))
        // The log records a body as it is after Content-Encoding is undone: only an uncompressed
        // body can be spooled as it arrives.
        var spool = coding == .identity ? target.flatMap { target in declared.flatMap { BodySpool(target: target, length: $0) } } : nil
        var sums = coding == .identity && summing ? declared.map { ArrivingSums(length: $0, limits: RequestLimits.safetensors) } : nil
        do {
            for try await chunk in request.body {
                guard chunk.readableBytes <= limit - body.readableBytes else { throw ProblemError.bodyTooLarge(limit: limit) }
                if body.readableBytes + chunk.readableBytes > reservation.bytes {
                    let size = body.readableBytes + chunk.readableBytes
                    try reservation.resize(to: size, purpose: purpose, isStep: size <= stepRoom)
                }
                if let spooler = spool, body.readableBytes + chunk.readableBytes > body.capacity {
                    // More than declared: the buffer would move under the spool's writes.
                    await spooler.abandon()
                    spool = nil
                }
                body.writeImmutableBuffer(chunk)
                if let spool { body.withUnsafeReadableBytes { spool.received($0) } }
                if sums != nil { body.withUnsafeReadableBytes { sums?.received($0) } }
            }
        } catch {
            // The spool's queue may still be reading the body, which is let go of now.
            await spool?.abandon()
            switch error {
            case let problem as ProblemError: throw problem
            case let refusal as MemoryBudgetExceeded: throw refusal
            default:
                // The connection was closed, reset or timed out, or the framing broke, mid-body: the
                // client's doing (a 400, logged as a refusal), never a server error.
                throw ProblemError.incompleteBody(error)
            }
        }
        metrics.recordBytesIn(body.readableBytes)
        // A reused block may still hold pages an earlier, larger body touched past this one's end.
        body.withUnsafeReadableBytes { bytes in
            if let start = bytes.baseAddress { BufferPool.shared.discardPages(of: start, after: bytes.count) }
        }
        let known = body.withUnsafeReadableBytes { bytes in sums?.finish(bytes) } ?? [:]
        return (body, coding, spool, known)
    }
}

/// A body's bytes handed to its spool's queue while the body itself stays put (see ``BodySpool``).
private struct UncheckedBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    func finish(with spool: BodySpool) async -> SpooledBody? { await spool.finish(bytes) }
}

extension MemoryReservation {
    /// For ``BodyCompression/decompress(_:coding:limit:reserve:)``: grows this reservation to hold
    /// the compressed `body` and the decompressed output at its coming capacity.
    fileprivate func admitting(_ body: ByteBuffer, purpose: String, stepRoom: Int = 0) -> (Int) throws -> Void {
        let compressed = body.readableBytes
        return { capacity in try self.resize(to: compressed + capacity, purpose: purpose, isStep: compressed + capacity <= stepRoom) }
    }
}
