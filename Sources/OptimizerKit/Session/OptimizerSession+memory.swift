/// What a session's tensors cost in memory, for the server's memory budget: counted when parameters
/// are uploaded, so that the optimizer state a later step creates lazily was admitted beforehand.
extension OptimizerSession {
    /// Bytes counted per parameter beyond its values and state: the buffer objects, the state slots,
    /// the name and the index entries, and the allocator's share (measured: a session of 50 000
    /// one-element Adam parameters grew the daemon's resident memory by ~1.6 KB per parameter at
    /// upload and ~2.1 KB after a step; 512 was counted before).
    public static let tensorOverheadBytes = 2048

    /// Bytes counted per session beyond its tensors: its handle, state, gate, history and journal
    /// (measured: 10 000 empty sessions took ~7.7 KB each).
    public static let sessionOverheadBytes = 8192

    /// A parameter to be added, as an upload declares it (name and shape), before any memory is allocated.
    public typealias PlannedParameter = (name: String, shape: TensorShape)

    /// The bytes the session's tensors hold now or come to hold at their next step, with
    /// `configuration` (the current one unless given) and the parameters of `additions` that do not
    /// exist yet added.
    ///
    /// For each parameter: its float32 values, plus the larger of the state bytes it holds and the
    /// state `configuration`'s optimizer creates for it (an optimizer never creates more; compact
    /// state counts its compact bytes, DESIGN §10), plus ``tensorOverheadBytes``. Names of `additions`
    /// that already exist add nothing (an upload overwrites them in place).
    public func memoryFootprint(configuration: SessionConfiguration? = nil, adding additions: [PlannedParameter] = []) -> Int {
        let configuration = configuration ?? self.configuration
        var bytes = 0
        for (index, name) in parameterNames.enumerated() {
            let held = states[index].tensorBytes
            let planned = configuration.stateBytes(forParameter: name, shape: parameters[index].shape)
            bytes += max(parameters[index].count, 1) * 4 + max(held, planned)
        }
        var added = 0
        var seen = Set<String>()
        for addition in additions where parameterIndex(named: addition.name) == nil && seen.insert(addition.name).inserted {
            bytes += max(addition.shape.elementCount, 1) * 4 + configuration.stateBytes(forParameter: addition.name, shape: addition.shape)
            added += 1
        }
        return bytes + (parameterNames.count + added) * Self.tensorOverheadBytes + Self.sessionOverheadBytes
            + configuration.groupBytes
    }

    /// The bytes of optimizer state the session holds now (tensor slots, compact ones at their size).
    public var stateBytes: Int { states.reduce(0) { $0 + $1.tensorBytes } }
}

extension SessionConfiguration {
    /// Bytes counted for the parameter groups: each group's rules and hyperparameters, and its
    /// patterns (measured: 45 000 one-pattern groups took ~1.6 KB each).
    public var groupBytes: Int {
        groups.reduce(0) { total, group in
            total + 2048 + group.parameters.reduce(0) { $0 + 64 + 2 * $1.utf8.count }
        }
    }

    /// The bytes of the tensor slots this configuration's optimizer creates for parameter `name` of
    /// `shape` (its group's hyperparameters and the session's state dtype decide).
    public func stateBytes(forParameter name: String, shape: TensorShape) -> Int {
        switch algorithm {
        case .perTensor(let rules): return rules[groupIndex(ofParameter: name)].stateBytes(for: shape, terms: terms)
        case .coupled(let optimizer): return 4 * optimizer.stateElements(for: shape)
        }
    }
}

extension StateSlots {
    /// The bytes allocated by the tensor slots (a buffer holds at least one element).
    public var tensorBytes: Int {
        all.reduce(0) { total, slot in
            switch slot.value {
            case .tensor(let tensor): return total + 4 * max(tensor.count, 1)
            case .packed(let tensor): return total + max(tensor.byteCount, 1)
            case .scalar: return total
            }
        }
    }
}
