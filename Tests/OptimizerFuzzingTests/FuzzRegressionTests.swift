import OptimizerFuzzing
import OptimizerKit
import OptimizerWire
import Testing

/// Inputs that once crashed a fuzz target or got a wrong answer, kept in
/// `Tests/FuzzCorpus/regressions/<target>/` (scripts/fuzz.sh also starts from them). Each must now
/// run through and end the way the fix intends.
struct FuzzRegressionTests {
    /// Every reproducer runs without crashing (the specific tests below check the outcome).
    @Test(arguments: FuzzTarget.allCases)
    func everyReproducerRuns(target: FuzzTarget) throws {
        for file in FuzzCorpus.files(in: "regressions/\(target.rawValue)") {
            _ = try FuzzCorpus.run(target, file)
        }
    }

    /// An empty parameter `[4294967296, 4294967296, 0]`: its element count overflowed (a trap in
    /// `checkParameters`, which took the daemon down from a ~100-byte upload).
    @Test func emptyParameterWithOverflowingDimensions() throws {
        let report = try FuzzCorpus.regression(.request, "request/empty-parameter-overflowing-dimensions")
        #expect(report.stage("parameters")?.error == nil, "\(report)")
        #expect(report.stage("step 1")?.error == nil, "\(report)")
    }

    /// Adafactor on an empty `[0, 10^12]` parameter allocated 4 TB of column statistics.
    @Test func adafactorOnAnEmptyParameterWithAHugeDimension() throws {
        let report = try FuzzCorpus.regression(.request, "request/adafactor-empty-parameter-huge-column")
        #expect(report.errors.isEmpty, "\(report)")
    }

    /// `P.indices` without `P.values` was read as a dense gradient and refused for its dtype (I64);
    /// the error now names the missing half.
    @Test func sparseIndicesWithoutValuesNameTheMissingValues() throws {
        let report = try FuzzCorpus.regression(.request, "request/sparse-indices-without-values")
        let error = try #require(report.stage("step 1")?.error as? SafetensorsError, "\(report)")
        #expect(error.code == .invalidSparseTensor)
        #expect(error.description.contains("no matching 'layer.weight.values'"), "\(error)")
    }
}
