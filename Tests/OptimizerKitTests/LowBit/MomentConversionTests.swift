import Testing

@testable import OptimizerKit

/// Moments converted between state dtypes (a checkpoint restored into a session of another dtype).
struct MomentConversionTests {
    static let count = 5000

    /// An Adam state after a few float32 steps, as slots.
    static func float32Slots() throws -> [StateSlot] {
        let session = try OptimizerSession.make("adam")
        try session.upload([("w", [count], (0..<count).map { Float($0 % 101) / 50 - 1 })])
        for t in 1...3 { try session.step([("w", [count], (0..<count).map { Float(($0 * t) % 37) / 37 - 0.5 })]) }
        return session.states[0].all
    }

    static func floats(_ slots: [StateSlot], _ name: String) -> [Float] {
        guard case .tensor(let tensor) = slots.first(where: { $0.name == name })?.value else { return [] }
        return tensor.values
    }

    @Test func float32ToInt8QuantizesAndBackDequantizes() throws {
        let f32 = try Self.float32Slots()
        let shape = TensorShape([Self.count])
        let int8 = try MomentConversion.convert(f32, shape: shape, to: .int8)
        #expect(int8.map(\.name) == ["step", "exp_avg", "exp_avg_absmax", "exp_avg_sq", "exp_avg_sq_absmax"])
        let back = try MomentConversion.convert(int8, shape: shape, to: .f32)
        #expect(back.map(\.name) == ["step", "exp_avg", "exp_avg_sq"])
        for name in ["exp_avg", "exp_avg_sq"] {
            let original = Self.floats(f32, name), restored = Self.floats(back, name)
            let absmax = Self.floats(int8, name + "_absmax")
            // Each value comes back within the map's widest gap (about 0.0072·absmax at the top of the
            // range) of its block's scale.
            for i in 0..<Self.count {
                #expect(abs(original[i] - restored[i]) <= 0.01 * absmax[i / 256], "\(name)[\(i)]")
            }
            // Converting again to int8 gives the very same codes (a fixed point of the quantizer).
            let again = try MomentConversion.convert(back, shape: shape, to: .int8)
            guard case .packed(let a) = int8.first(where: { $0.name == name })!.value,
                case .packed(let b) = again.first(where: { $0.name == name })!.value
            else {
                Issue.record("\(name) is not 8-bit")
                return
            }
            #expect(Array(a.bytes) == Array(b.bytes))
        }
    }

    @Test func bf16RoundsAndWidensExactly() throws {
        let f32 = try Self.float32Slots()
        let shape = TensorShape([Self.count])
        let bf16 = try MomentConversion.convert(f32, shape: shape, to: .bf16)
        guard case .packed(let m) = bf16.first(where: { $0.name == "exp_avg" })!.value else {
            Issue.record("not bf16")
            return
        }
        let original = Self.floats(f32, "exp_avg")
        for i in 0..<Self.count { #expect(m.bfloat16Bits[i] == BFloat16.bits(original[i])) }
        let widened = Self.floats(try MomentConversion.convert(bf16, shape: shape, to: .f32), "exp_avg")
        for i in 0..<Self.count { #expect(widened[i] == BFloat16.float(m.bfloat16Bits[i])) }
        // bf16 → int8 goes through float32 (the bf16 values quantized).
        let int8 = try MomentConversion.convert(bf16, shape: shape, to: .int8)
        #expect(int8.contains { $0.name == "exp_avg_absmax" })
    }

    @Test func aMomentAlreadyInTheTargetFormKeepsItsBits() throws {
        let int8 = try MomentConversion.convert(try Self.float32Slots(), shape: TensorShape([Self.count]), to: .int8)
        let same = try MomentConversion.convert(int8, shape: TensorShape([Self.count]), to: .int8)
        for (a, b) in zip(int8, same) {
            #expect(a.name == b.name)
            if case .packed(let x) = a.value, case .packed(let y) = b.value { #expect(x === y) }
            if case .tensor(let x) = a.value, case .tensor(let y) = b.value { #expect(x === y) }
        }
    }

    @Test func codesWithoutTheirScalesAreRefused() throws {
        let int8 = try MomentConversion.convert(try Self.float32Slots(), shape: TensorShape([Self.count]), to: .int8)
        let broken = int8.filter { $0.name != "exp_avg_absmax" }
        #expect(throws: OptimizerError.self) { try MomentConversion.convert(broken, shape: TensorShape([Self.count]), to: .f32) }
        #expect(throws: OptimizerError.self) { try MomentConversion.convert(broken, shape: TensorShape([Self.count]), to: .int8) }
        #expect(throws: OptimizerError.self) { try MomentConversion.convert(int8, shape: TensorShape([Self.count + 1]), to: .f32) }
    }
}
