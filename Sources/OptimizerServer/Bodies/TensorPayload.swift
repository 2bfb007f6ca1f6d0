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
    /// The body's bytes in the memory budget, given back when the last copy of the payload is gone.
    let memory: MemoryReservation?

    /// Validates `bytes` as safetensors.
    ///
    /// - Parameters:
    ///   - limits: Request bodies pass ``RequestLimits/safetensors``; the default (the codec's own,
    ///     wider limits) is for write-ahead log records, which were accepted once.
    ///   - memory: The reservation that admitted `bytes` (request bodies), kept as long as the payload.
    /// - Throws: ``SafetensorsError`` (mapped to 400 or 413 at the edge).
    init(parsing bytes: ByteBuffer, limits: SafetensorsHeader.Limits = .init(), memory: MemoryReservation? = nil) throws {
        self.bytes = bytes
        self.header = try bytes.withUnsafeReadableBytes { try SafetensorsHeader(parsing: $0, limits: limits) }
        self.memory = memory
    }

    /// The `__metadata__` strings.
    var metadata: [String: String] { header.metadata }

    /// One tensor of the body as float32 values (the name, for a sparse pair, is the dense `P`).
    typealias FloatTensor = OptimizerWire.FloatTensor

    /// Calls `body` with every tensor as float32: dense `F32` in place when aligned (zero-copy),
    /// `F16`/`BF16` converted, sparse pairs scattered into zero-filled dense tensors. The decoding is
    /// OptimizerWire's (``SafetensorsHeader/withFloatTensors(in:sparseShape:_:)``, which the fuzzer
    /// runs); this adds the session's answers for pairs it cannot take.
    ///
    /// - Parameters:
    ///   - sparseSize: The dense shape of a sparse tensor `P`, or nil when `P` is not a known
    ///     parameter (then the request is refused with 422). Pass nil to take every tensor as dense
    ///     (parameter uploads).
    ///   - body: Receives the tensors; their memory is valid only during the call.
    /// - Throws: ``SafetensorsError`` for wrong dtypes or bad or incomplete sparse pairs,
    ///   ``ProblemError`` (422) for a sparse tensor of an unknown parameter or one also sent dense, or
    ///   whatever `body` throws.
    func withFloatTensors<Result>(
        sparseSize: ((String) -> [Int]?)?,
        _ body: ([FloatTensor]) throws -> Result
    ) throws -> Result {
        try bytes.withUnsafeReadableBytes { raw in
            guard let sparseSize else {
                return try header.withFloatTensors(in: raw, sparseShape: nil, body)
            }
            try rejectDenseAndSparse()
            return try header.withFloatTensors(
                in: raw,
                sparseShape: { pair in
                    guard let shape = sparseSize(pair.name) else {
                        throw ProblemError.unprocessable(
                            "unknown-tensor",
                            "tensor \"\(pair.indices.name)\": sparse gradient of \"\(pair.name)\", which is not a parameter of this session"
                        )
                    }
                    return shape
                },
                body
            )
        }
    }

    /// A dense `P` sent together with `P.indices` + `P.values` is a duplicate (422, where the codec
    /// alone would call it a malformed pair).
    private func rejectDenseAndSparse() throws {
        for entry in header.tensors where entry.name.hasSuffix(SparseTensor.valuesSuffix) {
            let name = String(entry.name.dropLast(SparseTensor.valuesSuffix.count))
            if header.entry(named: name) != nil, header.entry(named: name + SparseTensor.indicesSuffix) != nil {
                throw ProblemError.unprocessable(
                    "duplicate-tensor",
                    "tensor \"\(name)\": given twice, dense and as \"\(entry.name)\" + \"\(name + SparseTensor.indicesSuffix)\""
                )
            }
        }
    }
}
