/// Converts a parameter's saved moments to the form a session's state dtype keeps (a checkpoint of
/// one `state_dtype` restored into a session of another, DESIGN §10): 8-bit codes are dequantized
/// (absmax · code), bfloat16 widened, and the float32 values then rounded to bfloat16 (nearest even)
/// or quantized block by block as bitsandbytes does. A moment already in the target form is kept
/// bit for bit.
public enum MomentConversion {
    /// The two moments of Adam-like state, first (signed map) and second (unsigned map).
    public static let moments = ["exp_avg", "exp_avg_sq"]

    /// The name of the absmax slot of 8-bit moment `name`.
    static func absmaxName(_ name: String) -> String { name + "_absmax" }

    /// `slots` of a parameter of `shape` with `exp_avg`/`exp_avg_sq` (and their absmax slots) in the
    /// form `dtype` keeps for that size; every other slot unchanged and in order.
    ///
    /// - Throws: ``OptimizerError`` (`invalidConfiguration`, field `state`) when 8-bit codes come
    ///   without their absmax slot or a moment's size does not match `shape`.
    public static func convert(_ slots: [StateSlot], shape: TensorShape, to dtype: StateDType) throws -> [StateSlot] {
        let byName = Dictionary(slots.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        let quantized = dtype == .int8 && shape.elementCount >= Int8AdamKernel.minimumSize
        var result: [StateSlot] = []
        for slot in slots {
            if let moment = moments.first(where: { slot.name == absmaxName($0) }), byName[moment] != nil { continue }
            guard moments.contains(slot.name) else {
                result.append(slot)
                continue
            }
            let signed = slot.name == moments[0]
            switch (slot.value, dtype) {
            case (.tensor, .f32),
                (.tensor, .int8) where !quantized:
                result.append(slot)
            case (.packed(let packed), .bf16) where packed.element == .bfloat16:
                result.append(slot)
            case (.packed(let packed), .int8) where packed.element == .code8 && quantized:
                result.append(slot)
                result.append(StateSlot(name: absmaxName(slot.name), value: try absmax(of: slot.name, in: byName, count: shape.elementCount)))
            default:
                let values = try floats(slot, byName: byName, count: shape.elementCount, signed: signed)
                result += encode(values, name: slot.name, shape: shape, dtype: dtype, quantized: quantized, signed: signed)
            }
        }
        return result
    }

    private static func absmax(of name: String, in slots: [String: StateSlot.Value], count: Int) throws -> StateSlot.Value {
        guard case .tensor(let absmax) = slots[absmaxName(name)], absmax.count == Int8AdamKernel.blockCount(count) else {
            throw OptimizerError.invalidConfiguration(
                field: "state",
                "\(name) holds 8-bit codes but \(absmaxName(name)) is missing or not \(Int8AdamKernel.blockCount(count)) floats"
            )
        }
        return .tensor(absmax)
    }

    /// The float32 values of a moment in any form.
    private static func floats(_ slot: StateSlot, byName: [String: StateSlot.Value], count: Int, signed: Bool) throws -> [Float] {
        switch slot.value {
        case .tensor(let tensor) where tensor.count == count:
            return tensor.values
        case .packed(let packed) where packed.count == count && packed.element == .bfloat16:
            return (0..<count).map { BFloat16.float(packed.bfloat16Bits[$0]) }
        case .packed(let packed) where packed.count == count:
            guard case .tensor(let absmax) = try absmax(of: slot.name, in: byName, count: count) else { return [] }
            let map = signed ? DynamicMap.signed : DynamicMap.unsigned
            return (0..<count).map { map.codes[Int(packed.codes[$0])] * absmax.pointer[$0 / Int8AdamKernel.blockSize] }
        default:
            throw OptimizerError.invalidConfiguration(field: "state", "\(slot.name) does not have \(count) elements")
        }
    }

    /// A moment's float32 values in the target form.
    private static func encode(
        _ values: [Float], name: String, shape: TensorShape, dtype: StateDType, quantized: Bool, signed: Bool
    ) -> [StateSlot] {
        if dtype == .bf16 {
            let packed = PackedTensor(zeros: shape, element: .bfloat16)
            for i in values.indices { packed.bfloat16Bits[i] = BFloat16.bits(values[i]) }
            return [StateSlot(name: name, value: .packed(packed))]
        }
        guard quantized else { return [StateSlot(name: name, value: .tensor(TensorBuffer(shape: shape, values: values)))] }
        let codes = PackedTensor(zeros: shape, element: .code8)
        let absmax = TensorBuffer(zeros: TensorShape([Int8AdamKernel.blockCount(values.count)]))
        values.withUnsafeBufferPointer { x in
            var start = 0
            while start < values.count {
                let n = min(Int8AdamKernel.blockSize, values.count - start)
                Int8AdamKernel.quantize(
                    x.baseAddress! + start, count: n, map: signed ? DynamicMap.signed : DynamicMap.unsigned,
                    codes: codes.codes + start, absmax: absmax.pointer + start / Int8AdamKernel.blockSize
                )
                start += n
            }
        }
        return [StateSlot(name: name, value: .packed(codes)), StateSlot(name: absmaxName(name), value: .tensor(absmax))]
    }
}

extension StateSlots {
    /// The L2 norm of `slot` (one of this set's), 8-bit codes dequantized with their block scales.
    public func norm(of slot: StateSlot) -> Double {
        guard case .packed(let packed) = slot.value, packed.element == .code8,
            let absmax = existingTensor(MomentConversion.absmaxName(slot.name))
        else { return slot.norm }
        let map = slot.name == MomentConversion.moments[0] ? DynamicMap.signed : DynamicMap.unsigned
        var sum = 0.0
        for i in 0..<packed.count {
            let x = Double(map.codes[Int(packed.codes[i])] * absmax.pointer[i / Int8AdamKernel.blockSize])
            sum += x * x
        }
        return sum.squareRoot()
    }
}
