import Testing

@testable import OptimizerWire

/// Truncated, mutated and random inputs must throw a `SafetensorsError`, never crash, and whatever
/// does parse must be readable without crashing. Fixed seeds keep failures reproducible.
struct GarbageInputTests {
    static func validBuffers() throws -> [[UInt8]] {
        var writer = SafetensorsWriter(metadata: ["step": "4", "loss": "0.25"])
        try writer.add("w", shape: [2, 3], floats: [1, 2, 3, 4, 5, 6], as: .BF16)
        try writer.add("w.indices", shape: [2], integers: [0, 5] as [Int64])
        try writer.add("w.values", shape: [2], floats: [1, 2], as: .F16)
        try writer.add("b", shape: [3], floats: [1, 2, 3])
        return [
            GoldenFixtureTests.f32, GoldenFixtureTests.f16, GoldenFixtureTests.bf16, GoldenFixtureTests.withMetadata,
            writer.bytes(),
        ]
    }

    /// Parses `bytes`; if that succeeds, reads every tensor every way. Returns whether it parsed.
    @discardableResult
    static func exercise(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { buffer in
            let header: SafetensorsHeader
            do {
                header = try SafetensorsHeader(parsing: buffer)
            } catch is SafetensorsError {
                return false
            } catch {
                Issue.record("unexpected error type \(error)")
                return false
            }
            for entry in header.tensors {
                _ = try? header.floats(entry, in: buffer)
                _ = try? header.integers(entry, in: buffer)
                _ = try? header.doubles(entry, in: buffer)
                _ = try? header.withFloats(entry, in: buffer) { $0.count }
                if let sparse = try? header.sparseTensor(named: String(entry.name.split(separator: ".").first ?? "")) {
                    var dense = [Float](repeating: 0, count: 8)
                    _ = try? dense.withUnsafeMutableBufferPointer { try header.scatter(sparse, in: buffer, into: $0) }
                }
            }
            return true
        }
    }

    @Test func everyTruncationOfAValidBufferThrows() throws {
        for bytes in try Self.validBuffers() {
            #expect(Self.exercise(bytes))
            for length in 0..<bytes.count {
                #expect(!Self.exercise(Array(bytes[..<length])), "prefix of \(length) bytes parsed")
            }
            #expect(!Self.exercise(bytes + [0]), "an extra trailing byte parsed")
        }
    }

    @Test func randomByteFlipsNeverCrash() throws {
        var generator = SplitMix64(seed: 0x5AFE_7E45)
        for bytes in try Self.validBuffers() {
            for _ in 0..<600 {
                var mutated = bytes
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let index = Int.random(in: 0..<mutated.count, using: &generator)
                    mutated[index] = UInt8.random(in: 0...255, using: &generator)
                }
                Self.exercise(mutated)
            }
        }
    }

    @Test func randomHeaderTextNeverCrashes() {
        var generator = SplitMix64(seed: 42)
        let vocabulary = [
            "{", "}", "[", "]", ",", ":", "\"w\"", "\"__metadata__\"", "\"dtype\"", "\"shape\"", "\"data_offsets\"",
            "\"F32\"", "\"F16\"", "\"BF16\"", "\"I64\"", "\"F4\"", "0", "4", "8", "-1", "1e3", "2.5",
            "99999999999999999999",
            "null", "true", "\"\\u00e9\"", "\"\\ud800\"", " ", "\"x.indices\"", "\"x.values\"",
        ]
        for _ in 0..<3000 {
            let count = Int.random(in: 0...40, using: &generator)
            let header = (0..<count).map { _ in vocabulary.randomElement(using: &generator)! }.joined()
            let data = [UInt8](repeating: 0x3F, count: Int.random(in: 0...24, using: &generator))
            Self.exercise(safetensors(header: "{" + header, data: data))
        }
    }

    @Test func randomBytesNeverCrash() {
        var generator = SplitMix64(seed: 7)
        for _ in 0..<3000 {
            var bytes = (0..<Int.random(in: 0...96, using: &generator)).map { _ in
                UInt8.random(in: 0...255, using: &generator)
            }
            if bytes.count >= 8, Bool.random(using: &generator) {
                // Make the length prefix plausible so the JSON parser sees the garbage too.
                let length = UInt64(Int.random(in: 0...(bytes.count - 8), using: &generator))
                withUnsafeBytes(of: length.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
                bytes[8 < bytes.count ? 8 : 0] = UInt8(ascii: "{")
            }
            Self.exercise(bytes)
        }
    }
}
