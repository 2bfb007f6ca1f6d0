/// SGD with momentum, dampening, Nesterov and L2 weight decay (torch.optim.SGD, torch 2.15).
///
/// Hyperparameters: `lr` (1e-3), `momentum` (0), `dampening` (0), `weight_decay` (0),
/// `nesterov` (false; needs momentum > 0 and dampening 0), `maximize` (false).
/// State: `momentum_buffer`, absent until the first step with momentum ≠ 0 (then a copy of the gradient).
struct SGD: TensorOptimizer {
    let lr: Double
    let momentum: Double
    let dampening: Double
    let weightDecay: Double
    let nesterov: Bool
    let maximize: Bool

    init(_ reader: inout HyperparameterReader, terms: Int) throws {
        lr = try reader.double("lr", default: 1e-3, .atLeast(0))
        momentum = try reader.double("momentum", default: 0, .atLeast(0))
        dampening = try reader.double("dampening", default: 0)
        weightDecay = try reader.double("weight_decay", default: 0, .atLeast(0))
        nesterov = try reader.bool("nesterov", default: false)
        maximize = try reader.bool("maximize", default: false)
        if nesterov, momentum <= 0 || dampening != 0 {
            throw OptimizerError.invalidHyperparameter(
                field: reader.fieldPrefix + "nesterov",
                "Nesterov momentum requires momentum > 0 and dampening = 0 (got momentum \(momentum), dampening \(dampening))"
            )
        }
    }

    /// `momentum_buffer` when momentum ≠ 0.
    func stateElements(for shape: TensorShape, terms: Int) -> Int { momentum != 0 ? shape.elementCount : 0 }

    func step(_ input: TensorStepInput, state: StateSlots) -> TensorStepResult {
        let parameter = input.parameter
        var firstStep = false
        var buffer: TensorBuffer?
        if momentum != 0 {
            firstStep = state.existingTensor("momentum_buffer") == nil
            buffer = state.tensor("momentum_buffer", shape: parameter.shape)
        }
        let coefficients = SGDKernel.Coefficients(
            lr: Float(lr),
            weightDecay: Float(weightDecay),
            momentum: Float(momentum),
            oneMinusDampening: Float(1 - dampening),
            nesterov: nesterov,
            firstStep: firstStep,
            gradientScale: maximize ? -input.gradientScales[0] : input.gradientScales[0]
        )
        let update = SGDKernel.run(
            SGDKernel.Buffers(parameter: parameter.pointer, gradient: input.gradientPointer(), momentumBuffer: buffer?.pointer),
            count: parameter.count,
            coefficients,
            parallelism: input.parallelism
        )
        return TensorStepResult(updateSquaredNorm: update, learningRate: lr)
    }
}
