import OptimizerKit
import Testing

@testable import OptimizerWire

/// `withFloatTensors(in:sparseShape:scratch:parallelism:_:)`: a request body's tensors as float32, dense and sparse.
struct FloatTensorsTests {
    struct Refused: Error {}

    /// Runs `withFloatTensors` on `bytes` and returns each tensor's name, shape and values.
    static func decode(
        _ bytes: [UInt8],
        sparseShape: ((SparseTensor) throws -> [Int])?
    ) throws -> [(name: String, shape: [Int], values: [Float])] {
        let header = try parseHeader(bytes)
        return try bytes.withUnsafeBytes { buffer in
            try header.withFloatTensors(in: buffer, sparseShape: sparseShape) { tensors in
                tensors.map { ($0.name, $0.shape.dimensions, Array($0.values)) }
            }
        }
    }

    @Test(arguments: [DType.F32, .F16, .BF16])
    func denseTensorsArriveAsFloatsInHeaderOrder(dtype: DType) throws {
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [2, 2], floats: [1, -2, 0.5, 4], as: dtype)
        try writer.add("b", shape: [], floats: [3], as: dtype)
        let tensors = try Self.decode(writer.bytes(), sparseShape: nil)
        #expect(tensors.map(\.name) == ["w", "b"])
        #expect(tensors.map(\.shape) == [[2, 2], []])
        #expect(tensors.map(\.values) == [[1, -2, 0.5, 4], [3]])
    }

    @Test func sparsePairsAreScatteredIntoTheShapeTheCallerGives() throws {
        let bytes = try SparseTensorTests.sparseBuffer(name: "w", indices: [3, 0], values: [2, 4]) { writer in
            try writer.add("b", shape: [1], floats: [1])
        }
        let tensors = try Self.decode(
            bytes,
            sparseShape: { pair in
                #expect(pair.name == "w")
                return [2, 2]
            })
        #expect(tensors.map(\.name) == ["b", "w"])
        #expect(tensors[1].shape == [2, 2])
        #expect(tensors[1].values == [4, 0, 0, 2])
    }

    @Test func withoutSparseShapesEveryTensorIsDense() throws {
        let bytes = try SparseTensorTests.sparseBuffer(name: "w", indices: [1], values: [2])
        expectSafetensorsError(.unsupportedDType, tensor: "w.indices") {
            _ = try Self.decode(bytes, sparseShape: nil)
        }
    }

    @Test func theCallerRefusesAPairByThrowing() throws {
        let bytes = try SparseTensorTests.sparseBuffer(name: "x", indices: [0], values: [1])
        #expect(throws: Refused.self) { try Self.decode(bytes, sparseShape: { _ in throw Refused() }) }
    }

    /// Integer indices can never be a float gradient, so the error names the missing values (this
    /// was an unsupported-dtype error about `P.indices` before).
    @Test(arguments: [DType.I32, .I64])
    func indicesWithoutValuesNameTheMissingHalf(indexType: DType) throws {
        var writer = SafetensorsWriter()
        if indexType == .I32 {
            try writer.add("w.indices", shape: [1], integers: [1] as [Int32])
        } else {
            try writer.add("w.indices", shape: [1], integers: [1] as [Int64])
        }
        expectSafetensorsError(.invalidSparseTensor, tensor: "w.indices", mentioning: ["no matching 'w.values'"]) {
            _ = try Self.decode(writer.bytes(), sparseShape: { _ in [4] })
        }
    }

    /// A float tensor that merely ends in `.indices` or `.values` may be a parameter's gradient.
    @Test func floatTensorsNamedLikeHalvesOfAPairStayDense() throws {
        var writer = SafetensorsWriter()
        try writer.add("a.indices", shape: [1], floats: [1])
        try writer.add("b.values", shape: [1], floats: [2])
        let tensors = try Self.decode(writer.bytes(), sparseShape: { _ in throw Refused() })
        #expect(tensors.map(\.name) == ["a.indices", "b.values"])
    }
}
