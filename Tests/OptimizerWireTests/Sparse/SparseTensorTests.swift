import Testing

@testable import OptimizerWire

struct SparseTensorTests {
    /// A buffer holding `P.indices` / `P.values` (and whatever else `extra` adds).
    static func sparseBuffer(
        name: String = "P",
        indices: [Int64],
        as indexType: DType = .I64,
        values: [Float],
        valuesAs valueType: DType = .F32,
        extra: (inout SafetensorsWriter) throws -> Void = { _ in }
    ) throws -> [UInt8] {
        var writer = SafetensorsWriter()
        if indexType == .I32 {
            try writer.add(name + ".indices", shape: [indices.count], integers: indices.map { Int32($0) })
        } else {
            try writer.add(name + ".indices", shape: [indices.count], integers: indices)
        }
        try writer.add(name + ".values", shape: [values.count], floats: values, as: valueType)
        try extra(&writer)
        return writer.bytes()
    }

    static func scatter(_ bytes: [UInt8], name: String = "P", count: Int) throws -> [Float] {
        let header = try parseHeader(bytes)
        let sparse = try #require(try header.sparseTensor(named: name))
        var dense = [Float](repeating: .nan, count: count)
        try bytes.withUnsafeBytes { buffer in
            try dense.withUnsafeMutableBufferPointer { try header.scatter(sparse, in: buffer, into: $0) }
        }
        return dense
    }

    @Test(arguments: [DType.I32, .I64], [DType.F32, .F16, .BF16])
    func scatterFillsTheGivenIndicesAndZeroesTheRest(indexType: DType, valueType: DType) throws {
        let bytes = try Self.sparseBuffer(
            indices: [4, 0, 9],
            as: indexType,
            values: [1.5, -2, 0.25],
            valuesAs: valueType
        )
        #expect(try Self.scatter(bytes, count: 10) == [-2, 0, 0, 0, 1.5, 0, 0, 0, 0, 0.25])
    }

    @Test func emptySparseTensorGivesAllZeros() throws {
        let bytes = try Self.sparseBuffer(indices: [], values: [])
        #expect(try Self.scatter(bytes, count: 3) == [0, 0, 0])
    }

    @Test func explicitZeroAndNaNValuesAreKept() throws {
        let bytes = try Self.sparseBuffer(indices: [1, 2], values: [0, .nan])
        let dense = try Self.scatter(bytes, count: 3)
        #expect(dense[0] == 0 && dense[1] == 0 && dense[2].isNaN)
    }

    @Test(arguments: [Int64(10), 11, -1, Int64.min, Int64.max])
    func indexOutsideTheDenseTensorIsRejected(index: Int64) throws {
        let bytes = try Self.sparseBuffer(indices: [3, index], values: [1, 2])
        expectSafetensorsError(
            .sparseIndexOutOfRange,
            tensor: "P.indices",
            mentioning: ["element 1", "\(index)", "0..<10", "'P'"]
        ) {
            _ = try Self.scatter(bytes, count: 10)
        }
    }

    @Test func duplicateIndexIsRejected() throws {
        let bytes = try Self.sparseBuffer(indices: [3, 5, 3], values: [1, 2, 3])
        expectSafetensorsError(.duplicateSparseIndex, tensor: "P.indices", mentioning: ["index 3", "element 2"]) {
            _ = try Self.scatter(bytes, count: 10)
        }
    }

    @Test func lengthsMustMatch() throws {
        var writer = SafetensorsWriter()
        try writer.add("P.indices", shape: [2], integers: [0, 1] as [Int64])
        try writer.add("P.values", shape: [3], floats: [1, 2, 3])
        let header = try parseHeader(writer.bytes())
        expectSafetensorsError(.invalidSparseTensor, mentioning: ["'P.indices' has 2", "'P.values' has 3"]) {
            _ = try header.sparseTensor(named: "P")
        }
    }

    @Test func dtypesAndRanksAreChecked() throws {
        var floatIndices = SafetensorsWriter()
        try floatIndices.add("P.indices", shape: [1], floats: [0])
        try floatIndices.add("P.values", shape: [1], floats: [1])
        expectSafetensorsError(.invalidSparseTensor, tensor: "P.indices", mentioning: ["F32", "I32 or I64"]) {
            _ = try parseHeader(floatIndices.bytes()).sparseTensor(named: "P")
        }

        var integerValues = SafetensorsWriter()
        try integerValues.add("P.indices", shape: [1], integers: [0] as [Int32])
        try integerValues.add("P.values", shape: [1], integers: [1] as [Int32])
        expectSafetensorsError(.invalidSparseTensor, tensor: "P.values", mentioning: ["I32", "F32, F16 or BF16"]) {
            _ = try parseHeader(integerValues.bytes()).sparseTensor(named: "P")
        }

        var matrix = SafetensorsWriter()
        try matrix.add("P.indices", shape: [1, 2], integers: [0, 1] as [Int64])
        try matrix.add("P.values", shape: [2], floats: [1, 2])
        expectSafetensorsError(.invalidSparseTensor, tensor: "P.indices", mentioning: ["[1, 2]", "rank 1"]) {
            _ = try parseHeader(matrix.bytes()).sparseTensor(named: "P")
        }

        var scalar = SafetensorsWriter()
        try scalar.add("P.indices", shape: [1], integers: [0] as [Int64])
        try scalar.add("P.values", shape: [], floats: [2])
        expectSafetensorsError(.invalidSparseTensor, tensor: "P.values", mentioning: ["rank 1"]) {
            _ = try parseHeader(scalar.bytes()).sparseTensor(named: "P")
        }
    }

    @Test func halfAPairIsAnErrorWhenAskedFor() throws {
        var writer = SafetensorsWriter()
        try writer.add("P.indices", shape: [1], integers: [0] as [Int64])
        let header = try parseHeader(writer.bytes())
        expectSafetensorsError(.invalidSparseTensor, tensor: "P.indices", mentioning: ["no matching 'P.values'"]) {
            _ = try header.sparseTensor(named: "P")
        }
        #expect(try header.sparseTensors().isEmpty)  // not reported as a pair
        #expect(try header.sparseTensor(named: "Q") == nil)
    }

    @Test func denseAndSparseFormsOfOneTensorConflict() throws {
        let bytes = try Self.sparseBuffer(indices: [0], values: [1]) { try $0.add("P", shape: [1], floats: [1]) }
        expectSafetensorsError(.invalidSparseTensor, tensor: "P", mentioning: ["both dense"]) {
            _ = try parseHeader(bytes).sparseTensor(named: "P")
        }
    }

    @Test func sparseTensorsListsEveryCompletePairInHeaderOrder() throws {
        var writer = SafetensorsWriter()
        try writer.add("b.indices", shape: [1], integers: [0] as [Int32])
        try writer.add("dense", shape: [1], floats: [1])
        try writer.add("a.w.values", shape: [1], floats: [1], as: .BF16)
        try writer.add("a.w.indices", shape: [1], integers: [2] as [Int64])
        try writer.add("b.values", shape: [1], floats: [1], as: .F16)
        try writer.add("lonely.values", shape: [1], floats: [1])
        let pairs = try parseHeader(writer.bytes()).sparseTensors()
        #expect(pairs.map(\.name) == ["b", "a.w"])
        #expect(pairs.map(\.count) == [1, 1])
        #expect(pairs[1].indices.dtype == .I64 && pairs[1].values.dtype == .BF16)
    }

    @Test func mtadamTermNamesWorkAsSparseNames() throws {
        let bytes = try Self.sparseBuffer(name: "1/layer.weight", indices: [2], values: [5])
        #expect(try Self.scatter(bytes, name: "1/layer.weight", count: 3) == [0, 0, 5])
    }
}
