/// Carries a non-Sendable value into a `@Sendable` closure whose lifetime the caller bounds
/// (`DispatchQueue.concurrentPerform` joins before returning). Use only with a comment saying why it is safe.
struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
