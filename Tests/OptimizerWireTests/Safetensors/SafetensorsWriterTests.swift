import Testing

@testable import OptimizerWire

struct SafetensorsWriterTests {
    /// Deterministic values that cover signs, magnitudes and the F16 subnormal range.
    static func sampleValues(count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let magnitude = Float(sign: .plus, exponent: Int.random(in: -30...20, using: &generator), significand: 1)
            return Float.random(in: -1...1, using: &generator) * magnitude
        }
    }

    @Test(arguments: [DType.F32, .F16, .BF16])
    func floatTensorsRoundTrip(dtype: DType) throws {
        let values = Self.sampleValues(count: 1000, seed: 7)
        var writer = SafetensorsWriter(metadata: ["dtype": dtype.rawValue])
        try writer.add("layer.0.weight", shape: [10, 100], floats: values, as: dtype)
        try writer.add("bias", shape: [3], floats: [1, 2, 3], as: dtype)
        let file = try SafetensorsFile(bytes: writer.bytes())

        let expected: [Float] =
            switch dtype {
            case .F16: values.map { FloatConversion.float(fromFloat16Bits: FloatConversion.float16Bits(from: $0)) }
            case .BF16: values.map { FloatConversion.float(fromBFloat16Bits: FloatConversion.bfloat16Bits(from: $0)) }
            default: values
            }
        #expect(try file.floats(named: "layer.0.weight") == expected)
        #expect(try file.floats(named: "bias") == [1, 2, 3])
        #expect(file.entry(named: "layer.0.weight")?.dtype == dtype)
        #expect(file.entry(named: "layer.0.weight")?.shape == [10, 100])
        #expect(file.metadata == ["dtype": dtype.rawValue])
        #expect(file.tensors.map(\.name) == ["layer.0.weight", "bias"])
    }

    @Test func pointerSourceIsEncodedWithoutCopyingFirst() throws {
        let values: [Float] = [0.1, 0.2, 0.3, 0.4]
        let bytes = try values.withUnsafeBufferPointer { pointer in
            var writer = SafetensorsWriter()
            try writer.add("p", shape: [2, 2], floats: pointer, as: .F32)
            return writer.bytes()
        }
        #expect(try SafetensorsFile(bytes: bytes).floats(named: "p") == values)
    }

    @Test func rawTensorsRoundTripExactly() throws {
        var writer = SafetensorsWriter()
        try writer.add("step", shape: [], integers: [Int64.max] as [Int64])
        try writer.add("averages", shape: [2], doubles: [.pi, -.leastNonzeroMagnitude])
        try writer.add("indices", shape: [3], integers: [0, -1, Int32.max] as [Int32])
        let file = try SafetensorsFile(bytes: writer.bytes())
        #expect(try file.integers(named: "step") == [Int(Int64.max)])
        #expect(try file.doubles(named: "averages") == [.pi, -.leastNonzeroMagnitude])
        #expect(try file.integers(named: "indices") == [0, -1, Int(Int32.max)])
        #expect(file.entry(named: "indices")?.dtype == .I32)
    }

    @Test func namesAndMetadataAreEscaped() throws {
        let awkward = "a\"b\\c\nd\u{1}e\u{7F}é😀/0"
        var writer = SafetensorsWriter(metadata: [awkward: awkward, "term_weights": "[0.5, 0.5]"])
        try writer.add(awkward, shape: [1], floats: [1])
        let bytes = writer.bytes()
        let header = String(decoding: bytes[8..<(bytes.count - 4)], as: UTF8.self)
        #expect(header.contains(#"a\"b\\c\nd\u0001e"#))
        let file = try SafetensorsFile(bytes: bytes)
        #expect(file.tensors.map(\.name) == [awkward])
        #expect(file.metadata == [awkward: awkward, "term_weights": "[0.5, 0.5]"])
    }

    @Test func headerIsPaddedToAMultipleOfEight() throws {
        for length in 1...9 {
            var writer = SafetensorsWriter()
            try writer.add(String(repeating: "x", count: length), shape: [1], floats: [1])
            let bytes = writer.bytes()
            let header = try parseHeader(bytes)
            #expect(header.headerByteCount % 8 == 0)
            #expect(header.dataRange.lowerBound % 8 == 0)
            #expect(bytes.count == writer.byteCount)
            #expect(bytes[header.dataRange.lowerBound - 1] == UInt8(ascii: " ") || header.headerByteCount % 8 == 0)
        }
    }

    @Test func emptyWriterWritesAnEmptyObject() {
        let bytes = SafetensorsWriter().bytes()
        #expect(bytes == [8, 0, 0, 0, 0, 0, 0, 0] + Array("{}      ".utf8))
    }

    @Test func writeIntoLargerBufferLeavesTheRestAlone() throws {
        var writer = SafetensorsWriter(metadata: ["k": "v"])
        try writer.add("w", shape: [2], floats: [1, 2], as: .BF16)
        var output = [UInt8](repeating: 0xAA, count: writer.byteCount + 5)
        let written = output.withUnsafeMutableBytes { writer.write(into: $0) }
        #expect(written == writer.byteCount)
        #expect(Array(output[..<written]) == writer.bytes())
        #expect(output[written...].allSatisfy { $0 == 0xAA })
    }

    @Test func dataFollowsInsertionOrderWithAscendingOffsets() throws {
        var writer = SafetensorsWriter()
        try writer.add("z", shape: [1], floats: [1], as: .F16)
        try writer.add("a", shape: [2], floats: [2, 3])
        try writer.add("m", shape: [0], floats: [])
        let header = try parseHeader(writer.bytes())
        #expect(header.tensors.map(\.name) == ["z", "a", "m"])
        let starts = header.tensors.map { $0.byteRange.lowerBound - header.dataRange.lowerBound }
        #expect(starts == [0, 2, 10])
    }

    // MARK: Errors

    @Test func duplicateNameIsRejected() throws {
        var writer = SafetensorsWriter()
        try writer.add("w", shape: [1], floats: [1])
        expectSafetensorsError(.duplicateKey, tensor: "w", mentioning: ["'w'"]) {
            try writer.add("w", shape: [1], floats: [2])
        }
        #expect(writer.tensorCount == 1)
    }

    @Test func metadataNameIsReserved() {
        var writer = SafetensorsWriter()
        expectSafetensorsError(.invalidTensorEntry, mentioning: ["__metadata__"]) {
            try writer.add("__metadata__", shape: [1], floats: [1])
        }
    }

    @Test func shapeMustMatchTheValues() {
        var writer = SafetensorsWriter()
        expectSafetensorsError(.elementCountMismatch, tensor: "w", mentioning: ["[2, 2]", "4 elements", "3 values"]) {
            try writer.add("w", shape: [2, 2], floats: [1, 2, 3])
        }
        expectSafetensorsError(.invalidShape, tensor: "n", mentioning: ["shape[1]", "-1"]) {
            try writer.add("n", shape: [1, -1], floats: [])
        }
        expectSafetensorsError(.sizeOverflow, tensor: "o") {
            try writer.add("o", shape: [1 << 62, 1 << 62], floats: [])
        }
        #expect(writer.tensorCount == 0)
        #expect(writer.bytes() == SafetensorsWriter().bytes())
    }

    @Test func floatsCannotBeWrittenAsAnIntegerDType() {
        var writer = SafetensorsWriter()
        expectSafetensorsError(.unsupportedDType, tensor: "w", mentioning: ["I32"]) {
            try writer.add("w", shape: [1], floats: [1], as: .I32)
        }
    }
}

/// A small, fast, seedable generator so tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
