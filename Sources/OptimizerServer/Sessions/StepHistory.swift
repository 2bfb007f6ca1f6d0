import OptimizerKit

/// The telemetry of the last `capacity` steps of one session, oldest first.
///
/// A ring buffer: appending is O(1) and never grows past `capacity`. Thread-safety: none; owned by a
/// ``SessionHandle`` and used under its lock.
struct StepHistory {
    let capacity: Int
    private var storage: [StepTelemetry] = []
    private var start = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage.reserveCapacity(min(self.capacity, 1024))
    }

    /// The number of records kept.
    var count: Int { storage.count }

    /// Appends a record, dropping the oldest when full.
    mutating func append(_ telemetry: StepTelemetry) {
        if storage.count < capacity {
            storage.append(telemetry)
        } else {
            storage[start] = telemetry
            start = (start + 1) % capacity
        }
    }

    /// Records whose step is greater than `step`, oldest first, at most `limit` of them.
    func records(after step: Int, limit: Int = .max) -> [StepTelemetry] {
        var result: [StepTelemetry] = []
        for offset in 0..<storage.count {
            let record = storage[(start + offset) % storage.count]
            guard record.step > step else { continue }
            result.append(record)
            if result.count == limit { break }
        }
        return result
    }

    /// The step of the oldest record kept, if any.
    var oldestStep: Int? { storage.isEmpty ? nil : storage[start % storage.count].step }
}
