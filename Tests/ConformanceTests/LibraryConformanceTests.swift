import Foundation
import OptimizerKit
import OptimizerTestSupport
import Testing

/// Replays every golden trajectory in shared/conformance through OptimizerSession and applies the
/// pass criterion at every step. Cases are discovered from the folder.
struct LibraryConformanceTests {
    @Test func casesArePresent() {
        #expect(ConformanceCase.caseNames().count >= 17, "no conformance cases found in \(ConformanceCase.directory.path)")
    }

    @Test(arguments: ConformanceCase.caseNames())
    func replay(caseName: String) throws {
        let golden = try ConformanceCase(named: caseName)
        let session = OptimizerSession(
            configuration: try SessionConfiguration(optimizer: golden.optimizer, hyperparameters: golden.hyperparameters)
        )
        let initial = try golden.initialParameters()
        try upload(initial, to: session)
        for step in 1...golden.steps {
            let gradients = try golden.gradients(step: step)
            try apply(gradients, loss: golden.losses?[step - 1], to: session)
            for name in golden.parameters {
                let got = session.parameters[session.parameterIndex(named: name)!].values
                let failure = try golden.failure(step: step, parameter: name, got: got)
                #expect(failure == nil, "\(failure ?? "")")
                if failure != nil { return }
            }
        }
    }

    private func upload(_ tensors: [ConformanceCase.Tensor], to session: OptimizerSession) throws {
        let buffers = tensors.map { TensorBuffer(shape: TensorShape($0.shape), values: $0.values) }
        try session.setParameters(
            zip(tensors, buffers).map { TensorView(name: $0.name, shape: TensorShape($0.shape), values: $1.readOnly) }
        )
    }

    private func apply(_ tensors: [ConformanceCase.Tensor], loss: Double?, to session: OptimizerSession) throws {
        let buffers = tensors.map { TensorBuffer(shape: TensorShape($0.shape), values: $0.values) }
        try session.step(
            StepInput(
                gradients: zip(tensors, buffers).map { TensorView(name: $0.name, shape: TensorShape($0.shape), values: $1.readOnly) },
                loss: loss
            )
        )
    }
}
