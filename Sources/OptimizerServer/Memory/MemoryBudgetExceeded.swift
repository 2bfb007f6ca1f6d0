/// A refusal of the memory budget: the request needed more than what is left. Answered 507
/// `urn:optimizerd:problem:memory-budget-exceeded`; nothing was changed.
struct MemoryBudgetExceeded: Error, Sendable, CustomStringConvertible {
    /// The budget in bytes.
    let limit: Int
    /// Bytes in use when the request came.
    let used: Int
    /// Bytes the request needed.
    let requested: Int
    /// What needed them ("this upload").
    let purpose: String
    /// Bytes kept free for the largest session's step (its gradients and answer), which the
    /// request may not take either.
    var keptForSteps = 0
    /// Whether the request is a step that would fit once the bodies and copies of the requests
    /// being served now are given back: other sessions' steps hold the room for the moment
    /// (answered 503, to be retried, rather than 507).
    var isTransient = false

    /// "--max-memory 1.0 GiB: 900 MiB in use, this upload needs 300 MiB" (and ", 96 MiB kept for
    /// a step" when room is kept: otherwise the numbers would not add up to the refusal).
    var description: String {
        let kept = keptForSteps > 0 ? ", \(ByteCount(keptForSteps)) kept for a step" : ""
        return "--max-memory \(ByteCount(limit)): \(ByteCount(used)) in use\(kept), \(purpose) needs \(ByteCount(requested))"
    }
}

/// A byte count for people: `512 B`, `64 KiB`, `11.5 MiB`, `300 MiB`, `1.0 GiB` (binary units).
struct ByteCount: CustomStringConvertible {
    let bytes: Int

    init(_ bytes: Int) { self.bytes = bytes }

    var description: String {
        if bytes >= 1 << 30 { return Self.format(Double(bytes) / Double(1 << 30), unit: "GiB") }
        if bytes >= 1 << 20 { return Self.format(Double(bytes) / Double(1 << 20), unit: "MiB") }
        if bytes >= 1 << 10 { return Self.format(Double(bytes) / Double(1 << 10), unit: "KiB") }
        return "\(bytes) B"
    }

    /// One decimal below 10 (`1.0 GiB`) and below 100 unless whole (`11.5 MiB`, `64 MiB`), whole
    /// numbers from 100 (`300 MiB`).
    private static func format(_ value: Double, unit: String) -> String {
        let tenths = Int((value * 10).rounded())
        if tenths < 100 || (tenths < 1000 && tenths % 10 != 0) { return "\(tenths / 10).\(tenths % 10) \(unit)" }
        return "\(Int(value.rounded())) \(unit)"
    }
}
