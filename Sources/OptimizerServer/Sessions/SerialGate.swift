import Synchronization

/// A first-in, first-out async lock: at most one holder at a time, waiters suspend (never block a
/// thread) until their turn.
///
/// Each session has one. Requests wait here *before* they take a compute-pool thread, so pool
/// threads never sit blocked on a busy session: while one session runs a long step, a second request
/// for it waits as a suspended task and the pool keeps serving other sessions. (An actor would not
/// do: actors are re-entrant at `await`, so two steps could interleave around the pool call.)
final class SerialGate: Sendable {
    private struct State {
        var held = false
        var waiters: [CheckedContinuation<Void, Never>] = []  // few: one per queued request on this session
    }

    private let state = Mutex(State())

    init() {}

    /// Runs `body` while holding the gate.
    func withPermit<T>(_ body: () async throws -> sending T) async rethrows -> sending T {
        await acquire()
        defer { release() }
        return try await body()
    }

    private func acquire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let acquired = state.withLock { state in
                if state.held {
                    state.waiters.append(continuation)
                    return false
                }
                state.held = true
                return true
            }
            if acquired { continuation.resume() }
        }
    }

    private func release() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.held = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
