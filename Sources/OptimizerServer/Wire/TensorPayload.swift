import NIOCore
import OptimizerKit
import OptimizerWire

/// A safetensors request body: the (decompressed) bytes and their validated header.
///
/// Parsing validates the whole structure (OptimizerWire's ``SafetensorsHeader``), so a malformed body
/// is rejected before any session is touched. Tensor values are read later, under the session's lock,
/// through ``withFloatTensors(sparseSize:_:)``.
struct TensorPayload: Sendable {
    let bytes: ByteBuffer
    let header: SafetensorsHeader

    /// Validates `bytes` as safetensors.
    ///
    /// - Parameter limits: Request bodies pass ``RequestLimits/safetensors``; the default (the
    ///   codec's own, wider limits) is for write-ahead log records, which were accepted once.
    /// - Throws: ``SafetensorsError`` (mapped to 400 or 413 at the edge).
    init(parsing bytes: ByteBuffer, limits: SafetensorsHeader.Limits = .init()) throws {
        self.bytes = bytes
        self.header = try bytes.withUnsafeReadableBytes { try SafetensorsHeader(parsing: $0, limits: limits) }
    }

    /// The `__metadata__` strings.
    var metadata: [String: String] { header.metadata }

    /// One tensor of the body as float32 values.
    struct FloatTensor {
        /// The name; for a sparse pair `P.indices`/`P.values`, the dense name `P`.
        var name: String
        var shape: [Int]
        /// Valid only inside ``TensorPayload/withFloatTensors(sparseSize:_:)``.
        var values: UnsafeBufferPointer<Float>
    }

    /// Calls `body` with every tensor as float32: dense `F32` in place when aligned (zero-copy),
    /// `F16`/`BF16` converted, sparse pairs scattered into zero-filled dense tensors.
    ///
    /// - Parameters:
    ///   - sparseSize: The dense shape of a sparse tensor `P`, or nil when `P` is not a known
    ///     parameter (then the request is refused with 422). Pass nil to take every tensor as dense
    ///     (parameter uploads).
    ///   - body: Receives the tensors; their memory is valid only during the call.
    /// - Throws: ``SafetensorsError`` for wrong dtypes or bad sparse pairs, ``ProblemError`` (422) for
    ///   a sparse tensor of an unknown parameter or one also sent dense, or whatever `body` throws.
    func withFloatTensors<Result>(
        sparseSize: ((String) -> [Int]?)?,
        _ body: ([FloatTensor]) throws -> Result
    ) throws -> Result {
        try bytes.withUnsafeReadableBytes { raw in
            var scratch = Scratch()
            defer { scratch.release() }
            let sparse = sparseSize == nil ? [] : try sparsePairs()
            let sparseMembers = Set(sparse.flatMap { [$0.indices.name, $0.values.name] })

            var tensors: [FloatTensor] = []
            tensors.reserveCapacity(header.tensors.count)
            for entry in header.tensors where !sparseMembers.contains(entry.name) {
                let values = try floats(of: entry, in: raw, scratch: &scratch)
                tensors.append(FloatTensor(name: entry.name, shape: entry.shape, values: values))
            }
            for pair in sparse {
                guard let shape = sparseSize?(pair.name) else {
                    throw ProblemError.unprocessable(
                        "unknown-tensor",
                        "tensor \"\(pair.indices.name)\": sparse gradient of \"\(pair.name)\", which is not a parameter of this session"
                    )
                }
                let dense = scratch.allocate(shape.reduce(1, *))
                try header.scatter(pair, in: raw, into: dense)
                tensors.append(FloatTensor(name: pair.name, shape: shape, values: UnsafeBufferPointer(dense)))
            }
            return try body(tensors)
        }
    }

    /// Complete `P.indices` + `P.values` pairs. A dense `P` sent as well is a duplicate (422).
    private func sparsePairs() throws -> [SparseTensor] {
        for entry in header.tensors where entry.name.hasSuffix(SparseTensor.valuesSuffix) {
            let name = String(entry.name.dropLast(SparseTensor.valuesSuffix.count))
            if header.entry(named: name) != nil, header.entry(named: name + SparseTensor.indicesSuffix) != nil {
                throw ProblemError.unprocessable(
                    "duplicate-tensor",
                    "tensor \"\(name)\": given twice, dense and as \"\(entry.name)\" + \"\(name + SparseTensor.indicesSuffix)\""
                )
            }
        }
        return try header.sparseTensors()
    }

    /// Float32 values of a dense entry: in place for aligned `F32`, else converted into scratch memory.
    private func floats(
        of entry: TensorEntry,
        in raw: UnsafeRawBufferPointer,
        scratch: inout Scratch
    ) throws -> UnsafeBufferPointer<Float> {
        let bytes = header.bytes(of: entry, in: raw)
        #if _endian(little)
        if entry.dtype == .F32, let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            // The body's memory is untyped (ByteBuffer storage), so binding it to Float for the
            // duration of this call is sound; nothing else reads it typed meanwhile.
            return UnsafeBufferPointer(start: base.bindMemory(to: Float.self, capacity: entry.elementCount), count: entry.elementCount)
        }
        #endif
        // Converts F16/BF16 (and unaligned F32); throws unsupportedDType for any other dtype.
        let destination = scratch.allocate(entry.elementCount)
        try header.decodeFloats(entry, in: raw, into: destination)
        return UnsafeBufferPointer(destination)
    }

    /// Owns the temporary float buffers of one call.
    private struct Scratch {
        private var buffers: [UnsafeMutableBufferPointer<Float>] = []

        mutating func allocate(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(count, 1))
            buffers.append(buffer)
            return UnsafeMutableBufferPointer(rebasing: buffer[0..<count])
        }

        func release() {
            for buffer in buffers { buffer.deallocate() }
        }
    }
}
