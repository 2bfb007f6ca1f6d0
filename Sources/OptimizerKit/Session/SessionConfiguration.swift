/// What to do with a gradient that contains NaN or infinity.
public enum NonfinitePolicy: String, Sendable, Codable, CaseIterable {
    /// Refuse the step (the server answers 422); nothing changes.
    case reject
    /// Count the step as skipped, as AMP's GradScaler does: the optimizer state does not move.
    case skip
}

/// A validated session configuration: the optimizer, its hyperparameters (per group) and the
/// session-level options.
///
/// Session-level options travel in the same `hyperparameters` object as the optimizer's own:
/// `clip_grad_norm` (global-norm clipping before the step), `nonfinite` (`reject` or `skip`), and for
/// MTAdam `terms` (required) and `term_weights`.
public struct SessionConfiguration: Sendable {
    /// The optimizer.
    public let optimizer: OptimizerKind
    /// The hyperparameters as given (no defaults filled in).
    public let hyperparameters: Hyperparameters
    /// Parameter groups as given.
    public let groups: [ParameterGroup]
    /// Global-norm clipping threshold, if any.
    public let clipGradNorm: Double?
    /// The non-finite gradient policy.
    public let nonfinite: NonfinitePolicy
    /// The number of loss terms (1 except for MTAdam).
    public let terms: Int
    /// MTAdam's default term weights λ (all 1 unless given); `[1]` otherwise.
    public let termWeights: [Double]
    /// Effective hyperparameters with defaults filled in: the session's, then one per group.
    public let effectiveHyperparameters: [Hyperparameters]
    /// How the optimizer's moments are stored (DESIGN §10); fixed for the session's lifetime.
    public let stateDType: StateDType

    let algorithm: Algorithm

    enum Algorithm: Sendable {
        /// One configured optimizer per group; index 0 is the default group.
        case perTensor([any TensorOptimizer])
        case coupled(any CoupledOptimizer)
    }

    static let sessionKeys: Set<String> = ["clip_grad_norm", "nonfinite", "terms", "term_weights"]

    /// Validates a configuration.
    ///
    /// - Throws: ``OptimizerError`` naming the field: an unknown optimizer or hyperparameter, a value
    ///   out of range, a group that sets a session-level option, groups for MoMo (one group only),
    ///   a `state_dtype` the optimizer (or its options) cannot keep.
    public init(
        optimizer name: String,
        hyperparameters: Hyperparameters = [:],
        groups: [ParameterGroup] = [],
        stateDType: StateDType = .f32
    ) throws {
        let kind = try OptimizerKind(name: name)
        optimizer = kind
        guard stateDType.optimizers.contains(kind) else {
            throw OptimizerError.invalidConfiguration(
                field: "state_dtype",
                "\(name) keeps its state in f32 only; state_dtype \(stateDType.rawValue) is for \(stateDType.optimizers.map(\.rawValue).joined(separator: " and "))"
            )
        }
        self.stateDType = stateDType
        self.hyperparameters = hyperparameters
        self.groups = groups

        var session = HyperparameterReader(hyperparameters.filter { Self.sessionKeys.contains($0.key) }, optimizer: name)
        clipGradNorm = try session.optionalDouble("clip_grad_norm", .greaterThan(0))
        nonfinite = NonfinitePolicy(
            rawValue: try session.choice("nonfinite", default: "reject", among: NonfinitePolicy.allCases.map(\.rawValue))
        )!
        if kind == .mtadam {
            guard session.has("terms") else {
                throw OptimizerError.invalidHyperparameter(field: "hyperparameters.terms", "mtadam needs the number of loss terms (an integer ≥ 1)")
            }
            terms = try session.integer("terms", default: 1, .closed(1, 64))
            termWeights = try session.optionalDoubles("term_weights", count: terms, .atLeast(0)) ?? Array(repeating: 1, count: terms)
        } else {
            terms = 1
            termWeights = [1]
        }
        try session.finish()
        var sessionEffective = session.effective

        let own = hyperparameters.filter { !Self.sessionKeys.contains($0.key) }
        var reader = HyperparameterReader(own, optimizer: name)
        if kind.isCoupled {
            guard groups.isEmpty else {
                throw OptimizerError.invalidConfiguration(
                    field: "groups",
                    "\(name) couples all tensors through one step size, so it takes a single parameter group"
                )
            }
            let coupled = try Self.makeCoupled(kind, &reader)
            try reader.finish()
            sessionEffective.merge(reader.effective) { $1 }
            algorithm = .coupled(coupled)
            effectiveHyperparameters = [sessionEffective]
            return
        }

        var rules = [try Self.makeTensorOptimizer(kind, &reader, terms: terms, stateDType: stateDType)]
        try reader.finish()
        sessionEffective.merge(reader.effective) { $1 }
        var effective = [sessionEffective]
        for (index, group) in groups.enumerated() {
            let prefix = "groups[\(index)]."
            guard !group.parameters.isEmpty else {
                throw OptimizerError.invalidConfiguration(field: prefix + "parameters", "a group needs at least one name pattern")
            }
            if let key = group.hyperparameters.keys.sorted().first(where: Self.sessionKeys.contains) {
                throw OptimizerError.invalidConfiguration(
                    field: prefix + "hyperparameters." + key,
                    "\(key) applies to the whole session and cannot be set per group"
                )
            }
            var groupReader = HyperparameterReader(
                own.merging(group.hyperparameters) { $1 },
                optimizer: name,
                fieldPrefix: prefix + "hyperparameters."
            )
            rules.append(try Self.makeTensorOptimizer(kind, &groupReader, terms: terms, stateDType: stateDType))
            try groupReader.finish()
            effective.append(groupReader.effective)
        }
        algorithm = .perTensor(rules)
        effectiveHyperparameters = effective
    }

    /// A copy with `changes` merged into the session's hyperparameters (and groups replaced if given),
    /// validated again. The number of loss terms and the state dtype cannot change.
    public func patched(hyperparameters changes: Hyperparameters, groups newGroups: [ParameterGroup]? = nil) throws -> SessionConfiguration {
        let merged = hyperparameters.merging(changes) { $1 }
        let result = try SessionConfiguration(
            optimizer: optimizer.rawValue, hyperparameters: merged, groups: newGroups ?? groups, stateDType: stateDType
        )
        guard result.terms == terms else {
            throw OptimizerError.invalidHyperparameter(
                field: "hyperparameters.terms",
                "the number of loss terms is fixed for the session (\(terms)); create a new session to change it"
            )
        }
        return result
    }

    /// The index into ``effectiveHyperparameters`` of the group a parameter belongs to (0 = default).
    public func groupIndex(ofParameter name: String) -> Int {
        for (index, group) in groups.enumerated() where group.matches(name) { return index + 1 }
        return 0
    }

    private static func makeTensorOptimizer(
        _ kind: OptimizerKind,
        _ reader: inout HyperparameterReader,
        terms: Int,
        stateDType: StateDType
    ) throws -> any TensorOptimizer {
        switch kind {
        case .adam: return try Adam(&reader, adamW: false, stateDType: stateDType)
        case .adamw: return try AdamW(&reader, stateDType: stateDType)
        case .sgd: return try SGD(&reader, terms: terms)
        case .adafactor: return try Adafactor(&reader, terms: terms)
        case .mtadam: return try MTAdam(&reader, terms: terms)
        case .acclip: return try ACClip(&reader, terms: terms)
        case .momo, .momoAdam: preconditionFailure("\(kind) is coupled")
        }
    }

    private static func makeCoupled(_ kind: OptimizerKind, _ reader: inout HyperparameterReader) throws -> any CoupledOptimizer {
        switch kind {
        case .momo: return try Momo(&reader)
        case .momoAdam: return try MomoAdam(&reader)
        default: preconditionFailure("\(kind) is per tensor")
        }
    }
}
