import CChecksum
import Foundation
import OptimizerKit
import OptimizerWire

/// Everything needed to rebuild a session exactly: its configuration, identity, step counter,
/// parameters and every optimizer state slot, as one checksummed safetensors file.
///
/// The same format serves as the durable snapshot (with ``id`` and ``tokenHash``) and as the
/// user-facing checkpoint of `GET /v1/sessions/{id}/checkpoint` (without them).
///
/// Tensors: `param/<name>` (F32), `state/<name>/<slot>` (F32 tensors; F64 rank-0 for scalar slots;
/// with compact state also `U8` 8-bit codes and `BF16` moments), `global/<slot>`. `__metadata__`:
/// `format` (`optimizerd-checkpoint`), `format_version` (`1`; `2` for compact state, which adds
/// `state_dtype` — `bf16` or `int8` — and the U8/BF16 slots; both versions load),
/// `optimizer`, `hyperparameters` and `groups` (JSON as given at creation or by PATCH), `terms`,
/// `step`, `parameters` (JSON list, session order), `slots` (JSON object: parameter → slot names in
/// order), `global_slots`, `last_telemetry` (JSON), optional `id`, `name`, `token_sha256`, `created_at`,
/// `durability`, and
/// `checksum`: CRC-32C over the data section, every tensor's name/dtype/shape, and every other
/// metadata entry, so a flipped bit anywhere is detected.
public struct SessionSnapshot {
    /// The session id (snapshots only).
    public var id: String?
    /// The optional human label.
    public var name: String?
    /// Hex SHA-256 of the session's bearer token (snapshots only).
    public var tokenHash: String?
    /// When the session was created, as seconds since 1970 (snapshots only).
    public var createdAt: Double?
    /// The session's durability mode (snapshots only; nil in checkpoints and older snapshots, read as
    /// ``DurabilityMode/log``).
    public var durability: DurabilityMode?
    /// The optimizer name.
    public var optimizer: String
    /// Hyperparameters as given.
    public var hyperparameters: Hyperparameters
    /// Parameter groups as given.
    public var groups: [ParameterGroup]
    /// The session step.
    public var step: Int
    /// The last step's telemetry.
    public var lastTelemetry: StepTelemetry?
    /// The parameters the last step changed (the tensors its answer carried), when that step is the
    /// snapshot's own `step`: what a daemon recovering from this snapshot needs to answer a retry of
    /// it. Nil otherwise and in older files.
    public var lastStepParameters: [String]?
    /// Parameter names, in session order.
    public var parameterNames: [String]
    /// Parameter values (references to live buffers when captured; copy before changing the session).
    public var parameters: [TensorBuffer]
    /// Per-parameter state slots.
    public var states: [[StateSlot]]
    /// Session-wide state slots.
    public var global: [StateSlot]
    /// How the moments are stored (`f32` in version-1 files).
    public var stateDType: StateDType = .f32

    static let format = "optimizerd-checkpoint"
    static let formatVersion = "1"
    /// The largest step a snapshot or checkpoint may be at (2^53: every step count up to it is exact
    /// in the float64 of JSON clients and of the optimizers' bias corrections, and the next step
    /// cannot overflow).
    public static let maxStep = 1 << 53
    /// The version of files with compact state (`state_dtype` bf16 or int8, DESIGN §10).
    static let compactFormatVersion = "2"

    /// Captures a session's current content. Buffers are referenced, not copied: encode before the
    /// session changes again.
    public init(
        session: OptimizerSession, id: String?, name: String?, tokenHash: String?, createdAt: Double? = nil,
        durability: DurabilityMode? = nil
    ) {
        let configuration = session.configuration
        self.durability = durability
        self.id = id
        self.name = name
        self.tokenHash = tokenHash
        self.createdAt = createdAt
        optimizer = configuration.optimizer.rawValue
        hyperparameters = configuration.hyperparameters
        groups = configuration.groups
        stateDType = configuration.stateDType
        step = session.step
        lastTelemetry = session.lastTelemetry
        parameterNames = session.parameterNames
        parameters = session.parameters
        states = session.states.map(\.all)
        global = session.globalState.all
    }

    /// Builds a new session from the snapshot, keeping its moments as `stateDType` (the snapshot's own
    /// unless given; others are converted, ``MomentConversion``).
    ///
    /// `checkingValues` false skips the checks of the values (parameters finite, state a run can
    /// produce) for the daemon's own snapshots: their checksum vouches for them, and they hold
    /// whatever the session held, which a step can leave outside those checks (a second moment of
    /// +∞, parameters a diverging run made non-finite). The structure is checked either way.
    ///
    /// - Throws: ``OptimizerError`` if the configuration is no longer valid (or not with
    ///   `stateDType`), or ``StoreError`` if a state slot does not fit its parameter.
    public func makeSession(stateDType: StateDType? = nil, checkingValues: Bool = true) throws -> OptimizerSession {
        let configuration = try SessionConfiguration(
            optimizer: optimizer, hyperparameters: hyperparameters, groups: groups, stateDType: stateDType ?? self.stateDType
        )
        let session = OptimizerSession(configuration: configuration)
        try restore(into: session, checkingValues: checkingValues)
        return session
    }

    /// Replaces `session`'s configuration, step, parameters and state with the snapshot's (a
    /// checkpoint restore), after checking all of it; on error nothing changes. The session keeps its
    /// state dtype: moments saved in another one are converted (``MomentConversion``).
    ///
    /// - Throws: ``StoreError`` (`corrupt`) when the optimizer or the number of loss terms differs
    ///   from the session's, or a tensor does not fit; ``OptimizerError`` for invalid hyperparameters.
    public func restore(into session: OptimizerSession, checkingValues: Bool = true) throws {
        guard session.configuration.optimizer.rawValue == optimizer else {
            throw StoreError.corrupt("checkpoint", "is for optimizer \(optimizer), the session uses \(session.configuration.optimizer.rawValue)")
        }
        let configuration = try SessionConfiguration(
            optimizer: optimizer, hyperparameters: hyperparameters, groups: groups, stateDType: session.configuration.stateDType
        )
        guard configuration.terms == session.configuration.terms else {
            throw StoreError.corrupt("checkpoint", "has \(configuration.terms) loss terms, the session has \(session.configuration.terms)")
        }
        guard parameters.count == parameterNames.count, states.count == parameterNames.count else {
            throw StoreError.corrupt("checkpoint", "parameter and state lists differ in length")
        }
        for (name, tensor) in zip(parameterNames, parameters) where checkingValues && !tensor.readOnly.allSatisfy(\.isFinite) {
            throw StoreError.corrupt("checkpoint", "parameter \(name) contains non-finite values")
        }
        let converted: [[StateSlot]]
        do {
            converted = try zip(states, parameters).map { slots, parameter in
                try MomentConversion.convert(slots, shape: parameter.shape, to: configuration.stateDType)
            }
        } catch let error as OptimizerError {
            throw StoreError.corrupt("checkpoint", error.message)
        }
        for (index, slots) in converted.enumerated() {
            for slot in slots {
                let problem =
                    SlotRules.shapeProblem(slot: slot, parameter: parameters[index].shape)
                    ?? (checkingValues ? SlotRules.valueProblem(slot: slot) : nil)
                if let problem {
                    throw StoreError.corrupt("checkpoint", "state slot \(parameterNames[index])/\(slot.name) \(problem)")
                }
            }
        }
        for slot in global {
            guard case .scalar(let value) = slot.value else { throw StoreError.corrupt("checkpoint", "global slot \(slot.name) must be a scalar") }
            if checkingValues, let problem = SlotRules.problem(scalar: value, named: slot.name) {
                throw StoreError.corrupt("checkpoint", "global slot \(slot.name) \(problem)")
            }
        }
        try session.reconfigure(configuration)
        session.restore(
            step: step,
            parameters: zip(parameterNames, parameters).map { ($0, $1) },
            states: converted,
            global: global,
            lastTelemetry: lastTelemetry
        )
    }
}

/// What a restored state slot may look like: tensors shaped like the parameter (Adafactor's row and
/// column statistics drop the last or second-to-last axis; 8-bit absmax slots hold one float per
/// block of 256), compact tensors shaped like the parameter, and scalars where the optimizers keep
/// scalars (``scalars``). A slot of the other kind would live beside the one the next step makes
/// under the same name, and every later checkpoint and snapshot would fail on the duplicate.
///
/// A checkpoint's values are checked too (``valueProblem(slot:)``): only what a run can produce,
/// since the next step would turn anything else into non-finite parameters.
enum SlotRules {
    /// Slots holding averages of squares or of magnitudes (Adam's, Adafactor's, MoMo-Adam's second
    /// moments, ACClip's τ): never negative, and +∞ once a gradient's square overflowed float32
    /// (a finite gradient above ~1.8e19 does that, in torch as here).
    static let nonNegative: Set<String> = ["exp_avg_sq", "max_exp_avg_sq", "exp_avg_sq_row", "exp_avg_sq_col", "grad_avg_sq", "tau_alpha"]

    /// The per-parameter slots the optimizers keep as scalars (step counts, Adafactor's RMS, MoMo's
    /// ⟨g, θ⟩, MTAdam's per-term gradient-norm EMAs `grad_norm_ema.<term>`); every other slot is a tensor.
    static let scalars: Set<String> = ["step", "RMS", "grad_dot_w", "grad_norm_ema"]

    /// Whether a slot's shape and kind fit the parameter's `shape`; nil when they do.
    static func shapeProblem(slot: StateSlot, parameter shape: TensorShape) -> String? {
        let isScalar = scalars.contains(baseName(slot.name))
        if case .scalar = slot.value {
            return isScalar ? nil : "is a scalar, but this slot holds a tensor"
        }
        if isScalar { return "is a tensor, but this slot holds a scalar" }
        switch slot.value {
        case .scalar:
            return nil
        case .packed(let tensor):
            guard MomentConversion.moments.contains(slot.name) else { return "is compact, which only exp_avg and exp_avg_sq may be" }
            return tensor.shape == shape ? nil : "has shape \(tensor.shape), expected \(shape)"
        case .tensor(let tensor) where slot.name.hasSuffix("_absmax"):
            let blocks = [Int8AdamKernel.blockCount(shape.elementCount)]
            return tensor.shape.dimensions == blocks ? nil : "has shape \(tensor.shape), expected \(TensorShape(blocks))"
        case .tensor(let tensor):
            var expected = shape.dimensions
            if slot.name == "exp_avg_sq_row", expected.count >= 2 {
                expected.removeLast()
            } else if slot.name == "exp_avg_sq_col", expected.count >= 2 {
                expected.remove(at: expected.count - 2)
            }
            return tensor.shape.dimensions == expected ? nil : "has shape \(tensor.shape), expected \(TensorShape(expected))"
        }
    }

    /// Whether slot `name` holds values that are never negative.
    static func isNonNegative(_ name: String) -> Bool { nonNegative.contains(baseName(name)) }

    /// A slot's name without MTAdam's per-term suffix: `<slot>.<term>` (`exp_avg_sq.0`) → `<slot>`.
    static func baseName(_ name: String) -> String {
        guard let dot = name.lastIndex(of: "."), name[name.index(after: dot)...].allSatisfy(\.isNumber) else { return name }
        return String(name[..<dot])
    }

    /// Whether a slot's values are ones a run can give it; nil when they are.
    static func valueProblem(slot: StateSlot) -> String? {
        let nonNegative = isNonNegative(slot.name)
        switch slot.value {
        case .scalar(let value):
            return problem(scalar: value, named: slot.name)
        case .packed(let tensor) where tensor.element == .code8:
            // 8-bit second moments use the unsigned map: every code is ≥ 0.
            return nil
        case .packed(let tensor):
            let bits = UnsafeBufferPointer(start: tensor.bfloat16Bits, count: tensor.count)
            return problem(bits.lazy.map { Float(bitPattern: UInt32($0) << 16) }, nonNegative: nonNegative)
        case .tensor(let tensor) where slot.name.hasSuffix("_absmax"):
            return tensor.readOnly.allSatisfy { $0.isFinite && $0 >= 0 } ? nil : "holds a negative or non-finite scale"
        case .tensor(let tensor):
            return problem(tensor.readOnly, nonNegative: nonNegative)
        }
    }

    private static func problem(_ values: some Sequence<Float>, nonNegative: Bool) -> String? {
        if nonNegative {
            return values.allSatisfy({ $0 >= 0 }) ? nil : "holds negative or NaN values, which no run gives it"
        }
        return values.allSatisfy(\.isFinite) ? nil : "contains non-finite values"
    }

    /// A scalar slot's problem: not finite, or a `step` count that is not a whole number in 0…``SessionSnapshot/maxStep``.
    static func problem(scalar value: Double, named name: String) -> String? {
        guard value.isFinite else { return "is not finite" }
        guard name == "step" else { return nil }
        return value >= 0 && value <= Double(SessionSnapshot.maxStep) && value.rounded() == value
            ? nil : "is \(value), not a whole number of steps in 0…\(SessionSnapshot.maxStep)"
    }
}
