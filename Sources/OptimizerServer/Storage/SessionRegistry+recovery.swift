import Foundation
import Logging
import OptimizerKit
import OptimizerStore

extension SessionRegistry {
    /// Loads every session of the data directory: newest valid snapshot, then the write-ahead log
    /// replayed through the same code as the requests that wrote it. Runs once, before the daemon
    /// listens. Sessions that cannot be loaded are reported (log and `/readyz`), never fatal.
    func recover(pool: ComputePool, historyCapacity: Int, logger: Logger) {
        guard let store = storage.store else { return }
        let parallelism = Parallelism(threads: pool.threads)
        let placeholder = SessionIdentity(id: "", name: nil, token: TokenDigest(of: ""), createdAt: Date())
        var replayed: [ObjectIdentifier: SessionState] = [:]
        let (sessions, failures) = store.recoverAll { record, session in
            var state =
                replayed[ObjectIdentifier(session)]
                ?? SessionState(session: session, identity: placeholder, historyCapacity: historyCapacity)
            try state.replay(record, parallelism: parallelism)
            replayed[ObjectIdentifier(session)] = state
        }
        var handles: [SessionHandle] = []
        var problems = failures.map { SessionStorage.RecoveryReport.Failure(id: $0.id, reason: $0.reason) }
        var notes: [String] = []
        for recovered in sessions {
            let snapshot = recovered.snapshot
            guard let id = snapshot.id, let hash = snapshot.tokenHash, let token = TokenDigest(hex: hash) else {
                problems.append(.init(id: snapshot.id ?? "?", reason: "snapshot lacks the session id or token hash"))
                continue
            }
            var state =
                replayed[ObjectIdentifier(recovered.session)]
                ?? SessionState(session: recovered.session, identity: placeholder, historyCapacity: historyCapacity)
            state.identity = SessionIdentity(
                id: id, name: snapshot.name, token: token,
                createdAt: snapshot.createdAt.map(Date.init(timeIntervalSince1970:)) ?? Date()
            )
            state.recoverLastStep(from: snapshot)
            state.journal = recovered.journal
            state.durability = recovered.journal.durability
            state.memory = memory
            // Recovered data is never refused: counted whether or not it fits (logged below if not).
            let footprint = memory.admit(state.memoryFootprint(), for: .sessions, stepBytes: state.stepRoom())
            handles.append(SessionHandle(identity: state.identity, state: state, pool: pool, memory: footprint, snapshots: storage.snapshots))
            for note in recovered.notes {
                notes.append("\(id): \(note)")
                logger.warning("recovery", metadata: ["session.id": .string(id), "recovery.note": .string(note)])
            }
            logger.info(
                "session recovered",
                metadata: ["session.id": .string(id), "session.step": .stringConvertible(recovered.session.step)]
            )
        }
        for failure in problems {
            logger.error("session not recovered", metadata: ["session.id": .string(failure.id), "recovery.reason": .string(failure.reason)])
        }
        if memory.used + memory.stepRoom > memory.limit {
            logger.warning(
                "recovered sessions exceed the memory budget: they are all kept, but new parameters and sessions are refused until some are deleted",
                metadata: [
                    "memory.budget": .string("\(ByteCount(memory.limit))"), "memory.used": .string("\(ByteCount(memory.used))"),
                    "memory.step_room": .string("\(ByteCount(memory.stepRoom))"),
                ]
            )
        }
        register(handles)
        storage.record { report in
            report.recovered = handles.count
            report.failed = problems
            report.notes = notes
        }
    }

    /// Flushes every session's log (the periodic fsync); failures are logged.
    func flushAll(logger: Logger) async {
        for session in all {
            do {
                try await session.withStateLock { state in try state.journal?.sync() }
            } catch {
                logger.error("log flush failed", metadata: ["session.id": .string(session.id), "error": .string("\(error)")])
            }
        }
    }

    /// Starts the snapshots that are due although no request came to start them (``SessionHandle/scheduleSnapshotIfDue()``).
    func scheduleDueSnapshots() {
        for session in all { session.scheduleSnapshotIfDue() }
    }

    /// Drops every session's staged parts whose time is up (``SessionHandle/dropExpiredStage()``).
    func dropExpiredStages() {
        for session in all { session.dropExpiredStage() }
    }

    /// Writes a snapshot of every session (graceful shutdown), so the next start replays nothing.
    func snapshotAll(logger: Logger) async {
        for session in all {
            do {
                try await session.withState { state in
                    guard let journal = state.journal else { return }
                    try journal.writeSnapshot(state.snapshot)
                }
            } catch {
                logger.error("shutdown snapshot failed", metadata: ["session.id": .string(session.id), "error": .string("\(error)")])
            }
        }
    }
}
