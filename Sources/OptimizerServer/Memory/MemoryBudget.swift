import Synchronization

/// The daemon's memory budget (`--max-memory`): everything large the daemon holds is admitted
/// against it before it is allocated, so that a request that would pass it is refused (507,
/// ``MemoryBudgetExceeded``) instead of the daemon being killed for memory, and every session with it.
///
/// Admitted: each session's parameters and optimizer state (counted when parameters are uploaded,
/// including the state a later step creates lazily), request bodies while they are read and used,
/// and the transient copies of a step or a checkpoint restore. A ``MemoryReservation`` holds bytes
/// until it is released, explicitly or when it is deallocated.
///
/// The budget keeps room for one step of the session with the largest steps (its
/// ``MemoryReservation/stepBytes``): what sessions keep (uploads, restores) and the bodies that
/// bring it are refused before they would take that room; only steps (their bodies and copies) may
/// use it. So sessions that were admitted keep stepping however full the budget gets.
///
/// ```swift
/// let body = try budget.reserve(contentLength, for: .bodies, purpose: "this request body")
/// defer { body.release() }
/// ```
final class MemoryBudget: Sendable {
    /// What reserved bytes are for (`/metrics` shows each).
    enum Kind: String, CaseIterable, Sendable {
        /// Parameters and optimizer state of live sessions.
        case sessions
        /// Request bodies being read or used.
        case bodies
        /// Transient copies: a step's decoded gradients and response, a restore's decoded checkpoint.
        case staging
    }

    /// The budget in bytes.
    let limit: Int
    /// Where the limit came from, for the start-up log (e.g. `--max-memory`, or 80 % of the cgroup's limit).
    let source: String
    private let usage = Mutex(Usage())

    private struct Usage {
        var bytes: [Kind: Int] = [:]
        /// The step room each session reservation asks to be kept free.
        var stepRoom: [ObjectIdentifier: Int] = [:]

        var total: Int { bytes.values.reduce(0, +) }
        func largestStep(replacing id: ObjectIdentifier? = nil, with room: Int = 0) -> Int {
            stepRoom.reduce(room) { largest, entry in entry.key == id ? largest : max(largest, entry.value) }
        }
    }

    /// Buffers the daemon keeps for reuse (``BufferPool``): while idle no reservation counts them,
    /// so they are released when a reservation would bring the reserved bytes plus theirs past the
    /// limit (``relievePressure(for:)``).
    let pool: BufferPool?

    init(limit: Int, source: String, pool: BufferPool? = nil) {
        self.limit = max(0, limit)
        self.source = source
        self.pool = pool
    }

    /// A budget nothing passes (library users and tests that do not set one).
    static var unlimited: MemoryBudget { MemoryBudget(limit: Int.max, source: "unlimited") }

    /// Bytes reserved now, all kinds together.
    var used: Int { usage.withLock { $0.total } }

    /// Bytes reserved now for `kind`.
    func used(_ kind: Kind) -> Int { usage.withLock { $0.bytes[kind] ?? 0 } }

    /// The room kept free for the largest session's step.
    var stepRoom: Int { usage.withLock { $0.largestStep() } }

    /// Reserves `bytes` for `kind`, or throws without reserving anything when they do not fit.
    ///
    /// - Parameters:
    ///   - purpose: What needs the bytes, as the refusal names it ("this upload").
    ///   - isStep: Whether the bytes serve a step, which may use the room kept for steps.
    ///   - alongside: Bytes the same request already holds elsewhere (``MemoryReservation/resize(to:stepBytes:purpose:isStep:alongside:)``).
    /// - Throws: ``MemoryBudgetExceeded``.
    func reserve(_ bytes: Int, for kind: Kind, purpose: String, isStep: Bool = false, alongside: Int = 0) throws -> MemoryReservation {
        let reservation = MemoryReservation(budget: self, kind: kind)
        try reservation.resize(to: bytes, purpose: purpose, isStep: isStep, alongside: alongside)
        return reservation
    }

    /// Reserves as many of `bytes` for `kind` as fit now, down to none: for what can make do with
    /// less memory (a snapshot's copy, whose remainder is written under the session's lock instead).
    func reserve(upTo bytes: Int, for kind: Kind, purpose: String) -> MemoryReservation {
        if let whole = try? reserve(bytes, for: kind, purpose: purpose) { return whole }
        let reservation = MemoryReservation(budget: self, kind: kind)
        let room = limit - used - stepRoom
        if room > 0 { try? reservation.resize(to: min(bytes, room), purpose: purpose) }
        return reservation
    }

    /// Counts `bytes` (and the room a step of theirs needs, `stepBytes`) for `kind` whether or not
    /// they fit: for memory that is already allocated and must be kept (sessions recovered at
    /// start: data is never refused).
    func admit(_ bytes: Int, for kind: Kind, stepBytes: Int = 0) -> MemoryReservation {
        let reservation = MemoryReservation(budget: self, kind: kind)
        reservation.force(to: bytes, stepBytes: stepBytes)
        return reservation
    }

    /// Moves `reservation` from `old` to `new` bytes and step room; growth must fit unless `checked`
    /// is nil (`held`: what the request holds already, this reservation included). Returns the
    /// refusal instead of applying it: transient when a step would fit, with what its request holds,
    /// once the other requests give their bodies and copies back.
    func change(
        _ reservation: ObjectIdentifier, kind: Kind, by delta: Int, stepRoom: Int?, checked: (purpose: String, isStep: Bool, held: Int)?
    ) -> MemoryBudgetExceeded? {
        if delta > 0, checked != nil { relievePressure(for: delta) }
        return usage.withLock { usage in
            if let checked, delta > 0 || (stepRoom ?? 0) > usage.largestStep() {
                let used = usage.total
                let room =
                    checked.isStep
                    ? 0 : stepRoom.map { usage.largestStep(replacing: reservation, with: $0) } ?? usage.largestStep()
                if delta > limit - used - room {
                    let kept = usage.bytes[.sessions] ?? 0
                    return MemoryBudgetExceeded(
                        limit: limit, used: used, requested: max(delta, 0), purpose: checked.purpose, keptForSteps: room,
                        isTransient: checked.isStep && delta + checked.held <= limit - kept)
                }
            }
            usage.bytes[kind, default: 0] += delta
            if let stepRoom { usage.stepRoom[reservation] = stepRoom > 0 ? stepRoom : nil }
            return nil
        }
    }

    /// Releases the pool's idle buffers when `delta` more reserved bytes, the room kept for steps
    /// and the idle buffers together would pass the limit: memory pressure. (The reservation itself
    /// is then checked against the reserved bytes alone, as always.)
    private func relievePressure(for delta: Int) {
        guard let pool else { return }
        let idle = pool.usage.idleBytes
        guard idle > 0, delta > limit - used - stepRoom - idle else { return }
        pool.releaseIdle(afterRounds: 0)
    }
}
