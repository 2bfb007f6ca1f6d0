import Foundation
import OptimizerKit
import OptimizerStore
import Synchronization

/// All live sessions, by id.
///
/// Lookups, inserts and removals take a short lock over the dictionary only; work on a session goes
/// through its ``SessionHandle``.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[String: SessionHandle]>([:])
    private let pool: ComputePool
    private let historyCapacity: Int
    /// Where sessions are made durable.
    let storage: SessionStorage
    /// The memory budget every session's parameters and state are admitted against.
    let memory: MemoryBudget

    init(pool: ComputePool, historyCapacity: Int, storage: SessionStorage = .inMemory, memory: MemoryBudget = .unlimited) {
        self.pool = pool
        self.historyCapacity = historyCapacity
        self.storage = storage
        self.memory = memory
    }

    /// Creates and registers a session; returns it with its bearer token (the only time the token
    /// exists outside the client: the session keeps its hash). With a data directory, the session's
    /// first snapshot is on disk before this returns.
    ///
    /// - Parameter durability: The session's durability mode; nil takes the daemon's (`--durability`).
    /// - Throws: ``MemoryBudgetExceeded`` when the empty session (its configuration, with every
    ///   parameter group) does not fit the budget; ``StoreError`` (507/503) or ``ProblemError`` (503)
    ///   when it cannot be made durable.
    func create(
        configuration: SessionConfiguration, name: String?, durability: DurabilityMode? = nil
    ) async throws -> (session: SessionHandle, token: String) {
        let token = TokenDigest.generate()
        let identity = SessionIdentity(id: UUID().uuidString.lowercased(), name: name, token: TokenDigest(of: token), createdAt: Date())
        var state = SessionState(session: OptimizerSession(configuration: configuration), identity: identity, historyCapacity: historyCapacity)
        state.memory = memory
        state.durability = durability ?? storage.store?.configuration.durability ?? .log
        let reservation = try memory.reserve(state.memoryFootprint(), for: .sessions, purpose: "this session")
        let handle = SessionHandle(identity: identity, state: state, pool: pool, memory: reservation, snapshots: storage.snapshots)
        if storage.isDurable {
            let store = try storage.requireStore()
            try await handle.withState { state in state.journal = try store.create(state.snapshot) }
        }
        sessions.withLock { $0[handle.id] = handle }
        return (handle, token)
    }

    /// Adds sessions recovered from disk.
    func register(_ handles: [SessionHandle]) {
        sessions.withLock { sessions in
            for handle in handles { sessions[handle.id] = handle }
        }
    }

    /// The session with `id`, if it exists.
    func session(id: String) -> SessionHandle? {
        sessions.withLock { $0[id] }
    }

    /// Removes the session with `id` and its durable files, and gives its memory back to the
    /// budget; returns it if it existed.
    ///
    /// - Throws: ``StoreError`` when its files cannot be removed (the session then stays).
    @discardableResult
    func remove(id: String) async throws -> SessionHandle? {
        guard let handle = session(id: id) else { return nil }
        let store = storage.isDurable ? try storage.requireStore() : nil
        try await handle.delete { [pool] in
            if let store { try await pool.run { try store.delete(id: id) } }
        }
        let removed = sessions.withLock { $0.removeValue(forKey: id) }
        removed?.memory.release()
        return removed
    }

    /// Every session, oldest first.
    var all: [SessionHandle] {
        sessions.withLock { Array($0.values) }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// The number of sessions.
    var count: Int { sessions.withLock { $0.count } }
}
