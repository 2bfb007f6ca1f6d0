import Foundation
import OptimizerKit
import OptimizerStore

/// `GET /v1/sessions/{id}`: everything about a session except tensor values.
struct SessionSummary: Encodable, Sendable {
    var id: String
    var name: String?
    var optimizer: String
    var createdAt: String
    /// Effective hyperparameters (defaults filled in) of the default group, session options included.
    var hyperparameters: Hyperparameters
    /// The parameter groups with their effective hyperparameters and member parameters.
    var groups: [Group]
    var step: Int
    /// The last step that survives a crash (0 when the daemon keeps sessions in memory only).
    var durableStep: Int
    /// What carries the steps across a crash: `log` or `snapshot`.
    var durability: DurabilityMode
    /// The step of the newest complete snapshot (a restart replays the log after it); 0 when the
    /// daemon keeps sessions in memory only.
    var snapshotStep: Int
    /// Why the last background snapshot could not be taken or written; absent once one is. Nothing
    /// is lost meanwhile: with `log` the steps stay in the log, with `snapshot` `durable_step` stays.
    var snapshotProblem: String?
    /// Total number of parameter elements.
    var parameterCount: Int
    /// How the optimizer's moments are stored: `f32`, `bf16` or `int8` (DESIGN §10).
    var stateDType: StateDType
    /// The bytes the optimizer state holds now (compact slots at their compact size).
    var stateBytes: Int
    /// What the session holds in the memory budget: parameters, optimizer state (also the state its
    /// next step creates) and a delta kept for a retry.
    var memoryBytes: Int
    var parameters: [Parameter]
    /// Global view of the optimizer state: session-wide slots and each slot's norm over all parameters.
    var state: State
    /// Telemetry of the last step, if any.
    var lastStep: StepTelemetry?
    /// The parts staged for the next step, if any (PUT …/steps/{n}/parts/{part}).
    var stagedStep: StagedStepSummary?

    struct Group: Encodable, Sendable {
        var parameters: [String]
        var hyperparameters: Hyperparameters
        var members: [String]
    }

    struct Parameter: Encodable, Sendable {
        var name: String
        var shape: [Int]
        var numel: Int
        var norm: Double
        /// 0 for the default group, i + 1 for `groups[i]`.
        var group: Int
        var state: [Slot]
    }

    struct Slot: Encodable, Sendable {
        var name: String
        /// Tensor slots: the shape. Scalar slots: absent.
        var shape: [Int]?
        /// Tensor slots: how the elements are stored, `f32`, `bf16` or `u8` (8-bit codes, whose
        /// block scales are the slot `<name>_absmax`).
        var dtype: String?
        /// L2 norm (tensor, 8-bit codes dequantized) or absolute value (scalar).
        var norm: Double
        /// Scalar slots: the value (e.g. `step`).
        var value: Double?

        init(_ slot: StateSlot, in slots: StateSlots) {
            name = slot.name
            norm = slots.norm(of: slot)
            switch slot.value {
            case .tensor(let tensor):
                shape = tensor.shape.dimensions
                dtype = "f32"
            case .packed(let tensor):
                shape = tensor.shape.dimensions
                dtype = tensor.element == .code8 ? "u8" : "bf16"
            case .scalar(let scalar): value = scalar
            }
        }
    }

    struct State: Encodable, Sendable {
        /// Session-wide slots (MoMo's loss average, ...).
        var global: [Slot]
        /// For each tensor slot name, the L2 norm over all parameters.
        var norms: [String: Double]
    }

    enum CodingKeys: String, CodingKey {
        case id, name, optimizer, hyperparameters, groups, step, parameters, state, durability
        case createdAt = "created_at"
        case durableStep = "durable_step"
        case snapshotStep = "snapshot_step"
        case snapshotProblem = "snapshot_problem"
        case parameterCount = "parameter_count"
        case stateDType = "state_dtype"
        case stateBytes = "state_bytes"
        case memoryBytes = "memory_bytes"
        case lastStep = "last_step"
        case stagedStep = "staged_step"
    }
}

extension SessionState {
    /// The summary of this state for the session `handle`.
    func summary(of handle: SessionHandle) -> SessionSummary {
        let configuration = session.configuration
        let groupOf = session.parameterGroups
        var squaredNorms: [String: Double] = [:]
        var parameters: [SessionSummary.Parameter] = []
        for (index, name) in session.parameterNames.enumerated() {
            let tensor = session.parameters[index]
            let state = session.states[index]
            let slots = state.all
            // Tensor slots, 8-bit codes dequantized (their absmax slots are scales, not state).
            for slot in slots where !slot.name.hasSuffix("_absmax") {
                if case .scalar = slot.value { continue }
                let norm = state.norm(of: slot)
                squaredNorms[slot.name, default: 0] += norm * norm
            }
            parameters.append(
                .init(
                    name: name, shape: tensor.shape.dimensions, numel: tensor.count, norm: tensor.norm,
                    group: groupOf[index], state: slots.map { SessionSummary.Slot($0, in: state) }
                )
            )
        }
        let groups = configuration.groups.enumerated().map { offset, group in
            SessionSummary.Group(
                parameters: group.parameters,
                hyperparameters: configuration.effectiveHyperparameters[offset + 1],
                members: session.parameterNames.indices.filter { groupOf[$0] == offset + 1 }.map { session.parameterNames[$0] }
            )
        }
        return SessionSummary(
            id: handle.id,
            name: handle.name,
            optimizer: configuration.optimizer.rawValue,
            createdAt: handle.createdAt.formatted(.iso8601),
            hyperparameters: configuration.effectiveHyperparameters[0],
            groups: groups,
            step: session.step,
            durableStep: durableStep,
            durability: durability,
            snapshotStep: journal?.snapshotStep ?? 0,
            snapshotProblem: snapshotProblem,
            parameterCount: session.parameterCount,
            stateDType: configuration.stateDType,
            stateBytes: session.stateBytes,
            memoryBytes: handle.memory.bytes,
            parameters: parameters,
            state: .init(
                global: session.globalState.all.map { SessionSummary.Slot($0, in: session.globalState) },
                norms: squaredNorms.mapValues { $0.squareRoot() }
            ),
            lastStep: session.lastTelemetry,
            stagedStep: stagedSummary
        )
    }
}
