import NIOCore
import OptimizerWire

/// Builds safetensors bodies for requests.
struct Body {
    private var writer: SafetensorsWriter

    init(metadata: [String: String] = [:]) { writer = SafetensorsWriter(metadata: metadata) }

    /// A float tensor in `dtype`.
    func float(_ name: String, _ shape: [Int], _ values: [Float], as dtype: DType = .F32) throws -> Body {
        var copy = self
        try copy.writer.add(name, shape: shape, floats: values, as: dtype)
        return copy
    }

    /// An I64 tensor (sparse indices).
    func int64(_ name: String, _ values: [Int64]) throws -> Body {
        var copy = self
        try copy.writer.add(name, shape: [values.count], integers: values)
        return copy
    }

    var buffer: ByteBuffer { ByteBuffer(bytes: writer.bytes()) }

    /// Shorthand: one body of F32 tensors.
    static func tensors(_ tensors: [(String, [Int], [Float])], metadata: [String: String] = [:], as dtype: DType = .F32) throws -> ByteBuffer {
        var body = Body(metadata: metadata)
        for (name, shape, values) in tensors { body = try body.float(name, shape, values, as: dtype) }
        return body.buffer
    }
}

/// Parses a safetensors response.
func safetensors(_ buffer: ByteBuffer) throws -> SafetensorsFile {
    try SafetensorsFile(bytes: Array(buffer.readableBytesView))
}
