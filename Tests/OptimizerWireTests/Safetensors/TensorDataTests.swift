import Testing

@testable import OptimizerWire

/// Reading tensor values: zero-copy for aligned F32, conversion otherwise.
struct TensorDataTests {
    /// F16 `h` (3 elements, 6 bytes) then F32 `w`: `w` starts 2 bytes past an 8-byte boundary.
    static func unalignedBuffer() throws -> [UInt8] {
        var writer = SafetensorsWriter()
        try writer.add("h", shape: [3], floats: [1, 2, 3], as: .F16)
        try writer.add("w", shape: [2], floats: [0.25, -8])
        return writer.bytes()
    }

    @Test func alignedF32IsHandedOverInPlace() throws {
        let bytes = GoldenFixtureTests.f32
        let header = try parseHeader(bytes)
        let entry = header.tensors[0]
        try bytes.withUnsafeBytes { buffer in
            let expected = buffer.baseAddress! + entry.byteRange.lowerBound
            try header.withFloats(entry, in: buffer) { floats in
                #expect(UnsafeRawPointer(floats.baseAddress!) == expected)
                #expect(Array(floats) == [1, 2, 3, 4])
            }
        }
    }

    @Test func unalignedF32IsCopiedCorrectly() throws {
        let bytes = try Self.unalignedBuffer()
        let header = try parseHeader(bytes)
        let entry = try #require(header.entry(named: "w"))
        #expect(entry.byteRange.lowerBound % 4 != 0)
        try bytes.withUnsafeBytes { buffer in
            try header.withFloats(entry, in: buffer) { floats in
                let inside = buffer.baseAddress!..<(buffer.baseAddress! + buffer.count)
                #expect(!inside.contains(UnsafeRawPointer(floats.baseAddress!)))
                #expect(Array(floats) == [0.25, -8])
            }
            #expect(try header.floats(entry, in: buffer) == [0.25, -8])
        }
    }

    @Test(arguments: [DType.F32, .F16, .BF16])
    func decodeFloatsFillsCallerMemory(dtype: DType) throws {
        var writer = SafetensorsWriter()
        try writer.add("t", shape: [2, 2], floats: [1, -2, 0.5, 1024], as: dtype)
        let bytes = writer.bytes()
        let header = try parseHeader(bytes)
        var scratch = [Float](repeating: .nan, count: 4)
        try bytes.withUnsafeBytes { buffer in
            try scratch.withUnsafeMutableBufferPointer {
                try header.decodeFloats(header.tensors[0], in: buffer, into: $0)
            }
        }
        #expect(scratch == [1, -2, 0.5, 1024])
    }

    @Test func decodeFloatsRejectsAWrongSizedDestination() throws {
        let bytes = GoldenFixtureTests.f32
        let header = try parseHeader(bytes)
        var scratch = [Float](repeating: 0, count: 3)
        expectSafetensorsError(.elementCountMismatch, tensor: "w", mentioning: ["4 elements", "holds 3"]) {
            try bytes.withUnsafeBytes { buffer in
                try scratch.withUnsafeMutableBufferPointer {
                    try header.decodeFloats(header.tensors[0], in: buffer, into: $0)
                }
            }
        }
    }

    @Test func floatsOfAnIntegerTensorIsUnsupported() throws {
        let file = try SafetensorsFile(bytes: GoldenFixtureTests.withMetadata)
        expectSafetensorsError(.unsupportedDType, tensor: "b", mentioning: ["'b'", "I64", "F32, F16 or BF16"]) {
            _ = try file.floats(named: "b")
        }
        expectSafetensorsError(.unsupportedDType, tensor: "a", mentioning: ["integer"]) {
            _ = try file.integers(named: "a")
        }
    }

    @Test func integersReadEverySignedAndUnsignedWidth() throws {
        let json = #"""
            {"i8": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]},
             "u16": {"dtype": "U16", "shape": [1], "data_offsets": [2, 4]},
             "i32": {"dtype": "I32", "shape": [2], "data_offsets": [4, 12]},
             "u64": {"dtype": "U64", "shape": [1], "data_offsets": [12, 20]}}
            """#
        let data: [UInt8] =
            [0xFF, 0x05, 0x34, 0x12, 0xFE, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x80] + [1, 0, 0, 0, 0, 0, 0, 0]
        let file = try SafetensorsFile(bytes: safetensors(header: json, data: data))
        #expect(try file.integers(named: "i8") == [-1, 5])
        #expect(try file.integers(named: "u16") == [0x1234])
        #expect(try file.integers(named: "i32") == [-2, Int(Int32.min)])
        #expect(try file.integers(named: "u64") == [1])
    }

    @Test func u64AboveIntMaxIsOutOfRange() throws {
        let json = #"{"u": {"dtype": "U64", "shape": [1], "data_offsets": [0, 8]}}"#
        let file = try SafetensorsFile(bytes: safetensors(header: json, data: [UInt8](repeating: 0xFF, count: 8)))
        expectSafetensorsError(.integerOutOfRange, tensor: "u", mentioning: ["18446744073709551615"]) {
            _ = try file.integers(named: "u")
        }
    }

    @Test func doublesReadF64AndWidenFloats() throws {
        var writer = SafetensorsWriter()
        try writer.add("d", shape: [2], doubles: [1e300, -0.1])
        try writer.add("f", shape: [1], floats: [0.1], as: .BF16)
        let file = try SafetensorsFile(bytes: writer.bytes())
        #expect(try file.doubles(named: "d") == [1e300, -0.1])
        #expect(try file.doubles(named: "f") == [Double(FloatConversion.float(fromBFloat16Bits: 0x3DCD))])
    }

    @Test func unknownNameIsNotFound() throws {
        let file = try SafetensorsFile(bytes: GoldenFixtureTests.f32)
        expectSafetensorsError(.tensorNotFound, tensor: "nope", mentioning: ["'nope'"]) {
            _ = try file.floats(named: "nope")
        }
    }

    @Test func fileWithFloatsIsInPlaceForAlignedF32() throws {
        let file = try SafetensorsFile(bytes: GoldenFixtureTests.f32)
        let sum = try file.withFloats(named: "w") { $0.reduce(0, +) }
        #expect(sum == 10)
    }
}
