// MARK: Whole buffers in wire byte order

extension FloatConversion {
    /// Converts little-endian `F32`, `F16` or `BF16` bytes into `Float`s.
    ///
    /// The bytes need no particular alignment. `F32` on a little-endian host is one `memcpy`; the
    /// 16-bit formats are plain loops that the compiler vectorizes.
    ///
    /// - Parameters:
    ///   - bytes: `destination.count` elements of `dtype`, little-endian.
    ///   - dtype: `.F32`, `.F16` or `.BF16`; anything else is a programmer error.
    ///   - destination: Receives the values; its count must match the element count in `bytes`.
    public static func decode(
        _ bytes: UnsafeRawBufferPointer,
        from dtype: DType,
        into destination: UnsafeMutableBufferPointer<Float>
    ) {
        precondition(dtype.isWireFloat, "FloatConversion.decode: \(dtype.rawValue) is not F32, F16 or BF16")
        precondition(bytes.count == destination.count * dtype.bitWidth / 8, "FloatConversion.decode: sizes differ")
        guard let source = bytes.baseAddress, let target = destination.baseAddress else { return }
        let count = destination.count
        switch dtype {
        case .F16:
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self))
                target[i] = float(fromFloat16Bits: bits)
            }
        case .BF16:
            for i in 0..<count {
                let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 &* i, as: UInt16.self))
                target[i] = float(fromBFloat16Bits: bits)
            }
        default:
            #if _endian(little)
            UnsafeMutableRawPointer(target).copyMemory(from: source, byteCount: bytes.count)
            #else
            for i in 0..<count {
                let bits = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 &* i, as: UInt32.self))
                target[i] = Float(bitPattern: bits)
            }
            #endif
        }
    }

    /// Converts `Float`s into little-endian `F32`, `F16` or `BF16` bytes, rounding to nearest even.
    ///
    /// The destination needs no particular alignment.
    ///
    /// - Parameters:
    ///   - source: The values to convert.
    ///   - dtype: `.F32`, `.F16` or `.BF16`; anything else is a programmer error.
    ///   - destination: Exactly `source.count` elements of `dtype` in size.
    public static func encode(
        _ source: UnsafeBufferPointer<Float>,
        as dtype: DType,
        into destination: UnsafeMutableRawBufferPointer
    ) {
        precondition(dtype.isWireFloat, "FloatConversion.encode: \(dtype.rawValue) is not F32, F16 or BF16")
        precondition(destination.count == source.count * dtype.bitWidth / 8, "FloatConversion.encode: sizes differ")
        guard let values = source.baseAddress, let target = destination.baseAddress else { return }
        let count = source.count
        switch dtype {
        case .F16:
            for i in 0..<count {
                target.storeBytes(of: float16Bits(from: values[i]).littleEndian, toByteOffset: 2 &* i, as: UInt16.self)
            }
        case .BF16:
            for i in 0..<count {
                target.storeBytes(of: bfloat16Bits(from: values[i]).littleEndian, toByteOffset: 2 &* i, as: UInt16.self)
            }
        default:
            #if _endian(little)
            target.copyMemory(from: values, byteCount: destination.count)
            #else
            for i in 0..<count {
                target.storeBytes(of: values[i].bitPattern.littleEndian, toByteOffset: 4 &* i, as: UInt32.self)
            }
            #endif
        }
    }
}
