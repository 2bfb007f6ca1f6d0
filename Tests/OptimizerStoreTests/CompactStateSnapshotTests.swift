import Foundation
import OptimizerKit
import OptimizerWire
import Testing

@testable import OptimizerStore

/// Snapshots and checkpoints of sessions with compact state (`state_dtype` bf16/int8): they keep the
/// compact form (format version 2), load back bit for bit, restore into a session of another state
/// dtype by converting the moments, and f32 sessions still write (and read) version 1.
struct CompactStateSnapshotTests {
    static let count = 20_000

    /// An Adam session of `dtype` with a large (8-bit) and a small (float32 under int8) parameter,
    /// stepped `steps` times.
    static func session(_ dtype: StateDType, steps: Int = 3) throws -> OptimizerSession {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adamw", stateDType: dtype))
        let w = TensorBuffer(shape: TensorShape([count]), values: (0..<count).map { sin(Float($0)) })
        let b = TensorBuffer(shape: TensorShape([10]), values: (0..<10).map { Float($0) / 10 })
        try session.setParameters([TensorView(name: "w", shape: w.shape, values: w.readOnly), TensorView(name: "b", shape: b.shape, values: b.readOnly)])
        for _ in 0..<steps { try step(session) }
        return session
    }

    static func step(_ session: OptimizerSession) throws {
        let t = Float(session.step + 1)
        let gw = TensorBuffer(shape: TensorShape([count]), values: (0..<count).map { cos(Float($0) * t) * 0.1 })
        let gb = TensorBuffer(shape: TensorShape([10]), values: (0..<10).map { Float($0) * t / 100 })
        try session.step(
            StepInput(gradients: [TensorView(name: "w", shape: gw.shape, values: gw.readOnly), TensorView(name: "b", shape: gb.shape, values: gb.readOnly)])
        )
    }

    @Test(arguments: [StateDType.bf16, .int8])
    func compactStateRoundTripsExactly(dtype: StateDType) throws {
        let session = try Self.session(dtype)
        let bytes = try SessionSnapshot(session: session, id: "s", name: nil, tokenHash: nil).encoded()
        let file = try SafetensorsFile(bytes: bytes)
        #expect(file.metadata["format_version"] == "2")
        #expect(file.metadata["state_dtype"] == dtype.rawValue)
        #expect(file.entry(named: "state/w/exp_avg")?.dtype == (dtype == .int8 ? .U8 : .BF16))
        let rebuilt = try SessionSnapshot(decoding: bytes, origin: "test").makeSession()
        #expect(rebuilt.configuration.stateDType == dtype)
        #expect(StoreFixtures.fingerprint(rebuilt) == StoreFixtures.fingerprint(session))
        #expect(rebuilt.states.map(\.names) == session.states.map(\.names))
        // Both continue identically.
        try Self.step(session)
        try Self.step(rebuilt)
        #expect(StoreFixtures.fingerprint(rebuilt) == StoreFixtures.fingerprint(session))
    }

    /// The background snapshot path (staged under the lock, header made later) writes the same file.
    @Test(arguments: [StateDType.bf16, .int8])
    func aStagedSnapshotIsTheEncodedFile(dtype: StateDType) throws {
        let session = try Self.session(dtype)
        let snapshot = SessionSnapshot(session: session, id: "s", name: nil, tokenHash: nil, durability: .log)
        let expected = try snapshot.encoded()
        let staged = try snapshot.stage(into: nil)
        #expect(staged.data.byteCount == snapshot.dataByteCount)
        try Self.step(session)
        #expect(try staged.header() + Array(staged.data.bytes) == expected)
    }

    @Test func float32SessionsStillWriteVersionOne() throws {
        let bytes = try SessionSnapshot(session: try Self.session(.f32), id: nil, name: nil, tokenHash: nil).encoded()
        let file = try SafetensorsFile(bytes: bytes)
        #expect(file.metadata["format_version"] == "1")
        #expect(file.metadata["state_dtype"] == nil)
        #expect(try SessionSnapshot(decoding: bytes, origin: "test").stateDType == .f32)
    }

    /// The optimizer state in a checkpoint: int8 about a quarter of f32 (2.03 vs 8 bytes per element).
    @Test func int8StateIsAboutAQuarterOfFloat32InTheCheckpoint() throws {
        func stateBytes(_ dtype: StateDType) throws -> Int {
            let file = try SafetensorsFile(bytes: try SessionSnapshot(session: try Self.session(dtype), id: nil, name: nil, tokenHash: nil).encoded())
            return file.tensors.filter { $0.name.hasPrefix("state/w/") }.reduce(0) { $0 + $1.byteRange.count }
        }
        let f32 = try stateBytes(.f32), int8 = try stateBytes(.int8), bf16 = try stateBytes(.bf16)
        #expect(f32 == 8 * Self.count + 8)
        #expect(bf16 == 4 * Self.count + 8)
        #expect(int8 == 2 * Self.count + 8 * 79 + 8)
        #expect(Double(int8) / Double(f32) < 0.26)
    }

    @Test(arguments: StateDType.allCases, StateDType.allCases)
    func checkpointRestoresIntoAnotherStateDType(from source: StateDType, to target: StateDType) throws {
        let saved = try Self.session(source)
        let checkpoint = try SessionSnapshot(decoding: try SessionSnapshot(session: saved, id: nil, name: nil, tokenHash: nil).encoded(), origin: "checkpoint")
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adamw", stateDType: target))
        try checkpoint.restore(into: session)
        #expect(session.configuration.stateDType == target)
        #expect(session.step == 3)
        #expect(session.parameters[0].values == saved.parameters[0].values)
        // The moments carry over up to the target's rounding.
        for moment in ["exp_avg", "exp_avg_sq"] {
            let original = try dequantized(saved.states[0], moment), restored = try dequantized(session.states[0], moment)
            let scale = original.map(abs).max()!
            for i in 0..<Self.count where abs(original[i] - restored[i]) > 0.01 * scale + 1e-2 * abs(original[i]) {
                Issue.record("\(source)→\(target) \(moment)[\(i)]: \(original[i]) vs \(restored[i])")
                break
            }
        }
        if source == target { #expect(StoreFixtures.fingerprint(session) == StoreFixtures.fingerprint(saved)) }
        // The restored session keeps stepping in its own form, and snapshots again.
        try Self.step(session)
        let again = try SessionSnapshot(decoding: try SessionSnapshot(session: session, id: nil, name: nil, tokenHash: nil).encoded(), origin: "t")
        #expect(StoreFixtures.fingerprint(try again.makeSession()) == StoreFixtures.fingerprint(session))
    }

    @Test func compactSlotOutsideTheMomentsIsRefused() throws {
        var snapshot = SessionSnapshot(session: try Self.session(.bf16), id: nil, name: nil, tokenHash: nil)
        snapshot.states[0].append(StateSlot(name: "momentum_buffer", value: .packed(PackedTensor(zeros: TensorShape([Self.count]), element: .code8))))
        let decoded = try SessionSnapshot(decoding: try snapshot.encoded(), origin: "checkpoint")
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adamw", stateDType: .bf16))
        #expect(throws: StoreError.self) { try decoded.restore(into: session) }
        #expect(session.step == 0)
    }

    /// A moment's float32 values whatever its form.
    private func dequantized(_ state: StateSlots, _ name: String) throws -> [Float] {
        let f32 = try MomentConversion.convert(state.all, shape: TensorShape([Self.count]), to: .f32)
        guard case .tensor(let tensor) = f32.first(where: { $0.name == name })?.value else { return [] }
        return tensor.values
    }
}
