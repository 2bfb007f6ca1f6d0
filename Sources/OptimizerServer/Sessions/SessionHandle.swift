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
    /// How the optimizer's moments are stored (fixed for the session's life).
    let stateDType: StateDType
    /// When the session was created.
    let createdAt: Date

    private let token: TokenDigest
    private let gate = SerialGate()
    /// Set once the session is deleted (``delete(_:)``): requests still holding the handle get 404.
    private let isDeleted = Atomic<Bool>(false)
    private let state: Mutex<SessionState>
    private let progressSnapshot: Mutex<Progress>
    private let pool: ComputePool
    let parallelism: Parallelism
    /// The session's parameters and optimizer state in the memory budget (``SessionState/memoryFootprint(configuration:adding:)``),
    /// with the room its steps need; given back when the session is deleted.
    let memory: MemoryReservation
    /// Where the session's background snapshots are written; nil in memory.
    let snapshots: SnapshotWriter?
    /// Whether a step or part body of this session holds the budget's room kept for steps now.
    private let stepBodyHoldsRoom = Atomic<Bool>(false)

    /// What listing shows without waiting for a running step: updated at the end of each change.
    struct Progress: Sendable {
        var step = 0
        var durableStep = 0
        var parameterTensors = 0
        var parameterCount = 0
        /// The bytes the optimizer state holds (compact slots at their size).
        var stateBytes = 0
        var lastTelemetry: StepTelemetry?
        /// Where large logged bodies are written as they arrive (``BodySpool``); nil in memory.
        var spool: SpoolTarget?
        /// Whether steps are logged (durability log), so that their bodies are worth spooling.
        var logsSteps = false
    }

    /// Wraps existing state (a session recovered from disk, or a new one) whose memory `memory` holds.
    init(identity: SessionIdentity, state: SessionState, pool: ComputePool, memory: MemoryReservation, snapshots: SnapshotWriter? = nil) {
        self.snapshots = snapshots
        self.id = identity.id
        self.name = identity.name
        self.optimizer = state.session.configuration.optimizer
        stateDType = state.session.configuration.stateDType
        self.createdAt = identity.createdAt
        self.token = identity.token
        self.pool = pool
        self.memory = memory
        self.parallelism = Parallelism(threads: pool.threads)
        self.progressSnapshot = Mutex(state.progress)
        self.state = Mutex(state)
    }

    /// Runs `body` (reading and serving a step or part body) with how many body bytes may use the
    /// memory budget's room kept for steps: this session's step room (plus room for a header) while
    /// no other step or part body of the session holds it, else none. One tenant opening many
    /// requests at once (or trickling bodies whose Content-Length is reserved up front) then holds at
    /// most one step's worth of that room, and its other bodies must fit beside it, as an upload does:
    /// the other sessions keep stepping.
    func withStepBodyRoom<T>(_ body: (Int) async throws -> T) async rethrows -> T {
        let claimed = stepBodyHoldsRoom.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
        defer { if claimed { stepBodyHoldsRoom.store(false, ordering: .releasing) } }
        return try await body(claimed ? memory.stepBytes + Self.stepHeaderRoom : 0)
    }

    /// Room for a step body's safetensors header and metadata beyond its tensors' bytes.
    static let stepHeaderRoom = 1 << 20

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
    /// the state lock. The progress snapshot is refreshed afterwards, also when `body` throws. When
    /// the change makes a snapshot due, it is handed to the ``SnapshotWriter``: this returns without
    /// waiting for it.
    func withState<T: Sendable>(_ body: @escaping @Sendable (inout SessionState) throws -> T) async throws -> T {
        let (result, snapshotDue) = try await gate.withPermit {
            try requireNotDeleted()
            return try await pool.run {
                try self.state.withLock { state in
                    defer { self.progressSnapshot.withLock { $0 = state.progress } }
                    let result = try body(&state)
                    return (result, state.scheduleSnapshotIfDue())
                }
            }
        }
        if snapshotDue { snapshots?.schedule(self) }
        return result
    }

    /// Deletes the session with `removeFiles` once the operation running on it (a step) has finished,
    /// at its gate: requests queued behind it, and those whose bodies were still arriving (their
    /// spool files in the session's directory), get 404 instead of writing into a directory that is
    /// gone. Nothing changes when `removeFiles` throws.
    func delete(_ removeFiles: @escaping @Sendable () async throws -> Void) async throws {
        try await gate.withPermit {
            try requireNotDeleted()
            try await removeFiles()
            isDeleted.store(true, ordering: .sequentiallyConsistent)
        }
    }

    private var wasDeleted: Bool { isDeleted.load(ordering: .sequentiallyConsistent) }

    private func requireNotDeleted() throws {
        if wasDeleted { throw ProblemError.notFound("session \(id) was deleted") }
    }

    /// Hands the session to the ``SnapshotWriter`` when a snapshot is due by now although no request
    /// came since its last steps (`--snapshot-interval` passed while it sat idle): without this, with
    /// `--durability snapshot` those steps would wait for the next request to become durable.
    /// Never waits: a session whose lock is taken is running an operation, after which
    /// ``withState(_:)`` makes the same check (waiting for the lock on a pool thread delayed other
    /// sessions' steps behind this one's).
    func scheduleSnapshotIfDue() {
        guard !wasDeleted else { return }
        let due = state.withLockIfAvailable { $0.scheduleSnapshotIfDue() } ?? false
        if due { snapshots?.schedule(self) }
    }

    /// Drops the session's staged parts once `--staged-step-ttl` passed, giving their memory back,
    /// although no request came for the session since (each request drops them too). Never waits:
    /// a session whose lock is taken is running an operation, which drops them itself.
    func dropExpiredStage() {
        guard !wasDeleted else { return }
        _ = state.withLockIfAvailable { $0.dropExpiredStage() }
    }

    /// Takes and writes the scheduled snapshot (on the ``SnapshotWriter``'s thread): memory for its
    /// copy is allocated and faulted in without the session's lock, the session is copied into it
    /// under the lock (all its steps wait for), then checksummed and written without the lock while
    /// its steps go on. Nil when there was nothing to write.
    func writeScheduledSnapshot() -> SnapshotReport? {
        guard !wasDeleted, let plan = state.withLock({ $0.planSnapshot() }) else { return nil }
        let staging = SnapshotStaging(byteCount: plan.byteCount)
        let start = ContinuousClock.now
        let pending: SessionState.PendingSnapshot
        do {
            guard let begun = try state.withLock({ try $0.beginSnapshot(plan, staging: staging) }) else { return nil }
            pending = begun
        } catch {
            let step = progressSnapshot.withLock { $0.step }
            return SnapshotReport(step: step, bytes: 0, writtenUnderLock: 0, copy: ContinuousClock.now - start, write: .zero, error: error)
        }
        let copied = ContinuousClock.now
        var failure: (any Error)?
        do {
            try pending.write.write()
        } catch {
            failure = error
        }
        let written = ContinuousClock.now
        state.withLock { state in
            state.finishSnapshot(pending, error: failure)
            progressSnapshot.withLock { $0 = state.progress }
        }
        return SnapshotReport(
            step: pending.write.step, bytes: pending.write.byteCount, writtenUnderLock: pending.write.writtenUnderLock,
            copy: copied - start, write: written - copied, error: failure)
    }
}

extension SessionHandle.Progress {
    /// Where a step body is written as it arrives: only when steps are logged.
    var stepSpool: SpoolTarget? { logsSteps ? spool : nil }
}
