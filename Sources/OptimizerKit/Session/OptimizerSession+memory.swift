/// What a session's tensors cost in memory, for the server's memory budget: counted when parameters
/// are uploaded, so that the optimizer state a later step creates lazily was admitted beforehand.
extension OptimizerSession {
    /// Bytes counted per parameter beyond its values and state: the buffer objects, the state slots,
    /// the name and the index entries (an estimate on the high side).
    public static let tensorOverheadBytes = 512

    /// A parameter to be added, as an upload declares it (name and shape), before any memory is allocated.
    public typealias PlannedParameter = (name: String, shape: TensorShape)

    /// The bytes the session's tensors hold now or come to hold at their next step, with
    /// `configuration` (the current one unless given) and the parameters of `additions` that do not
    /// exist yet added.
    ///
    /// For each parameter: its float32 values, plus the larger of the state it holds and the state
    /// `configuration`'s optimizer creates for it (an optimizer never creates more), plus
    /// ``tensorOverheadBytes``. Names of `additions` that already exist add nothing (an upload
    /// overwrites them in place).
    public func memoryFootprint(configuration: SessionConfiguration? = nil, adding additions: [PlannedParameter] = []) -> Int {
        let configuration = configuration ?? self.configuration
        var elements = 0
        for (index, name) in parameterNames.enumerated() {
            let held = states[index].tensorElements
            let planned = configuration.stateElements(forParameter: name, shape: parameters[index].shape)
            elements += max(parameters[index].count, 1) + max(held, planned)
        }
        var added = 0
        var seen = Set<String>()
        for addition in additions where parameterIndex(named: addition.name) == nil && seen.insert(addition.name).inserted {
            elements += max(addition.shape.elementCount, 1) + configuration.stateElements(forParameter: addition.name, shape: addition.shape)
            added += 1
        }
        return elements * MemoryLayout<Float>.stride + (parameterNames.count + added) * Self.tensorOverheadBytes
    }
}

extension SessionConfiguration {
    /// The float elements of the tensor slots this configuration's optimizer creates for parameter
    /// `name` of `shape` (its group's hyperparameters decide, e.g. Adam's `amsgrad`).
    public func stateElements(forParameter name: String, shape: TensorShape) -> Int {
        switch algorithm {
        case .perTensor(let rules): return rules[groupIndex(ofParameter: name)].stateElements(for: shape, terms: terms)
        case .coupled(let optimizer): return optimizer.stateElements(for: shape)
        }
    }
}

extension StateSlots {
    /// The float elements allocated by the tensor slots (a buffer holds at least one element).
    public var tensorElements: Int {
        all.reduce(0) { total, slot in
            guard case .tensor(let tensor) = slot.value else { return total }
            return total + max(tensor.count, 1)
        }
    }
}
