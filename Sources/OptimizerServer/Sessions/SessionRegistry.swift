import Foundation
import OptimizerKit
import Synchronization

/// All live sessions, by id.
///
/// Lookups, inserts and removals take a short lock over the dictionary only; work on a session goes
/// through its ``SessionHandle``.
final class SessionRegistry: Sendable {
    private let sessions = Mutex<[String: SessionHandle]>([:])
    private let pool: ComputePool
    private let historyCapacity: Int

    init(pool: ComputePool, historyCapacity: Int) {
        self.pool = pool
        self.historyCapacity = historyCapacity
    }

    /// Creates and registers a session; returns it with its bearer token (the only time the token
    /// exists outside the client: the session keeps its hash).
    func create(configuration: SessionConfiguration, name: String?) -> (session: SessionHandle, token: String) {
        let token = TokenDigest.generate()
        let handle = SessionHandle(
            id: UUID().uuidString.lowercased(),
            name: name,
            token: TokenDigest(of: token),
            configuration: configuration,
            historyCapacity: historyCapacity,
            pool: pool
        )
        sessions.withLock { $0[handle.id] = handle }
        return (handle, token)
    }

    /// The session with `id`, if it exists.
    func session(id: String) -> SessionHandle? {
        sessions.withLock { $0[id] }
    }

    /// Removes the session with `id`; returns it if it existed.
    @discardableResult
    func remove(id: String) -> SessionHandle? {
        sessions.withLock { $0.removeValue(forKey: id) }
    }

    /// Every session, oldest first.
    var all: [SessionHandle] {
        sessions.withLock { Array($0.values) }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// The number of sessions.
    var count: Int { sessions.withLock { $0.count } }
}
