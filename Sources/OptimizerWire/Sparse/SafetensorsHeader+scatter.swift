extension SafetensorsHeader {
    /// Expands a sparse tensor into dense `Float`s: zeros everywhere except at the given indices.
    ///
    /// Indices must lie in `0..<dense.count` and must not repeat. Duplicates are rejected rather
    /// than summed or overwritten, because the two conventions (PyTorch's `coalesce` sums, a
    /// plain scatter keeps the last) disagree and a top-k sender never produces them.
    ///
    /// Runs in two passes over the indices and one over `dense`; allocates nothing.
    ///
    /// - Parameters:
    ///   - sparse: A pair from ``sparseTensor(named:)`` or ``sparseTensors()`` of this header.
    ///   - buffer: The buffer this header was parsed from.
    ///   - dense: The dense tensor, `P`'s element count long. On return it holds the values; if the
    ///     call throws, its contents are unspecified.
    /// - Throws: ``SafetensorsError/Code/sparseIndexOutOfRange`` for an index that is negative or
    ///   not less than `dense.count`, ``SafetensorsError/Code/duplicateSparseIndex`` for a repeated
    ///   index; both name the index tensor and the offending element.
    public func scatter(
        _ sparse: SparseTensor,
        in buffer: UnsafeRawBufferPointer,
        into dense: UnsafeMutableBufferPointer<Float>
    ) throws {
        let indexBytes = bytes(of: sparse.indices, in: buffer)
        let valueBytes = bytes(of: sparse.values, in: buffer)
        dense.update(repeating: 0)
        switch sparse.indices.dtype {
        case .I32: try Self.scatter(sparse, indexBytes, valueBytes, dense, indexType: Int32.self)
        default: try Self.scatter(sparse, indexBytes, valueBytes, dense, indexType: Int64.self)
        }
    }

    private static func scatter<Index: FixedWidthInteger & SignedInteger>(
        _ sparse: SparseTensor,
        _ indexBytes: UnsafeRawBufferPointer,
        _ valueBytes: UnsafeRawBufferPointer,
        _ dense: UnsafeMutableBufferPointer<Float>,
        indexType: Index.Type
    ) throws {
        // Pass 1: check every index, marking visited slots with a NaN pattern that pass 2 overwrites.
        // `dense` is all +0.0 before this pass, so finding the marker means the index came before.
        let marker: UInt32 = 0xFFFF_FFFF
        for k in 0..<sparse.count {
            let stored = element(indexBytes, k, as: Index.self)
            guard let index = Int(exactly: stored), index >= 0, index < dense.count else {
                throw SafetensorsError(
                    .sparseIndexOutOfRange,
                    tensor: sparse.indices.name,
                    "tensor '\(sparse.indices.name)': element \(k) is \(stored), outside 0..<\(dense.count) "
                        + "for '\(sparse.name)'"
                )
            }
            guard dense[index].bitPattern != marker else {
                throw SafetensorsError(
                    .duplicateSparseIndex,
                    tensor: sparse.indices.name,
                    "tensor '\(sparse.indices.name)': index \(index) appears more than once (again at element \(k))"
                )
            }
            dense[index] = Float(bitPattern: marker)
        }
        // Pass 2: write the values; every index is now known to be valid and unique.
        switch sparse.values.dtype {
        case .F16:
            for k in 0..<sparse.count {
                let bits = element(valueBytes, k, as: UInt16.self)
                dense[Int(truncatingIfNeeded: element(indexBytes, k, as: Index.self))] = FloatConversion.float(
                    fromFloat16Bits: bits
                )
            }
        case .BF16:
            for k in 0..<sparse.count {
                let bits = element(valueBytes, k, as: UInt16.self)
                dense[Int(truncatingIfNeeded: element(indexBytes, k, as: Index.self))] = FloatConversion.float(
                    fromBFloat16Bits: bits
                )
            }
        default:
            for k in 0..<sparse.count {
                let bits = element(valueBytes, k, as: UInt32.self)
                dense[Int(truncatingIfNeeded: element(indexBytes, k, as: Index.self))] = Float(bitPattern: bits)
            }
        }
    }
}
