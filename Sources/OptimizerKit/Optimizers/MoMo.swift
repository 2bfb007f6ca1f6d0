// PLACEHOLDER: being implemented; must be replaced before commit.
struct Momo: CoupledOptimizer {
    init(_ reader: inout HyperparameterReader) throws {
        throw OptimizerError.invalidConfiguration(field: "optimizer", "not implemented yet")
    }
    func step(_ input: CoupledStepInput) -> CoupledStepResult { fatalError() }
}
struct MomoAdam: CoupledOptimizer {
    init(_ reader: inout HyperparameterReader) throws {
        throw OptimizerError.invalidConfiguration(field: "optimizer", "not implemented yet")
    }
    func step(_ input: CoupledStepInput) -> CoupledStepResult { fatalError() }
}
