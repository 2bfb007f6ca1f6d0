import OptimizerKit

/// The telemetry of the last `capacity` steps of one session, oldest first.
///
/// A ring buffer: appending is O(1) and never grows past `capacity`. MTAdam's per-layer term
/// weights (~100 bytes per layer and step: 2000 layers over 10 000 steps would be 2 GB outside the
/// memory budget) are kept for the newest records only, at most ``termWeightBytesLimit`` of them;
/// older records keep everything else. Thread-safety: none; owned by a ``SessionHandle`` and used
/// under its lock.
struct StepHistory {
    let capacity: Int
    private var storage: [StepTelemetry] = []
    private var start = 0
    /// The estimated bytes of the term weights kept, and the offset from `start` of the oldest
    /// record that may still hold some.
    private var termWeightBytes = 0
    private var oldestWithWeights = 0

    /// The most bytes of term weights kept per session.
    static let termWeightBytesLimit = 4 << 20

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        storage.reserveCapacity(min(self.capacity, 1024))
    }

    /// The number of records kept.
    var count: Int { storage.count }

    /// Appends a record, dropping the oldest when full.
    mutating func append(_ telemetry: StepTelemetry) {
        termWeightBytes += Self.termWeightBytes(telemetry)
        if storage.count < capacity {
            storage.append(telemetry)
        } else {
            termWeightBytes -= Self.termWeightBytes(storage[start])
            storage[start] = telemetry
            start = (start + 1) % capacity
            oldestWithWeights = max(oldestWithWeights - 1, 0)
        }
        while termWeightBytes > Self.termWeightBytesLimit, oldestWithWeights < storage.count - 1 {
            let index = (start + oldestWithWeights) % storage.count
            termWeightBytes -= Self.termWeightBytes(storage[index])
            storage[index].termWeights = nil
            oldestWithWeights += 1
        }
    }

    /// About what a record's term weights take in memory: each layer's name, its array and the
    /// dictionary's entry.
    static func termWeightBytes(_ telemetry: StepTelemetry) -> Int {
        telemetry.termWeights?.reduce(0) { $0 + $1.key.utf8.count + 8 * $1.value.count + 64 } ?? 0
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
