import OptimizerWire
import Testing

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
        #expect(try StepMetadata(["loss": " Infinity"]).loss == .infinity)
        #expect(try StepMetadata(["grad_scale": "+inf"]).gradScale == .infinity)
    }

    @Test(arguments: [["step": "two"], ["step": "-1"], ["loss": "big"], ["term_weights": "1,2"], ["grad_scale": "[2]"]])
    func badValuesNameTheKey(metadata: [String: String]) throws {
        let error = try #require(throws: StepRequestError.self) { try StepMetadata(metadata) }
        #expect(error.code == .invalidMetadata)
        #expect(error.key == metadata.keys.first!)
        #expect(error.description.hasPrefix("__metadata__.\(metadata.keys.first!)"))
    }
}
