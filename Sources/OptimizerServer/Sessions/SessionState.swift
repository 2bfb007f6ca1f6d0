import Foundation
import OptimizerKit
import OptimizerStore
import OptimizerWire

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
    /// The parts of the next step, staged until their commit (or expiry).
    var stagedStep: StagedStepState?
    /// The daemon's memory budget, for the transient copy a snapshot is encoded into.
    var memory: MemoryBudget = .unlimited
    /// What carries the session's steps across a crash; fixed at creation and kept in its snapshots.
    var durability: DurabilityMode = .log
    /// Whether a background snapshot is scheduled or being written (at most one per session).
    var isSnapshotPending = false

    init(session: OptimizerSession, identity: SessionIdentity, historyCapacity: Int, journal: SessionJournal? = nil) {
        self.session = session
        self.identity = identity
        self.journal = journal
        self.history = StepHistory(capacity: historyCapacity)
    }

    /// The step that survives a crash (``SessionJournal/durableStep``); 0 when sessions live in memory only.
    var durableStep: Int { journal?.durableStep ?? 0 }

    /// The session as a durable snapshot, with its identity.
    var snapshot: SessionSnapshot { makeSnapshot(of: session) }

    /// `session` (this one, or one about to replace it) as a durable snapshot with this identity.
    func makeSnapshot(of session: OptimizerSession) -> SessionSnapshot {
        var snapshot = SessionSnapshot(
            session: session, id: identity.id, name: identity.name, tokenHash: identity.token.hex,
            createdAt: identity.createdAt.timeIntervalSince1970, durability: durability
        )
        if session === self.session, let lastStep, lastStep.telemetry.step == session.step {
            snapshot.lastStepParameters = lastStep.parameterIndices.map { session.parameterNames[$0] }
        }
        return snapshot
    }

    /// The last step's answer, rebuilt from a snapshot taken right after it (recovery), so that a
    /// retry of that step is answered after a restart as before it; its delta is not kept.
    mutating func recoverLastStep(from snapshot: SessionSnapshot) {
        guard lastStep == nil, let names = snapshot.lastStepParameters, let telemetry = session.lastTelemetry,
            telemetry.step == session.step, snapshot.step == session.step
        else { return }
        let indices = names.compactMap { session.parameterNames.firstIndex(of: $0) }
        guard indices.count == names.count else { return }
        lastStep = AppliedStep(telemetry: telemetry, parameterIndices: indices.sorted(), delta: nil)
    }

    /// Whether to schedule a background snapshot now (``SnapshotPolicy``): true at most once until
    /// the snapshot ends (``planSnapshot()``, ``beginSnapshot(_:staging:)``, ``finishSnapshot(_:error:)``). The caller hands the
    /// session to the ``SnapshotWriter``, so no step waits for the snapshot's disk writes.
    mutating func scheduleSnapshotIfDue() -> Bool {
        guard !isSnapshotPending, let journal, journal.wantsSnapshot(atStep: session.step) else { return false }
        isSnapshotPending = true
        return true
    }

    /// A snapshot in the making: its staged copy, and that copy's room in the memory budget.
    struct PendingSnapshot: Sendable {
        let write: SnapshotWrite
        let copy: MemoryReservation
    }

    /// A scheduled snapshot about to be taken: the size of its copy, whose room in the memory
    /// budget is reserved.
    struct SnapshotPlan: Sendable {
        let byteCount: Int
        let copy: MemoryReservation
    }

    /// The first half of taking the scheduled snapshot (on the snapshot writer's thread, a short
    /// stay under the lock): reserves room for its copy and says how large to make it, so that the
    /// copy's memory is allocated and faulted in off the lock. The copy is as large as the memory
    /// budget allows (and `--snapshot-copy` says); what does not fit is written under the lock
    /// instead (``SessionSnapshot/stage(into:writingHeadTo:)``), so a large session is snapshotted
    /// however full the budget is, its steps waiting for that part. Nil when there is nothing to
    /// write (no step since the last snapshot).
    mutating func planSnapshot() -> SnapshotPlan? {
        guard let journal, session.step > journal.logStep else {
            isSnapshotPending = false
            return nil
        }
        let size = snapshot.dataByteCount
        let copy = memory.reserve(upTo: min(size, journal.snapshotCopyLimit ?? size), for: .staging, purpose: "a snapshot")
        return SnapshotPlan(byteCount: copy.bytes, copy: copy)
    }

    /// The second half (under the lock again): the session is copied into `staging` (memcpy speed;
    /// steps wait only for that, and for what had no room in it to be written) and a new log starts
    /// at its step. Nil when the session went back to its last snapshot's step meanwhile (a
    /// checkpoint restore).
    ///
    /// - Throws: why the snapshot could not begin (a full disk under the part written now, the new
    ///   log not made); also kept as ``snapshotProblem``. Nothing is lost: the log still holds every step.
    mutating func beginSnapshot(_ plan: SnapshotPlan, staging: SnapshotStaging) throws -> PendingSnapshot? {
        guard let journal, session.step > journal.logStep else {
            plan.copy.release()
            isSnapshotPending = false
            return nil
        }
        do {
            return PendingSnapshot(write: try journal.beginSnapshot(snapshot, staging: staging), copy: plan.copy)
        } catch {
            plan.copy.release()
            snapshotProblem = "\(error)"
            isSnapshotPending = false
            throw error
        }
    }

    /// Records how a background snapshot ended. A failure is remembered, not thrown: the steps are
    /// still in the log (or, with ``DurabilityMode/snapshot``, ``durableStep`` stays where it was).
    mutating func finishSnapshot(_ pending: PendingSnapshot, error: (any Error)?) {
        pending.copy.release()
        isSnapshotPending = false
        journal?.finishSnapshot(pending.write, error: error)
        snapshotProblem = error.map { "\($0)" }
    }

    var progress: SessionHandle.Progress {
        .init(
            step: session.step,
            durableStep: durableStep,
            parameterTensors: session.parameters.count,
            parameterCount: session.parameterCount,
            stateBytes: session.stateBytes,
            lastTelemetry: session.lastTelemetry,
            spool: journal?.spoolTarget,
            logsSteps: journal?.logsSteps ?? false
        )
    }
}
