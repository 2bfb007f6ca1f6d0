import Foundation
import OptimizerFuzzing
import Testing

/// Every kept corpus input and seed still runs through its target without crashing or breaking an
/// invariant (either would stop the test process). Cheap: a few hundred small files.
struct FuzzCorpusTests {
    @Test(arguments: FuzzTarget.allCases)
    func everyCorpusInputRuns(target: FuzzTarget) throws {
        let files = FuzzCorpus.files(in: target.rawValue) + FuzzCorpus.files(in: "seeds/\(target.rawValue)")
        #expect(!files.isEmpty, "no corpus for \(target.rawValue) in \(FuzzCorpus.root.path)")
        var accepted = 0
        for file in files where try FuzzCorpus.run(target, file).stages.contains(where: { $0.error == nil }) {
            accepted += 1
        }
        // The corpus holds valid inputs too (the seeds), not only ones refused at once.
        #expect(accepted > 0, "no \(target.rawValue) input got past its first check")
    }
}
