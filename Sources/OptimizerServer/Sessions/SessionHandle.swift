import Foundation
import OptimizerKit
import OptimizerStore
import Synchronization

/// One session as the server holds it: identity, the hashed bearer token, and the optimizer state
/// behind a per-session gate and lock.
///
/// Every operation on the state goes through ``withState(_:)``: it waits its turn at the session's
/// ``SerialGate`` (suspending, never blocking a thread), then runs on the ``ComputePool`` under the
/// state's `Mutex`. So the steps of one session are serialised, different sessions run in parallel,
/// and no CPU-heavy work runs on an event loop or the cooperative pool.
final class SessionHandle: Sendable {
    /// The session id (a random UUID, lower-case).
    let id: String
    /// The optional label given at creation.
    let name: String?
    /// The optimizer (fixed for the session's life).
    let optimizer: OptimizerKind
    /// When the session was created.
    let createdAt: Date

    private let token: TokenDigest
    private let gate = SerialGate()
    private let state: Mutex<SessionState>
    private let progressSnapshot: Mutex<Progress>
    private let pool: ComputePool
    let parallelism: Parallelism

    /// What listing shows without waiting for a running step: updated at the end of each change.
    struct Progress: Sendable {
        var step = 0
        var durableStep = 0
        var parameterTensors = 0
        var parameterCount = 0
        var lastTelemetry: StepTelemetry?
    }

    /// Creates a session around a validated configuration.
    convenience init(
        id: String,
        name: String?,
        token: TokenDigest,
        configuration: SessionConfiguration,
        historyCapacity: Int,
        pool: ComputePool
    ) {
        let identity = SessionIdentity(id: id, name: name, token: token, createdAt: Date())
        self.init(
            identity: identity,
            state: SessionState(session: OptimizerSession(configuration: configuration), identity: identity, historyCapacity: historyCapacity),
            pool: pool
        )
    }

    /// Wraps existing state (a session recovered from disk, or a new one).
    init(identity: SessionIdentity, state: SessionState, pool: ComputePool) {
        self.id = identity.id
        self.name = identity.name
        self.optimizer = state.session.configuration.optimizer
        self.createdAt = identity.createdAt
        self.token = identity.token
        self.pool = pool
        self.parallelism = Parallelism(threads: pool.threads)
        self.progressSnapshot = Mutex(state.progress)
        self.state = Mutex(state)
    }

    /// Whether `candidate` is this session's bearer token (constant-time).
    func isAuthorized(byToken candidate: String) -> Bool { token.matches(candidate) }

    /// The latest progress, without waiting for a running operation.
    var progress: Progress { progressSnapshot.withLock { $0 } }

    /// Runs `body` under the state lock on the compute pool without queueing at the gate: for short
    /// housekeeping (the periodic log flush) that must not wait behind queued requests.
    func withStateLock<T: Sendable>(_ body: @escaping @Sendable (inout SessionState) throws -> T) async throws -> T {
        try await pool.run {
            try self.state.withLock { state in
                defer { self.progressSnapshot.withLock { $0 = state.progress } }
                return try body(&state)
            }
        }
    }

    /// Runs `body` with exclusive access to the state, on the compute pool.
    ///
    /// Waits (suspended) behind earlier operations on this session, then takes a pool thread and
    /// the state lock. The progress snapshot is refreshed afterwards, also when `body` throws.
    func withState<T: Sendable>(_ body: @escaping @Sendable (inout SessionState) throws -> T) async throws -> T {
        try await gate.withPermit {
            try await pool.run {
                try self.state.withLock { state in
                    defer { self.progressSnapshot.withLock { $0 = state.progress } }
                    return try body(&state)
                }
            }
        }
    }
}

/// Who a session is: what its durable snapshots record besides the optimizer state.
struct SessionIdentity: Sendable {
    let id: String
    let name: String?
    let token: TokenDigest
    let createdAt: Date
}

/// The mutable part of a session, only touched under its ``SessionHandle``'s lock.
///
/// `@unchecked Sendable`: every access goes through the handle's `Mutex` (``SessionHandle/withState(_:)``),
/// and the objects it references (the `OptimizerSession`, its buffers, the journal) belong to exactly
/// one state. It is only built outside the lock before the handle exists (creation and recovery).
struct SessionState: @unchecked Sendable {
    /// The optimizer library's session: parameters, state slots, configuration, step.
    /// Replaced whole by a checkpoint restore.
    var session: OptimizerSession
    /// Identity fields for snapshots.
    var identity: SessionIdentity
    /// The session's durable files; nil when the daemon keeps sessions in memory only.
    var journal: SessionJournal?
    /// Why the last automatic snapshot failed, if it did (the step itself was logged).
    var snapshotProblem: String?
    /// Telemetry of recent steps.
    var history: StepHistory
    /// What the last applied step returned, for idempotent retries.
    var lastStep: AppliedStep?

    /// The parameters and (if kept) deltas of the last applied step.
    struct AppliedStep {
        /// Indices of the parameters that had gradients, ascending.
        var parameterIndices: [Int]
        /// θ_after − θ_before for those parameters, kept when the step was asked for `return=delta`.
        var delta: [TensorBuffer]?
    }

    init(session: OptimizerSession, identity: SessionIdentity, historyCapacity: Int, journal: SessionJournal? = nil) {
        self.session = session
        self.identity = identity
        self.journal = journal
        self.history = StepHistory(capacity: historyCapacity)
    }

    /// The step that survives a crash: everything with `fsync always`, the last flushed step with
    /// `periodic`; 0 when sessions live in memory only.
    var durableStep: Int { journal?.durableStep ?? 0 }

    /// The session as a durable snapshot, with its identity.
    var snapshot: SessionSnapshot { makeSnapshot(of: session) }

    /// `session` (this one, or one about to replace it) as a durable snapshot with this identity.
    func makeSnapshot(of session: OptimizerSession) -> SessionSnapshot {
        SessionSnapshot(
            session: session, id: identity.id, name: identity.name, tokenHash: identity.token.hex,
            createdAt: identity.createdAt.timeIntervalSince1970
        )
    }

    /// Writes a snapshot now if the journal wants one (every `--snapshot-every` steps, or when the log
    /// has outgrown the state). A failure is remembered, not thrown: the change itself is in the log.
    mutating func snapshotIfDue() {
        guard let journal, journal.wantsSnapshot(atStep: session.step) else { return }
        do {
            try journal.writeSnapshot(snapshot)
            snapshotProblem = nil
        } catch {
            snapshotProblem = "\(error)"
        }
    }

    var progress: SessionHandle.Progress {
        .init(
            step: session.step,
            durableStep: durableStep,
            parameterTensors: session.parameters.count,
            parameterCount: session.parameterCount,
            lastTelemetry: session.lastTelemetry
        )
    }
}
