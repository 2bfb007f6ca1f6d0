/// The gradients of one step, placed by loss term and parameter index.
///
/// Filled by ``OptimizerSession/resolve(_:into:)`` from one request, or part by part from the parts
/// of a step (``StagedStep``): a tensor given twice, within one request or across parts, is refused
/// wherever it comes from.
public struct ResolvedGradients {
    /// `slots[term][parameter]`: the gradient values, nil when not (yet) given.
    var slots: [[UnsafeBufferPointer<Float>?]]
    /// The names the gradients were sent under, parallel to `slots` ("" when absent).
    var names: [[String]]

    /// No gradients yet, for a session with `terms` loss terms and `parameters` parameters.
    init(terms: Int, parameters: Int) {
        slots = [[UnsafeBufferPointer<Float>?]](repeating: [UnsafeBufferPointer<Float>?](repeating: nil, count: parameters), count: terms)
        names = [[String]](repeating: [String](repeating: "", count: parameters), count: terms)
    }
}

extension OptimizerSession {
    /// Places `gradients` into `resolved` after checking their names and shapes; nothing is placed
    /// when this throws.
    ///
    /// - Throws: ``OptimizerError`` for an unknown name, a wrong shape, or a gradient already in
    ///   `resolved` or given twice in `gradients`.
    func resolve(_ gradients: [TensorView], into resolved: inout ResolvedGradients) throws {
        let config = configuration
        var placed = resolved
        for gradient in gradients {
            guard let (term, index) = resolveGradientName(gradient.name) else {
                let expected =
                    config.optimizer == .mtadam
                    ? "expected k/NAME with k in 0..<\(config.terms) and NAME a parameter of this session"
                    : "not a parameter of this session"
                throw OptimizerError.tensor(.unknownTensor, gradient.name, expected)
            }
            guard gradient.shape == parameters[index].shape, gradient.values.count == parameters[index].count else {
                throw OptimizerError.tensor(
                    .shapeMismatch, gradient.name,
                    "shape \(gradient.shape) does not match parameter \(parameterNames[index]) \(parameters[index].shape)"
                )
            }
            guard placed.slots[term][index] == nil else {
                throw OptimizerError.tensor(
                    .duplicateTensor, gradient.name,
                    "the gradient of term \(term) for \(parameterNames[index]) was given twice (also as \"\(placed.names[term][index])\")"
                )
            }
            placed.slots[term][index] = gradient.values
            placed.names[term][index] = gradient.name
        }
        resolved = placed
    }

    /// Checks that `resolved` has every gradient the optimizer needs: every parameter and term for
    /// MoMo, MoMo-Adam and MTAdam; every term of each parameter given for the others.
    ///
    /// - Throws: ``OptimizerError`` (missing tensor) naming the first one missing.
    func checkComplete(_ resolved: ResolvedGradients) throws {
        let config = configuration
        let terms = config.terms
        let slots = resolved.slots
        if config.optimizer.needsEveryParameter {
            for term in 0..<terms {
                for index in parameters.indices where slots[term][index] == nil {
                    let name = config.optimizer == .mtadam ? "\(term)/\(parameterNames[index])" : parameterNames[index]
                    throw OptimizerError.tensor(
                        .missingTensor, name,
                        "\(config.optimizer.rawValue) needs the gradient of every parameter\(terms > 1 || config.optimizer == .mtadam ? " and every term" : "") in each step"
                    )
                }
            }
        } else {
            for index in parameters.indices where (0..<terms).contains(where: { slots[$0][index] != nil }) {
                if let term = (0..<terms).first(where: { slots[$0][index] == nil }) {
                    throw OptimizerError.tensor(.missingTensor, "\(term)/\(parameterNames[index])", "every term's gradient is needed")
                }
            }
        }
    }

    /// The float64 sum of squares of every given gradient (0 where absent): the per-tensor statistic
    /// of a step, computed the same way for a one-request step and for each part of a step in parts.
    /// A gradient whose sum is in `known` (by the name it was sent under) is not read for it.
    func sumsOfSquares(_ resolved: ResolvedGradients, known: [String: Double] = [:], parallelism: Parallelism) -> [[Double]] {
        zip(resolved.slots, resolved.names).map { term, names in
            zip(term, names).map { values, name in
                values.map { known[name] ?? Reduction.sumOfSquares($0, parallelism: parallelism) } ?? 0
            }
        }
    }
}
