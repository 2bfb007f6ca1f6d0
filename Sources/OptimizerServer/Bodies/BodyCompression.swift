import CompressNIO
import NIOCore

/// gzip/deflate for request and response bodies (zlib through compress-nio).
///
/// Runs on the compute pool. Decompression is bounded: it stops as soon as the output would pass
/// the body limit, so a small "zip bomb" costs at most `limit` bytes of memory before it is refused
/// with 413.
enum BodyCompression {
    /// Decompresses a request body.
    ///
    /// `deflate` accepts both the zlib format (what RFC 9110 means by deflate) and raw deflate (what
    /// some clients send), told apart by the zlib header check.
    ///
    /// - Parameter reserve: Called with the output's capacity before each allocation, to admit it
    ///   against the memory budget (it throws to refuse).
    /// - Throws: ``ProblemError`` 413 when the output passes `limit`, 400 when the data is corrupt;
    ///   what `reserve` throws.
    static func decompress(
        _ body: ByteBuffer, coding: ContentCoding, limit: Int, reserve: (Int) throws -> Void = { _ in }
    ) throws -> ByteBuffer {
        guard coding != .identity else { return body }
        var input = body
        guard input.readableBytes > 0 else {
            throw ProblemError.badRequest("invalid-compressed-body", "the body is empty but Content-Encoding is \(coding.rawValue)")
        }
        let algorithm: ZlibAlgorithm = coding == .gzip ? .gzip : (hasZlibHeader(input) ? .zlib : .deflate)
        let decompressor = try ZlibDecompressor(algorithm: algorithm)
        let ceiling = limit + 1
        let initialCapacity = min(ceiling, max(input.readableBytes * 4, 1 << 16))
        try reserve(initialCapacity)
        var output = BufferPool.allocator.buffer(capacity: initialCapacity)
        // `inflate` returns both at the stream's end and when it consumed all input without reaching
        // it; only at the end does a call with no input produce no output (otherwise zlib reports
        // the missing input). So the loop runs until a call makes no progress: a stream cut short
        // (a gzip body without its CRC trailer) is refused, not parsed.
        while true {
            let written = output.writerIndex
            do {
                try decompressor.inflate(from: &input, to: &output)
            } catch let error as CompressNIOError where error == .bufferOverflow {
                guard output.readableBytes < ceiling else { throw ProblemError.bodyTooLarge(limit: limit) }
                let capacity = min(ceiling, output.capacity * 2)
                try reserve(capacity)
                output.reserveCapacity(capacity)
                continue
            } catch let error as CompressNIOError where error == .inputBufferOverflow {
                throw ProblemError.badRequest(
                    "invalid-compressed-body", "the body ends before its \(coding.rawValue) stream does (truncated)")
            } catch let error as CompressNIOError {
                throw ProblemError.badRequest(
                    "invalid-compressed-body", "the body is not valid \(coding.rawValue) data (zlib: \(error))")
            }
            if input.readableBytes > 0 {
                // The stream ended before the body: another gzip member (RFC 1952 allows several),
                // or bytes that are not part of it.
                guard coding == .gzip, input.getBytes(at: input.readerIndex, length: 2) == [0x1F, 0x8B] else {
                    throw ProblemError.badRequest(
                        "invalid-compressed-body", "\(input.readableBytes) bytes follow the end of the \(coding.rawValue) stream")
                }
                do { try decompressor.reset() } catch {
                    throw ProblemError.badRequest("invalid-compressed-body", "the body's next gzip member cannot be read (zlib: \(error))")
                }
                continue
            }
            if output.writerIndex == written { break }
        }
        guard output.readableBytes <= limit else { throw ProblemError.bodyTooLarge(limit: limit) }
        return output
    }

    /// The largest response body that is compressed: zlib's fastest level runs at ~50 MB/s on one
    /// core, so a larger body took longer to compress than to send over any link faster than that
    /// (a 1.2 GB checkpoint over loopback: 35 s with `Accept-Encoding: gzip`, 1.1–1.4 s without
    /// compression; `benchmarks/checkpoint.py`), and its compressed copy was memory the budget did
    /// not count.
    static let maxCompressedResponseBytes = 16 << 20

    /// Compresses a response body if that makes it meaningfully smaller.
    ///
    /// Dense float32 tensors shrink by only a few percent, so compressing them costs more time than
    /// it saves on the wire. A 64 KiB sample from the middle of the body is compressed first; only if
    /// it shrinks by at least 10 % is the whole body compressed (at the fastest level). Bodies over
    /// ``maxCompressedResponseBytes`` go as they are.
    ///
    /// - Returns: The compressed body, or nil to send `body` as it is.
    static func compressIfWorthwhile(_ body: ByteBuffer, coding: ContentCoding) -> ByteBuffer? {
        guard coding != .identity, body.readableBytes >= 1024, body.readableBytes <= maxCompressedResponseBytes else { return nil }
        let algorithm: ZlibAlgorithm = coding == .gzip ? .gzip : .zlib
        let configuration = ZlibConfiguration(compressionLevel: .fastestCompression)
        let sampleLength = min(body.readableBytes, 1 << 16)
        var sample = body.getSlice(at: body.readerIndex + (body.readableBytes - sampleLength) / 2, length: sampleLength)!
        guard let compressedSample = try? sample.compress(with: algorithm, configuration: configuration),
            compressedSample.readableBytes * 10 <= sampleLength * 9
        else { return nil }
        var whole = body
        guard let compressed = try? whole.compress(with: algorithm, configuration: configuration),
            compressed.readableBytes * 10 <= body.readableBytes * 9
        else { return nil }
        return compressed
    }

    /// Whether the data starts with a zlib header (RFC 1950: deflate method, header checksum).
    private static func hasZlibHeader(_ buffer: ByteBuffer) -> Bool {
        guard let cmf = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
            let flg = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self)
        else { return false }
        return cmf & 0x0f == 8 && (UInt16(cmf) << 8 | UInt16(flg)) % 31 == 0
    }
}
