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
}
