/// Named optimizer state: tensors (moments, factored statistics) and scalars (step counts, EMAs).
///
/// Every optimizer keeps its state here, under the names of its reference implementation
/// (`exp_avg`, `exp_avg_sq`, `momentum_buffer`, ...), so that inspection and checkpoints work the same
/// way for all of them. Slots are created lazily on the first step, as the references do; the order of
/// creation is kept so listings are stable.
///
/// Thread-safety: none; owned by one session.
public final class StateSlots {
    /// Slot names in creation order.
    public private(set) var names: [String] = []
    private var tensors: [String: TensorBuffer] = [:]
    private var packed: [String: PackedTensor] = [:]
    private var scalars: [String: Double] = [:]

    /// Creates an empty set of slots.
    public init() {}

    /// Whether nothing has been stored yet (no step has run).
    public var isEmpty: Bool { names.isEmpty }

    /// The tensor slot `name`, created zero-filled with `shape` if it does not exist yet.
    public func tensor(_ name: String, shape: TensorShape) -> TensorBuffer {
        if let existing = tensors[name] {
            precondition(existing.shape == shape, "slot \(name) has shape \(existing.shape), not \(shape)")
            return existing
        }
        let created = TensorBuffer(zeros: shape)
        tensors[name] = created
        names.append(name)
        return created
    }

    /// The compact tensor slot `name` (8-bit codes or bfloat16), created zero-filled if it does not
    /// exist yet.
    public func packed(_ name: String, shape: TensorShape, element: PackedTensor.Element) -> PackedTensor {
        if let existing = packed[name] {
            precondition(existing.shape == shape && existing.element == element, "slot \(name) is \(existing.element) \(existing.shape)")
            return existing
        }
        let created = PackedTensor(zeros: shape, element: element)
        packed[name] = created
        names.append(name)
        return created
    }

    /// The tensor slot `name` if it exists.
    public func existingTensor(_ name: String) -> TensorBuffer? { tensors[name] }

    /// The scalar slot `name`, or `nil` if it was never set.
    public func scalar(_ name: String) -> Double? { scalars[name] }

    /// Sets the scalar slot `name`.
    public func setScalar(_ name: String, _ value: Double) {
        if scalars.updateValue(value, forKey: name) == nil, tensors[name] == nil, packed[name] == nil { names.append(name) }
    }

    /// Every slot, in creation order.
    public var all: [StateSlot] {
        names.map { name in
            if let tensor = tensors[name] { return StateSlot(name: name, value: .tensor(tensor)) }
            if let tensor = packed[name] { return StateSlot(name: name, value: .packed(tensor)) }
            return StateSlot(name: name, value: .scalar(scalars[name]!))
        }
    }

    /// Replaces the whole content with `slots` (used when a checkpoint is restored).
    public func replace(with slots: [StateSlot]) {
        names = []
        tensors = [:]
        packed = [:]
        scalars = [:]
        for slot in slots {
            switch slot.value {
            case .tensor(let tensor): tensors[slot.name] = tensor.copy()
            case .packed(let tensor): packed[slot.name] = tensor.copy()
            case .scalar(let value): scalars[slot.name] = value
            }
            names.append(slot.name)
        }
    }

    /// A deep copy.
    public func copy() -> StateSlots {
        let copy = StateSlots()
        copy.replace(with: all)
        return copy
    }
}

/// One named piece of optimizer state.
public struct StateSlot {
    /// What a slot holds.
    public enum Value {
        /// A tensor (its shape may differ from the parameter's, e.g. Adafactor's row statistics).
        case tensor(TensorBuffer)
        /// A compact tensor (8-bit codes or bfloat16 moments, DESIGN §10).
        case packed(PackedTensor)
        /// A scalar, kept in Double as the references keep Python floats.
        case scalar(Double)
    }

    /// The slot's name, e.g. `exp_avg`.
    public let name: String
    /// The slot's content (a reference to live state for tensors: copy it to keep it).
    public let value: Value

    /// Creates a slot.
    public init(name: String, value: Value) {
        self.name = name
        self.value = value
    }

    /// The L2 norm of a tensor slot (bfloat16 slots included), or the absolute value of a scalar.
    /// 8-bit codes need their block scales: NaN here, ``StateSlots/norm(of:)`` knows them.
    public var norm: Double {
        switch value {
        case .tensor(let tensor): return tensor.norm
        case .packed(let tensor): return tensor.norm
        case .scalar(let value): return abs(value)
        }
    }
}
