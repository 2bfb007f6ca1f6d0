import Testing

@testable import OptimizerWire

/// Buffers written by Python's `safetensors` 0.8.0 (`safetensors.numpy.save` and, for BF16,
/// `safetensors.serialize`), read by us and reproduced byte for byte by `SafetensorsWriter`.
struct GoldenFixtureTests {
    /// `save({"w": np.array([[1, 2], [3, 4]], np.float32)})`
    static let f32 = [UInt8](
        hex: """
            40000000000000007b2277223a7b226474797065223a22463332222c227368617065223a5b322c325d2c2264617461
            5f6f666673657473223a5b302c31365d7d7d202020202020200000803f000000400000404000008040
            """
    )
    /// `save({"h": np.array([1.0, -2.5, 65504, 6e-8, inf, -0.0], np.float16)})`
    static let f16 = [UInt8](
        hex: """
            38000000000000007b2268223a7b226474797065223a22463136222c227368617065223a5b365d2c22646174615f6f
            666673657473223a5b302c31325d7d7d20003c00c1ff7b0100007c0080
            """
    )
    /// `serialize({"b": TensorSpec(dtype="bfloat16", shape=[2, 3], ...)})` with the bf16 bits
    /// 0x3F80 (1), 0xC020 (-2.5), 0x7F7F (largest finite), 0x0001 (smallest subnormal), 0xFF80 (-inf),
    /// 0x8000 (-0).
    static let bf16 = [UInt8](
        hex: """
            40000000000000007b2262223a7b226474797065223a2242463136222c227368617065223a5b322c335d2c22646174
            615f6f666673657473223a5b302c31325d7d7d202020202020803f20c07f7f010080ff0080
            """
    )
    /// `save({"a": f32 [1.5, -2, 3], "b": i64 [7, -1], "c": f16 [[0.5, 2]]},
    ///       metadata={"step": "3", "note": "he said \"hi\"\n"})`; Python orders data by dtype size.
    static let withMetadata = [UInt8](
        hex: """
            e0000000000000007b225f5f6d657461646174615f5f223a7b226e6f7465223a2268652073616964205c2268695c22
            5c6e222c2273746570223a2233227d2c2262223a7b226474797065223a22493634222c227368617065223a5b325d2c
            22646174615f6f666673657473223a5b302c31365d7d2c2261223a7b226474797065223a22463332222c2273686170
            65223a5b335d2c22646174615f6f666673657473223a5b31362c32385d7d2c2263223a7b226474797065223a224631
            36222c227368617065223a5b312c325d2c22646174615f6f666673657473223a5b32382c33325d7d7d202020070000
            0000000000ffffffffffffffff0000c03f000000c00000404000380040
            """
    )

    // MARK: Reading

    @Test func readsPythonF32File() throws {
        let file = try SafetensorsFile(bytes: Self.f32)
        #expect(file.metadata.isEmpty)
        #expect(file.tensors.map(\.name) == ["w"])
        let entry = try #require(file.entry(named: "w"))
        #expect(entry.dtype == .F32)
        #expect(entry.shape == [2, 2])
        #expect(entry.byteRange == 72..<88)
        #expect(try file.floats(named: "w") == [1, 2, 3, 4])
    }

    @Test func readsPythonF16FileIncludingSubnormalAndInfinity() throws {
        let file = try SafetensorsFile(bytes: Self.f16)
        let values = try file.floats(named: "h")
        #expect(values[0...2] == [1, -2.5, 65504])
        #expect(values[3] == Float(bitPattern: 0x3380_0000))  // 2^-24, the smallest F16 subnormal
        #expect(values[4] == .infinity)
        #expect(values[5] == 0 && values[5].sign == .minus)
    }

    @Test func readsPythonBF16File() throws {
        let file = try SafetensorsFile(bytes: Self.bf16)
        let entry = try #require(file.entry(named: "b"))
        #expect(entry.dtype == .BF16 && entry.shape == [2, 3] && entry.elementCount == 6)
        let bits = try file.floats(named: "b").map(\.bitPattern)
        #expect(bits == [0x3F80_0000, 0xC020_0000, 0x7F7F_0000, 0x0001_0000, 0xFF80_0000, 0x8000_0000])
    }

    @Test func readsPythonFileWithMetadataAndMixedDTypes() throws {
        let file = try SafetensorsFile(bytes: Self.withMetadata)
        #expect(file.metadata == ["step": "3", "note": "he said \"hi\"\n"])
        #expect(file.tensors.map(\.name) == ["b", "a", "c"])
        #expect(try file.integers(named: "b") == [7, -1])
        #expect(try file.floats(named: "a") == [1.5, -2, 3])
        #expect(try file.floats(named: "c") == [0.5, 2])
        #expect(file.entry(named: "c")?.shape == [1, 2])
    }

    // MARK: Writing the same bytes

    @Test func writerReproducesPythonF32Bytes() throws {
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [2, 2], floats: [1, 2, 3, 4])
        #expect(writer.byteCount == Self.f32.count)
        #expect(writer.bytes().hexString == Self.f32.hexString)
    }

    @Test func writerReproducesPythonF16Bytes() throws {
        var writer = SafetensorsWriter()
        try writer.add("h", shape: [6], floats: [1, -2.5, 65504, 6e-8, .infinity, -0.0], as: .F16)
        #expect(writer.bytes().hexString == Self.f16.hexString)
    }

    @Test func writerReproducesPythonBF16Bytes() throws {
        var writer = SafetensorsWriter()
        let values: [Float] = [
            1, -2.5, Float(bitPattern: 0x7F7F_0000), Float(bitPattern: 0x0001_0000), -.infinity, -0.0,
        ]
        try writer.add("b", shape: [2, 3], floats: values, as: .BF16)
        #expect(writer.bytes().hexString == Self.bf16.hexString)
    }

    @Test func writerReproducesPythonMetadataBytes() throws {
        var writer = SafetensorsWriter(metadata: ["step": "3", "note": "he said \"hi\"\n"])
        try writer.add("b", shape: [2], integers: [7, -1] as [Int64])
        try writer.add("a", shape: [3], floats: [1.5, -2, 3])
        try writer.add("c", shape: [1, 2], floats: [0.5, 2], as: .F16)
        #expect(writer.bytes().hexString == Self.withMetadata.hexString)
    }
}
