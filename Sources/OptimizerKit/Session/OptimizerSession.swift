/// One training session: named parameter tensors, their optimizer state, and the step counter.
///
/// ```swift
/// let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam"))
/// let values: [Float] = [1, 2], gradients: [Float] = [0.5, -0.5]
/// try values.withUnsafeBufferPointer { p in
///     try session.setParameters([TensorView(name: "w", shape: TensorShape([2]), values: p)])
/// }
/// let telemetry = try gradients.withUnsafeBufferPointer { g in
///     try session.step(StepInput(gradients: [TensorView(name: "w", shape: TensorShape([2]), values: g)]))
/// }
/// ```
///
/// Every mutating call validates its whole input first and throws ``OptimizerError`` before anything
/// changes, so a failed call leaves the session exactly as it was.
///
/// Thread-safety: none. The owner serialises all calls (the server holds a per-session lock); one
/// step may itself use several threads (see ``Parallelism``).
public final class OptimizerSession {
    /// The validated configuration.
    public private(set) var configuration: SessionConfiguration
    /// Parameter names, in the order they were first uploaded.
    public private(set) var parameterNames: [String] = []
    /// Parameter values, parallel to ``parameterNames``.
    public private(set) var parameters: [TensorBuffer] = []
    /// Per-parameter optimizer state, parallel to ``parameterNames``.
    public private(set) var states: [StateSlots] = []
    /// Session-wide optimizer state (MoMo's loss average and lower bound).
    public private(set) var globalState = StateSlots()
    /// The number of steps accepted so far, skipped ones included.
    public internal(set) var step = 0
    /// The telemetry of the last step.
    public internal(set) var lastTelemetry: StepTelemetry?

    private var indexByName: [String: Int] = [:]
    var groupOfParameter: [Int] = []

    /// Creates a session with no parameters.
    public init(configuration: SessionConfiguration) {
        self.configuration = configuration
    }

    /// The index of parameter `name`, if it exists.
    public func parameterIndex(named name: String) -> Int? { indexByName[name] }

    /// The total number of parameter elements.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    // MARK: Parameters

    /// Uploads parameter values: new names are added (with fresh optimizer state), existing names are
    /// overwritten in place and keep their state (a re-sync). Shapes of existing parameters cannot change.
    ///
    /// - Throws: ``OptimizerError`` for an empty or duplicate name, a shape that differs from the
    ///   existing parameter's, or a non-finite value. Nothing changes on error.
    public func setParameters(_ tensors: [TensorView]) throws {
        try checkParameters(tensors)
        for tensor in tensors {
            if let index = indexByName[tensor.name] {
                parameters[index].assign(tensor.values)
            } else {
                indexByName[tensor.name] = parameters.count
                parameterNames.append(tensor.name)
                parameters.append(TensorBuffer(shape: tensor.shape, copying: tensor.values))
                states.append(StateSlots())
                groupOfParameter.append(configuration.groupIndex(ofParameter: tensor.name))
            }
        }
    }

    /// Checks an upload exactly as ``setParameters(_:)`` does, without changing anything (so a caller
    /// can log the upload durably between the check and the change).
    ///
    /// - Throws: ``OptimizerError``, as ``setParameters(_:)``.
    public func checkParameters(_ tensors: [TensorView]) throws {
        var seen = Set<String>()
        for tensor in tensors {
            guard !tensor.name.isEmpty else {
                throw OptimizerError.tensor(.unknownTensor, tensor.name, "parameter names must not be empty")
            }
            guard seen.insert(tensor.name).inserted else {
                throw OptimizerError.tensor(.duplicateTensor, tensor.name, "given twice")
            }
            guard tensor.values.count == tensor.shape.elementCount else {
                throw OptimizerError.tensor(
                    .shapeMismatch, tensor.name,
                    "\(tensor.values.count) values do not fill shape \(tensor.shape)"
                )
            }
            if let index = indexByName[tensor.name], parameters[index].shape != tensor.shape {
                throw OptimizerError.tensor(
                    .shapeMismatch, tensor.name,
                    "has shape \(parameters[index].shape) in this session, got \(tensor.shape)"
                )
            }
            if let bad = Reduction.firstNonFinite(tensor.values) {
                throw OptimizerError.tensor(.nonFiniteValue, tensor.name, "element \(bad) is \(tensor.values[bad])")
            }
        }
    }

    /// Replaces the configuration (a hyperparameter change mid-run); state is kept.
    ///
    /// - Throws: ``OptimizerError`` if the optimizer, the number of terms or the state dtype would change.
    public func reconfigure(_ newConfiguration: SessionConfiguration) throws {
        guard newConfiguration.optimizer == configuration.optimizer else {
            throw OptimizerError.invalidConfiguration(field: "optimizer", "the optimizer of a session cannot change")
        }
        guard newConfiguration.terms == configuration.terms else {
            throw OptimizerError.invalidHyperparameter(field: "hyperparameters.terms", "the number of loss terms cannot change")
        }
        guard newConfiguration.stateDType == configuration.stateDType else {
            throw OptimizerError.invalidConfiguration(field: "state_dtype", "the state dtype of a session cannot change")
        }
        configuration = newConfiguration
        groupOfParameter = parameterNames.map(newConfiguration.groupIndex(ofParameter:))
    }

    /// The group index (into `configuration.effectiveHyperparameters`) of each parameter.
    public var parameterGroups: [Int] { groupOfParameter }

    /// Replaces the whole session content (a checkpoint restore). The caller validated shapes.
    public func restore(
        step: Int,
        parameters restored: [(name: String, value: TensorBuffer)],
        states restoredStates: [[StateSlot]],
        global: [StateSlot],
        lastTelemetry telemetry: StepTelemetry? = nil
    ) {
        precondition(restored.count == restoredStates.count)
        self.step = step
        parameterNames = restored.map(\.name)
        parameters = restored.map { $0.value.copy() }
        indexByName = Dictionary(uniqueKeysWithValues: parameterNames.enumerated().map { ($1, $0) })
        states = restoredStates.map { slots in
            let state = StateSlots()
            state.replace(with: slots)
            return state
        }
        globalState = StateSlots()
        globalState.replace(with: global)
        groupOfParameter = parameterNames.map(configuration.groupIndex(ofParameter:))
        lastTelemetry = telemetry
    }

    // MARK: Gradient names

    /// Resolves a gradient tensor name to its loss term and parameter index.
    ///
    /// Single-term optimizers use the parameter name; MTAdam uses `k/P` (and accepts plain `P` when it
    /// has one term).
    public func resolveGradientName(_ name: String) -> (term: Int, parameter: Int)? {
        if configuration.optimizer == .mtadam {
            if let slash = name.firstIndex(of: "/"),
                let term = Int(name[..<slash]), term >= 0, term < configuration.terms,
                name[..<slash].allSatisfy(\.isASCII),
                let index = indexByName[String(name[name.index(after: slash)...])]
            {
                return (term, index)
            }
            if configuration.terms == 1, let index = indexByName[name] { return (0, index) }
            return nil
        }
        return indexByName[name].map { (0, $0) }
    }
}
