import Synchronization

/// Bytes held in a ``MemoryBudget``: given back by ``release()``, or when the reservation is
/// deallocated (so a request that fails anywhere still returns its bytes).
///
/// A session's reservation also names its ``stepBytes``: the room one of its steps needs, which
/// the budget keeps free for the largest of them.
final class MemoryReservation: Sendable {
    let budget: MemoryBudget
    let kind: MemoryBudget.Kind
    private let held = Mutex((bytes: 0, stepBytes: 0))

    /// An empty reservation in `budget`, to grow with ``resize(to:stepBytes:purpose:isStep:)``.
    init(budget: MemoryBudget, kind: MemoryBudget.Kind) {
        self.budget = budget
        self.kind = kind
    }

    /// The bytes held now.
    var bytes: Int { held.withLock { $0.bytes } }

    /// The room kept free in the budget for one step of what this reservation holds (sessions).
    var stepBytes: Int { held.withLock { $0.stepBytes } }

    /// Grows or shrinks the reservation to `bytes` (and its step room to `stepBytes`, if given).
    /// Growing must fit the budget; shrinking always works.
    ///
    /// - Parameters:
    ///   - isStep: Whether the bytes serve a step, which may use the room kept for steps.
    ///   - alongside: Bytes the same request holds in other reservations (a step's body beside its
    ///     copies): a step refused only while other requests hold memory (``MemoryBudgetExceeded/isTransient``)
    ///     must fit with them.
    /// - Throws: ``MemoryBudgetExceeded`` when growing does not fit; the reservation is then unchanged.
    func resize(to bytes: Int, stepBytes: Int? = nil, purpose: String, isStep: Bool = false, alongside: Int = 0) throws {
        let refusal: MemoryBudgetExceeded? = held.withLock { held in
            let target = (bytes: max(0, bytes), stepBytes: stepBytes.map { max(0, $0) } ?? held.stepBytes)
            if let refusal = budget.change(
                ObjectIdentifier(self), kind: kind, by: target.bytes - held.bytes, stepRoom: stepBytes == nil ? nil : target.stepBytes,
                checked: (purpose, isStep, held.bytes + alongside))
            {
                return refusal
            }
            held = target
            return nil
        }
        if let refusal { throw refusal }
    }

    /// Sets the reservation to `bytes` (and its step room, if given) whether or not they fit:
    /// memory that is already allocated.
    func force(to bytes: Int, stepBytes: Int? = nil) {
        held.withLock { held in
            let target = (bytes: max(0, bytes), stepBytes: stepBytes.map { max(0, $0) } ?? held.stepBytes)
            _ = budget.change(
                ObjectIdentifier(self), kind: kind, by: target.bytes - held.bytes, stepRoom: stepBytes == nil ? nil : target.stepBytes,
                checked: nil)
            held = target
        }
    }

    /// Gives every byte (and the step room) back; the reservation can grow again afterwards.
    func release() { force(to: 0, stepBytes: 0) }

    deinit { release() }
}
