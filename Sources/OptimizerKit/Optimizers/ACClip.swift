// PLACEHOLDER: being implemented; must be replaced before commit.
struct ACClip: TensorOptimizer {
    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        throw OptimizerError.invalidConfiguration(field: "optimizer", "not implemented yet")
    }
    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult { fatalError() }
}
