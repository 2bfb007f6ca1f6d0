import Testing

@testable import OptimizerKit
@testable import OptimizerServer

struct StepHistoryTests {
    private func record(_ step: Int) -> StepTelemetry {
        StepTelemetry(
            step: step, loss: nil, lr: nil, gradNorm: 0, updateNorm: 0, skipped: false, clipCoefficient: nil,
            termGradNorms: nil, termWeights: nil)
    }

    @Test func keepsTheLastCapacityRecordsInOrder() {
        var history = StepHistory(capacity: 3)
        for step in 1...5 { history.append(record(step)) }
        #expect(history.count == 3)
        #expect(history.oldestStep == 3)
        #expect(history.records(after: 0).map(\.step) == [3, 4, 5])
        #expect(history.records(after: 3).map(\.step) == [4, 5])
        #expect(history.records(after: 0, limit: 2).map(\.step) == [3, 4])
        #expect(history.records(after: 5).isEmpty)
    }

    /// MTAdam's per-layer term weights are kept for the newest records only, within the limit, also
    /// once the ring wraps; every record keeps its other fields.
    @Test(arguments: [50, 400])
    func termWeightsAreKeptForTheNewestRecordsWithinTheLimit(capacity: Int) {
        let layers = Dictionary(uniqueKeysWithValues: (0..<2000).map { ("layer.\($0).weight", [0.5, 0.25, 0.25]) })
        var record = record(0)
        record.termWeights = layers
        let perRecord = StepHistory.termWeightBytes(record)
        var history = StepHistory(capacity: capacity)
        for step in 1...300 {
            record.step = step
            record.loss = Double(step)
            history.append(record)
        }
        let records = history.records(after: 0)
        #expect(records.count == min(capacity, 300))
        #expect(records.allSatisfy { $0.loss == Double($0.step) })
        let kept = records.filter { $0.termWeights != nil }
        #expect(kept.count == min(StepHistory.termWeightBytesLimit / perRecord, records.count))
        // The records with weights are the newest ones.
        #expect(kept.map(\.step) == Array(records.suffix(kept.count)).map(\.step))
        #expect(kept.last?.termWeights == layers)
    }
}
