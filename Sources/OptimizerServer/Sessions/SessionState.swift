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
    /// The daemon's memory budget, for the transient copy a snapshot is encoded into.
    var memory: MemoryBudget = .unlimited

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
    ///
    /// The snapshot is encoded in memory first, a copy as large as the session: when the memory
    /// budget has no room for it, the snapshot is put off to a later change (the log keeps growing
    /// meanwhile, and recovery replays it).
    mutating func snapshotIfDue() {
        guard let journal, journal.wantsSnapshot(atStep: session.step) else { return }
        let bytes = session.memoryFootprint()
        guard let copy = try? memory.reserve(bytes, for: .staging, purpose: "a snapshot", isStep: true) else {
            snapshotProblem = "put off: no room in the memory budget for the snapshot's copy (\(ByteCount(bytes)))"
            return
        }
        defer { copy.release() }
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
