// MARK: Reading tensor data

extension SafetensorsHeader {
    /// Returns a tensor's raw little-endian bytes inside `buffer`, without copying.
    ///
    /// - Parameters:
    ///   - entry: One of this header's ``tensors``.
    ///   - buffer: The buffer this header was parsed from (a different buffer is a programmer
    ///     error and traps).
    public func bytes(of entry: TensorEntry, in buffer: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        precondition(
            buffer.count == bufferByteCount && entry.byteRange.upperBound <= buffer.count,
            "SafetensorsHeader: the buffer is not the one this header was parsed from"
        )
        return UnsafeRawBufferPointer(rebasing: buffer[entry.byteRange])
    }

    /// Calls `body` with a tensor's values as `Float`s, without copying when possible.
    ///
    /// `F32` data that is 4-byte aligned in memory is handed to `body` in place (zero-copy) on a
    /// little-endian host. Anything else (`F16`, `BF16`, unaligned `F32`) is converted into a
    /// temporary buffer that lives only for the call.
    ///
    /// - Parameters:
    ///   - entry: One of this header's ``tensors``.
    ///   - buffer: The buffer this header was parsed from.
    ///   - body: Receives the values; the pointer is valid only during the call and must not be
    ///     stored.
    /// - Returns: What `body` returns.
    /// - Throws: ``SafetensorsError/Code/unsupportedDType`` when the tensor is not `F32`, `F16` or
    ///   `BF16`, or whatever `body` throws.
    public func withFloats<Result>(
        _ entry: TensorEntry,
        in buffer: UnsafeRawBufferPointer,
        _ body: (UnsafeBufferPointer<Float>) throws -> Result
    ) throws -> Result {
        let bytes = try floatBytes(of: entry, in: buffer)
        guard let base = bytes.baseAddress, entry.elementCount > 0 else {
            return try body(UnsafeBufferPointer(start: nil, count: 0))
        }
        #if _endian(little)
        if entry.dtype == .F32, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            return try base.withMemoryRebound(to: Float.self, capacity: entry.elementCount) {
                try body(UnsafeBufferPointer(start: $0, count: entry.elementCount))
            }
        }
        #endif
        let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: entry.elementCount)
        defer { scratch.deallocate() }
        FloatConversion.decode(bytes, from: entry.dtype, into: scratch)
        return try body(UnsafeBufferPointer(scratch))
    }

    /// Returns a copy of a tensor's values as `Float`s (`F32`, `F16` or `BF16` data).
    ///
    /// - Parameters:
    ///   - entry: One of this header's ``tensors``.
    ///   - buffer: The buffer this header was parsed from.
    /// - Throws: ``SafetensorsError/Code/unsupportedDType`` for other dtypes.
    public func floats(_ entry: TensorEntry, in buffer: UnsafeRawBufferPointer) throws -> [Float] {
        let bytes = try floatBytes(of: entry, in: buffer)
        return [Float](unsafeUninitializedCapacity: entry.elementCount) { values, initialized in
            FloatConversion.decode(bytes, from: entry.dtype, into: UnsafeMutableBufferPointer(rebasing: values[...]))
            initialized = entry.elementCount
        }
    }

    /// Converts a tensor's values into `Float`s in memory the caller owns, such as scratch space.
    ///
    /// - Parameters:
    ///   - entry: One of this header's ``tensors``, `F32`, `F16` or `BF16`.
    ///   - buffer: The buffer this header was parsed from.
    ///   - destination: Exactly ``TensorEntry/elementCount`` floats; every one is overwritten.
    /// - Throws: ``SafetensorsError/Code/unsupportedDType`` for other dtypes,
    ///   ``SafetensorsError/Code/elementCountMismatch`` when `destination` has another size.
    public func decodeFloats(
        _ entry: TensorEntry,
        in buffer: UnsafeRawBufferPointer,
        into destination: UnsafeMutableBufferPointer<Float>
    ) throws {
        let bytes = try floatBytes(of: entry, in: buffer)
        guard destination.count == entry.elementCount else {
            throw SafetensorsError(
                .elementCountMismatch,
                tensor: entry.name,
                "tensor '\(entry.name)' has \(entry.elementCount) elements but the destination holds \(destination.count)"
            )
        }
        FloatConversion.decode(bytes, from: entry.dtype, into: destination)
    }

    /// Returns a tensor's values as `Double`s (`F64` data, or `F32`/`F16`/`BF16` widened exactly).
    ///
    /// - Throws: ``SafetensorsError/Code/unsupportedDType`` for other dtypes.
    public func doubles(_ entry: TensorEntry, in buffer: UnsafeRawBufferPointer) throws -> [Double] {
        if entry.dtype.isWireFloat {
            return try floats(entry, in: buffer).map(Double.init)
        }
        guard entry.dtype == .F64 else {
            throw unsupported(entry, expected: "F64, F32, F16 or BF16")
        }
        let raw = bytes(of: entry, in: buffer)
        return (0..<entry.elementCount).map { Double(bitPattern: Self.element(raw, $0, as: UInt64.self)) }
    }

    /// Returns a tensor's values as `Int`s, for index tensors (`I32`, `I64`) and other integer data.
    ///
    /// - Throws: ``SafetensorsError/Code/unsupportedDType`` when the dtype is not an integer type,
    ///   ``SafetensorsError/Code/integerOutOfRange`` when a `U64` value exceeds `Int.max`.
    public func integers(_ entry: TensorEntry, in buffer: UnsafeRawBufferPointer) throws -> [Int] {
        guard entry.dtype.isInteger else {
            throw unsupported(entry, expected: "an integer dtype such as I32 or I64")
        }
        let raw = bytes(of: entry, in: buffer)
        var values: [Int] = []
        values.reserveCapacity(entry.elementCount)
        for i in 0..<entry.elementCount {
            guard let value = Self.integer(raw, i, dtype: entry.dtype) else {
                throw SafetensorsError(
                    .integerOutOfRange,
                    tensor: entry.name,
                    "tensor '\(entry.name)': element \(i) is \(Self.element(raw, i, as: UInt64.self)), too large for Int"
                )
            }
            values.append(value)
        }
        return values
    }

    // MARK: Helpers

    /// The bytes of a tensor that must be `F32`, `F16` or `BF16`.
    func floatBytes(of entry: TensorEntry, in buffer: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        guard entry.dtype.isWireFloat else {
            throw unsupported(entry, expected: "F32, F16 or BF16")
        }
        return bytes(of: entry, in: buffer)
    }

    private func unsupported(_ entry: TensorEntry, expected: String) -> SafetensorsError {
        SafetensorsError(
            .unsupportedDType,
            tensor: entry.name,
            "tensor '\(entry.name)' is \(entry.dtype.rawValue); expected \(expected)"
        )
    }

    /// Element `index` of a little-endian array of `T`, at any alignment.
    @inline(__always)
    static func element<T: FixedWidthInteger>(_ raw: UnsafeRawBufferPointer, _ index: Int, as type: T.Type) -> T {
        T(littleEndian: raw.loadUnaligned(fromByteOffset: index &* MemoryLayout<T>.size, as: T.self))
    }

    /// Element `index` of an integer tensor as an `Int`, or `nil` when it does not fit.
    @inline(__always)
    static func integer(_ raw: UnsafeRawBufferPointer, _ index: Int, dtype: DType) -> Int? {
        switch dtype {
        case .I8: Int(element(raw, index, as: Int8.self))
        case .I16: Int(element(raw, index, as: Int16.self))
        case .I32: Int(element(raw, index, as: Int32.self))
        case .I64: Int(element(raw, index, as: Int64.self))
        case .U8: Int(element(raw, index, as: UInt8.self))
        case .U16: Int(element(raw, index, as: UInt16.self))
        case .U32: Int(element(raw, index, as: UInt32.self))
        case .U64: Int(exactly: element(raw, index, as: UInt64.self))
        default: nil
        }
    }
}
