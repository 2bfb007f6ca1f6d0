import NIOCore
import OptimizerKit
import OptimizerWire

extension TensorPayload {
    /// Encodes named tensors and metadata as a safetensors buffer, converting to `dtype`.
    ///
    /// Writes straight into one response buffer from ``BufferPool`` (no intermediate array; a large
    /// one reused, already resident: a step's answer usually takes its own request's block, let
    /// go of before the answer is encoded, see ``StepRequest``). Deterministic: the same
    /// tensors and metadata always give the same bytes, which idempotent step retries rely on.
    static func encode(
        _ tensors: [(name: String, tensor: TensorBuffer)],
        as dtype: WireFloat,
        metadata: [String: String]
    ) throws -> ByteBuffer {
        var writer = SafetensorsWriter(metadata: metadata)
        for (name, tensor) in tensors {
            try writer.add(name, shape: tensor.shape.dimensions, floats: tensor.readOnly, as: dtype.dtype)
        }
        let count = writer.byteCount
        var buffer = BufferPool.allocator.buffer(capacity: count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { destination in
            writer.write(into: UnsafeMutableRawBufferPointer(rebasing: destination[0..<count]))
        }
        return buffer
    }
}
