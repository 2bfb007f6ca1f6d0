import Foundation
import OptimizerKit
import Testing

@testable import OptimizerStore

/// A checkpoint is restored only with values a run can produce (the next step would turn anything
/// else into non-finite parameters); the daemon's own snapshots restore whatever the session held.
struct SnapshotValueRulesTests {
    /// The fixture session after two steps, in `stateDType`.
    static func steppedSession(_ stateDType: StateDType = .f32) throws -> OptimizerSession {
        let session = OptimizerSession(
            configuration: try SessionConfiguration(optimizer: "adam", hyperparameters: ["lr": .number(0.01)], stateDType: stateDType))
        let fixture = try StoreFixtures.session()
        session.restore(
            step: 0, parameters: zip(fixture.parameterNames, fixture.parameters).map { ($0, $1) }, states: [[], []], global: [],
            lastTelemetry: nil)
        for step in 1...2 {
            try StoreFixtures.replay(LogRecord(kind: .step, step: UInt64(step), contentEncoding: nil, body: try StoreFixtures.stepBody(step)), session)
        }
        return session
    }

    /// A decoded snapshot of `session` whose slot `name` of parameter `w` is replaced by `value`.
    static func snapshot(of session: OptimizerSession, replacing name: String, with value: (StateSlot.Value) -> StateSlot.Value) throws -> SessionSnapshot {
        var snapshot = try SessionSnapshot(
            decoding: SessionSnapshot(session: session, id: "s", name: nil, tokenHash: "ab").encoded(), origin: "test")
        #expect(snapshot.states[0].contains { $0.name == name })
        snapshot.states[0] = snapshot.states[0].map { $0.name == name ? StateSlot(name: name, value: value($0.value)) : $0 }
        return snapshot
    }

    static func filled(_ value: Float) -> (StateSlot.Value) -> StateSlot.Value {
        { old in
            guard case .tensor(let tensor) = old else { fatalError("a float32 slot") }
            return .tensor(TensorBuffer(shape: tensor.shape, values: [Float](repeating: value, count: tensor.count)))
        }
    }

    /// State no run gives: the slot, its new value, and a word of the refusal.
    enum Hostile: CaseIterable {
        case negativeSecondMoment, nanSecondMoment, negativeInfiniteSecondMoment, infiniteFirstMoment
        case negativeStep, fractionalStep, hugeStep

        var slot: String {
            switch self {
            case .negativeSecondMoment, .nanSecondMoment, .negativeInfiniteSecondMoment: "exp_avg_sq"
            case .infiniteFirstMoment: "exp_avg"
            case .negativeStep, .fractionalStep, .hugeStep: "step"
            }
        }

        var value: (StateSlot.Value) -> StateSlot.Value {
            switch self {
            case .negativeSecondMoment: SnapshotValueRulesTests.filled(-1)
            case .nanSecondMoment: SnapshotValueRulesTests.filled(.nan)
            case .negativeInfiniteSecondMoment: SnapshotValueRulesTests.filled(-.infinity)
            case .infiniteFirstMoment: SnapshotValueRulesTests.filled(.infinity)
            case .negativeStep: { _ in .scalar(-1) }
            case .fractionalStep: { _ in .scalar(1.5) }
            case .hugeStep: { _ in .scalar(0x1p60) }
            }
        }

        var problem: String {
            switch self {
            case .negativeSecondMoment, .negativeInfiniteSecondMoment: "negative"
            case .nanSecondMoment: "NaN"
            case .infiniteFirstMoment: "non-finite"
            case .negativeStep, .fractionalStep, .hugeStep: "whole number"
            }
        }
    }

    @Test(arguments: Hostile.allCases)
    func checkpointStateNoRunGivesIsRefusedAndChangesNothing(hostile: Hostile) throws {
        let checkpoint = try Self.snapshot(of: try Self.steppedSession(), replacing: hostile.slot, with: hostile.value)
        let target = try Self.steppedSession()
        try StoreFixtures.replay(LogRecord(kind: .step, step: 3, contentEncoding: nil, body: try StoreFixtures.stepBody(3)), target)
        let before = StoreFixtures.fingerprint(target)
        #expect {
            try checkpoint.restore(into: target)
        } throws: { error in
            "\(error)".contains("w/\(hostile.slot)") && "\(error)".contains(hostile.problem)
        }
        #expect(StoreFixtures.fingerprint(target) == before)
        // The daemon's own snapshot holds what its session held: restored as it is.
        #expect(throws: Never.self) { try checkpoint.makeSession(checkingValues: false) }
    }

    /// A slot of the wrong kind (the step count as a tensor, a moment as a scalar) would live beside
    /// the one the next step makes under the same name: refused, whoever wrote the file.
    @Test func aStepCountAsATensorIsRefused() throws {
        let checkpoint = try Self.snapshot(of: try Self.steppedSession(), replacing: "step") { _ in
            .tensor(TensorBuffer(shape: TensorShape([1]), values: [2]))
        }
        let target = try Self.steppedSession()
        let before = StoreFixtures.fingerprint(target)
        #expect {
            try checkpoint.restore(into: target)
        } throws: { error in
            "\(error)".contains("w/step") && "\(error)".contains("is a tensor")
        }
        #expect(StoreFixtures.fingerprint(target) == before)
        #expect(throws: StoreError.self) { try checkpoint.makeSession(checkingValues: false) }
    }

    @Test func eachSlotHasOneKind() {
        let shape = TensorShape([3])
        let tensor = StateSlot.Value.tensor(TensorBuffer(zeros: shape))
        for name in ["momentum_buffer", "exp_avg_sq.1", "grad_avg", "exp_avg_sq_row"] {
            #expect(SlotRules.shapeProblem(slot: StateSlot(name: name, value: .scalar(1)), parameter: shape) != nil, "\(name)")
        }
        for name in ["step", "RMS", "grad_dot_w", "grad_norm_ema.0"] {
            #expect(SlotRules.shapeProblem(slot: StateSlot(name: name, value: .scalar(1)), parameter: shape) == nil, "\(name)")
            #expect(SlotRules.shapeProblem(slot: StateSlot(name: name, value: tensor), parameter: shape) != nil, "\(name)")
        }
        #expect(SlotRules.shapeProblem(slot: StateSlot(name: "exp_avg_sq.1", value: tensor), parameter: shape) == nil)
    }

    /// A finite gradient above ~1.8e19 squares to +∞ in float32 (in torch as here): a second moment
    /// of +∞ is a state runs reach, so its checkpoint restores.
    @Test func aSecondMomentOfInfinityRestores() throws {
        let checkpoint = try Self.snapshot(of: try Self.steppedSession(), replacing: "exp_avg_sq", with: Self.filled(.infinity))
        let target = try Self.steppedSession()
        try checkpoint.restore(into: target)
        #expect(StoreFixtures.fingerprint(target) == StoreFixtures.fingerprint(try checkpoint.makeSession()))
    }

    /// MTAdam keeps one second moment per loss term, `exp_avg_sq.<term>`: the same rules.
    @Test func mtadamsPerTermSecondMomentsFollowTheSameRules() {
        #expect(SlotRules.isNonNegative("exp_avg_sq.0") && SlotRules.isNonNegative("max_exp_avg_sq.12"))
        #expect(!SlotRules.isNonNegative("exp_avg.0") && !SlotRules.isNonNegative("exp_avg_sq.x"))
        let shape = TensorShape([2])
        let negative = StateSlot(name: "exp_avg_sq.1", value: .tensor(TensorBuffer(shape: shape, values: [-1, 0])))
        #expect(SlotRules.valueProblem(slot: negative)?.contains("negative") == true)
        let infinite = StateSlot(name: "exp_avg_sq.1", value: .tensor(TensorBuffer(shape: shape, values: [.infinity, 0])))
        #expect(SlotRules.valueProblem(slot: infinite) == nil)
    }

    @Test func aNegativeBFloat16SecondMomentIsRefused() throws {
        let session = try Self.steppedSession(.bf16)
        let checkpoint = try Self.snapshot(of: session, replacing: "exp_avg_sq") { old in
            guard case .packed(let tensor) = old else { fatalError("a bf16 slot") }
            let negative = [UInt16](repeating: 0xBF80, count: tensor.count)  // −1.0
            return .packed(negative.withUnsafeBytes { PackedTensor(shape: tensor.shape, element: .bfloat16, copying: $0) })
        }
        #expect {
            try checkpoint.restore(into: try Self.steppedSession(.bf16))
        } throws: { "\($0)".contains("w/exp_avg_sq") && "\($0)".contains("negative") }
        // −0 is not negative.
        let zero = try Self.snapshot(of: session, replacing: "exp_avg_sq") { old in
            guard case .packed(let tensor) = old else { fatalError("a bf16 slot") }
            let negativeZero = [UInt16](repeating: 0x8000, count: tensor.count)
            return .packed(negativeZero.withUnsafeBytes { PackedTensor(shape: tensor.shape, element: .bfloat16, copying: $0) })
        }
        try zero.restore(into: try Self.steppedSession(.bf16))
    }

    /// The step of a snapshot is at most 2^53: the next step's count cannot overflow (a checkpoint at
    /// step 2^63 − 1 once stopped the daemon at its next step).
    @Test func aStepBeyondTheLimitIsRefusedWhenDecoded() throws {
        var snapshot = SessionSnapshot(session: try Self.steppedSession(), id: "s", name: nil, tokenHash: "ab")
        snapshot.step = SessionSnapshot.maxStep
        #expect(try SessionSnapshot(decoding: snapshot.encoded(), origin: "test").step == SessionSnapshot.maxStep)
        snapshot.step = SessionSnapshot.maxStep + 1
        #expect {
            try SessionSnapshot(decoding: snapshot.encoded(), origin: "test")
        } throws: { "\($0)".contains("step \(SessionSnapshot.maxStep + 1)") }
    }

    @Test func theLastStepsParametersAreKept() throws {
        var snapshot = SessionSnapshot(session: try Self.steppedSession(), id: "s", name: nil, tokenHash: "ab")
        #expect(try SessionSnapshot(decoding: snapshot.encoded(), origin: "test").lastStepParameters == nil)
        snapshot.lastStepParameters = ["b"]
        #expect(try SessionSnapshot(decoding: snapshot.encoded(), origin: "test").lastStepParameters == ["b"])
    }
}
