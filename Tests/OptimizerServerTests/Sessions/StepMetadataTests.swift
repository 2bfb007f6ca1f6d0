import HTTPTypes
import Testing

@testable import OptimizerServer

struct StepMetadataTests {
    @Test func parsesEveryKey() throws {
        let metadata = try StepMetadata(["step": "4", "loss": "0.25", "term_weights": "[1, 0.5]", "grad_scale": "65536", "note": "x"])
        #expect(metadata.step == 4)
        #expect(metadata.loss == 0.25)
        #expect(metadata.termWeights == [1, 0.5])
        #expect(metadata.gradScale == 65536)
    }

    @Test func perTermLossesAreSummedAndPythonSpecialsAccepted() throws {
        #expect(try StepMetadata(["loss": "[1.5, 2]"]).loss == 3.5)
        #expect(try StepMetadata(["loss": "nan"]).loss?.isNaN == true)
        #expect(try StepMetadata(["loss": "-inf"]).loss == -.infinity)
    }

    @Test(arguments: [["step": "two"], ["step": "-1"], ["loss": "big"], ["term_weights": "1,2"], ["grad_scale": "[2]"]])
    func badValuesAre400NamingTheKey(metadata: [String: String]) throws {
        let error = try #require(throws: ProblemError.self) { try StepMetadata(metadata) }
        #expect(error.status == .badRequest)
        #expect(error.detail.hasPrefix("__metadata__.\(metadata.keys.first!)"))
    }
}
