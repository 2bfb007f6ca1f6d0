/// A tensor sent in sparse form: `P.indices` and `P.values` instead of a dense `P`.
///
/// `P.indices` holds flat (row-major) positions into `P` as `I32` or `I64`; `P.values` holds the
/// values at those positions as `F32`, `F16` or `BF16`; every other element of `P` is zero. Both are
/// rank 1 and have the same length. This is how top-k compressed gradients travel (DESIGN §2).
///
/// Find pairs with ``SafetensorsHeader/sparseTensor(named:)`` or
/// ``SafetensorsHeader/sparseTensors()``, then expand one with
/// ``SafetensorsHeader/scatter(_:in:into:)``. The type knows nothing about sessions or parameters:
/// the caller decides what `P` is and how many elements it has.
public struct SparseTensor: Sendable, Hashable {
    /// The suffix that marks the index tensor: `".indices"`.
    public static let indicesSuffix = ".indices"
    /// The suffix that marks the value tensor: `".values"`.
    public static let valuesSuffix = ".values"

    /// The dense tensor's name, `P`.
    public let name: String
    /// The `P.indices` entry (`I32` or `I64`, rank 1).
    public let indices: TensorEntry
    /// The `P.values` entry (`F32`, `F16` or `BF16`, rank 1, as long as ``indices``).
    public let values: TensorEntry

    /// The number of explicitly given elements.
    public var count: Int { indices.elementCount }

    /// Validates a pair's dtypes, ranks and lengths, and that `P` is not also sent dense.
    init(name: String, indices: TensorEntry, values: TensorEntry, in header: SafetensorsHeader) throws {
        guard header.entry(named: name) == nil else {
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: name,
                "tensor '\(name)' is sent both dense and as '\(indices.name)' + '\(values.name)'"
            )
        }
        guard indices.dtype == .I32 || indices.dtype == .I64 else {
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: indices.name,
                "tensor '\(indices.name)' is \(indices.dtype.rawValue); sparse indices must be I32 or I64"
            )
        }
        guard values.dtype.isWireFloat else {
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: values.name,
                "tensor '\(values.name)' is \(values.dtype.rawValue); sparse values must be F32, F16 or BF16"
            )
        }
        for entry in [indices, values] where entry.rank != 1 {
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: entry.name,
                "tensor '\(entry.name)' has shape \(entry.shape.shapeDescription); sparse indices and values must be rank 1"
            )
        }
        guard indices.elementCount == values.elementCount else {
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: values.name,
                "tensor '\(indices.name)' has \(indices.elementCount) elements but '\(values.name)' has "
                    + "\(values.elementCount); they must have the same length"
            )
        }
        self.name = name
        self.indices = indices
        self.values = values
    }
}

// MARK: Finding pairs

extension SafetensorsHeader {
    /// Returns tensor `name` in sparse form, if the header has `name.indices` or `name.values`.
    ///
    /// - Parameter name: The dense tensor's name `P`.
    /// - Returns: The validated pair, or `nil` when neither `P.indices` nor `P.values` is present.
    /// - Throws: ``SafetensorsError/Code/invalidSparseTensor`` when only one of the two is present,
    ///   when their dtypes, ranks or lengths are wrong, or when `P` itself is also present.
    public func sparseTensor(named name: String) throws -> SparseTensor? {
        let indicesName = name + SparseTensor.indicesSuffix
        let valuesName = name + SparseTensor.valuesSuffix
        switch (entry(named: indicesName), entry(named: valuesName)) {
        case (nil, nil):
            return nil
        case (let indices?, let values?):
            return try SparseTensor(name: name, indices: indices, values: values, in: self)
        case (_?, nil):
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: indicesName,
                "tensor '\(indicesName)' has no matching '\(valuesName)'"
            )
        case (nil, _?):
            throw SafetensorsError(
                .invalidSparseTensor,
                tensor: valuesName,
                "tensor '\(valuesName)' has no matching '\(indicesName)'"
            )
        }
    }

    /// Returns every complete `P.indices` + `P.values` pair, in the header order of the indices.
    ///
    /// A `*.indices` or `*.values` tensor without its partner is not reported here (it may be an
    /// ordinary dense tensor with that name); ask ``sparseTensor(named:)`` about a specific `P`.
    ///
    /// - Parameter isDense: Names that are dense tensors in their own right (a session's parameters
    ///   called `mem.indices` and `mem.values`): a pair with such a member is not a pair.
    /// - Throws: ``SafetensorsError/Code/invalidSparseTensor`` when a pair has wrong dtypes, ranks
    ///   or lengths, or when its `P` is also present dense.
    public func sparseTensors(denseNames isDense: (String) -> Bool = { _ in false }) throws -> [SparseTensor] {
        var pairs: [SparseTensor] = []
        for indices in tensors where indices.name.hasSuffix(SparseTensor.indicesSuffix) && !isDense(indices.name) {
            let name = String(indices.name.dropLast(SparseTensor.indicesSuffix.count))
            if let values = entry(named: name + SparseTensor.valuesSuffix), !isDense(values.name) {
                pairs.append(try SparseTensor(name: name, indices: indices, values: values, in: self))
            }
        }
        return pairs
    }
}
