import CompressNIO
import NIOCore

/// Compresses a body the way a client would before sending it with `Content-Encoding`.
func compressed(_ buffer: ByteBuffer, _ algorithm: ZlibAlgorithm = .gzip) throws -> ByteBuffer {
    var input = buffer
    return try input.compress(with: algorithm)
}

/// Decompresses a response body.
func decompressed(_ buffer: ByteBuffer, _ algorithm: ZlibAlgorithm = .gzip) throws -> ByteBuffer {
    var input = buffer
    return try input.decompress(with: algorithm)
}
