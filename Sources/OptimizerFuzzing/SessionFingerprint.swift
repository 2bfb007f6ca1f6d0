import OptimizerKit

/// Everything a request may change in a session, hashed: its step, parameter names, shapes and
/// values, and every state slot. Two fingerprints differ when the session changed (up to hash
/// collisions, which a fuzzer will not aim at).
struct SessionFingerprint: Equatable {
    let step: Int
    let names: [String]
    let hash: Int

    init(_ session: OptimizerSession) {
        step = session.step
        names = session.parameterNames
        var hasher = Hasher()
        for parameter in session.parameters { Self.combine(parameter, into: &hasher) }
        for slots in session.states + [session.globalState] {
            for slot in slots.all {
                hasher.combine(slot.name)
                switch slot.value {
                case .tensor(let tensor): Self.combine(tensor, into: &hasher)
                case .scalar(let value): hasher.combine(value.bitPattern)
                case .packed(let tensor):
                    hasher.combine(tensor.shape)
                    hasher.combine(bytes: tensor.bytes)
                }
            }
        }
        hash = hasher.finalize()
    }

    private static func combine(_ tensor: TensorBuffer, into hasher: inout Hasher) {
        hasher.combine(tensor.shape)
        hasher.combine(bytes: UnsafeRawBufferPointer(tensor.readOnly))
    }
}
