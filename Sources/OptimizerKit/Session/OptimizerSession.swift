import Foundation
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
    /// Every tensor is checked before anything changes: a new parameter is copied in the same pass
    /// that checks its values (``TensorBuffer/finiteCopy(of:shape:parallelism:)``), an existing
    /// one checked, then overwritten after `beforeChange`.
    ///
    /// - Parameters:
    ///   - parallelism: Threads the check and the copy of one large tensor may use.
    ///   - beforeChange: Runs once the upload is known to be valid, before anything changes (the
    ///     server appends the upload to its write-ahead log here); if it throws, nothing changes.
    /// - Throws: ``OptimizerError`` for an empty or duplicate name, a shape that differs from the
    ///   existing parameter's, or a non-finite value (the first problem in tensor order), or what
    ///   `beforeChange` throws. Nothing changes on error.
    public func setParameters(
        _ tensors: [TensorView], parallelism: Parallelism = .serial, beforeChange: () throws -> Void = {}
    ) throws {
        var seen = Set<String>()
        var copies: [TensorBuffer?] = []
        for tensor in tensors {
            try checkParameter(tensor, seen: &seen)
            if indexByName[tensor.name] == nil {
                guard let copy = TensorBuffer.finiteCopy(of: tensor.values, shape: tensor.shape, parallelism: parallelism) else {
                    throw Self.nonFinite(tensor)
                }
                copies.append(copy)
            } else {
                guard Reduction.allFinite(tensor.values, parallelism: parallelism) else { throw Self.nonFinite(tensor) }
                copies.append(nil)
            }
        }
        try beforeChange()
        for (tensor, copy) in zip(tensors, copies) {
            if let index = indexByName[tensor.name] {
                parameters[index].assign(tensor.values, parallelism: parallelism)
            } else if let copy {
                indexByName[tensor.name] = parameters.count
                parameterNames.append(tensor.name)
                parameters.append(copy)
                states.append(StateSlots())
                groupOfParameter.append(configuration.groupIndex(ofParameter: tensor.name))
            }
        }
    }

    /// Checks one uploaded tensor's name (not empty, in Unicode normalization form C, not in `seen`,
    /// which it joins) and shape (filled by its values, and the existing parameter's).
    ///
    /// Names are compared as Swift strings, which equates canonically equivalent spellings ("é" and
    /// "e" + U+0301): with every name in NFC, equal names are also equal bytes, and no upload can
    /// reach another spelling's parameter.
    private func checkParameter(_ tensor: TensorView, seen: inout Set<String>) throws {
        guard !tensor.name.isEmpty else {
            throw OptimizerError.tensor(.unknownTensor, tensor.name, "parameter names must not be empty")
        }
        if tensor.name.utf8.contains(where: { $0 >= 0x80 }) {
            let composed = tensor.name.precomposedStringWithCanonicalMapping
            guard composed.utf8.elementsEqual(tensor.name.utf8) else {
                throw OptimizerError.tensor(
                    .unknownTensor, tensor.name,
                    "parameter names must be in Unicode normalization form C; this one is \"\(composed)\" there, a name this session compares equal to it")
            }
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
    }

    /// The error for an uploaded tensor with a NaN or infinity, naming the first one.
    private static func nonFinite(_ tensor: TensorView) -> OptimizerError {
        let bad = Reduction.firstNonFinite(tensor.values) ?? 0
        return OptimizerError.tensor(.nonFiniteValue, tensor.name, "element \(bad) is \(tensor.values[bad])")
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
