/// One tensor described by a safetensors header.
///
/// An entry only describes where the bytes are; read them with
/// ``SafetensorsHeader/withFloats(_:in:_:)`` and friends, passing the same buffer the header
/// was parsed from.
public struct TensorEntry: Sendable, Hashable {
    /// The tensor's name, the key in the header.
    public let name: String
    /// The element type.
    public let dtype: DType
    /// The dimensions; `[]` is a scalar (one element).
    public let shape: [Int]
    /// Where the tensor's bytes are, relative to the start of the whole buffer (not of the
    /// data section), so `buffer[byteRange]` is the tensor.
    public let byteRange: Range<Int>
    /// The number of elements: the product of ``shape`` (1 for a scalar).
    public let elementCount: Int

    /// The number of bytes the tensor occupies.
    public var byteCount: Int { byteRange.count }

    /// The number of dimensions.
    public var rank: Int { shape.count }

    /// Creates an entry. The header parser validates every field before it builds one.
    init(name: String, dtype: DType, shape: [Int], byteRange: Range<Int>, elementCount: Int) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.byteRange = byteRange
        self.elementCount = elementCount
    }
}

extension [Int] {
    /// The shape written as in messages and headers: `[2, 3]`.
    var shapeDescription: String {
        "[" + map(String.init).joined(separator: ", ") + "]"
    }
}
