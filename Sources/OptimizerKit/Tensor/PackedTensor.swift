/// A fixed-size tensor of compact optimizer state: one byte per element (8-bit codes) or two
/// (bfloat16 bits), row-major, 64-byte aligned like ``TensorBuffer``.
///
/// Thread-safety: none; owned by one session like ``TensorBuffer``.
public final class PackedTensor {
    /// What one element is.
    public enum Element: String, Sendable {
        /// An 8-bit quantization code (`U8` in checkpoints).
        case code8
        /// The bit pattern of a bfloat16 value (`BF16` in checkpoints).
        case bfloat16

        /// Bytes per element.
        public var size: Int { self == .code8 ? 1 : 2 }
    }

    /// The element kind.
    public let element: Element
    /// The shape; `count == shape.elementCount`.
    public let shape: TensorShape
    /// The number of elements.
    public let count: Int
    /// The elements' bytes. Valid for the lifetime of the tensor.
    public let pointer: UnsafeMutableRawPointer

    /// Creates an all-zero tensor (zero codes dequantize to 0 with a zero absmax; zero bits are +0.0).
    public init(zeros shape: TensorShape, element: Element) {
        self.element = element
        self.shape = shape
        count = shape.elementCount
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count * element.size, 1), alignment: 64)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(count * element.size, 1))
    }

    /// Creates a tensor holding a copy of `bytes`, which must be `shape.elementCount · element.size` long.
    public convenience init(shape: TensorShape, element: Element, copying bytes: UnsafeRawBufferPointer) {
        self.init(zeros: shape, element: element)
        precondition(bytes.count == byteCount, "\(bytes.count) bytes for \(count) \(element) elements")
        if let base = bytes.baseAddress, byteCount > 0 { pointer.copyMemory(from: base, byteCount: byteCount) }
    }

    deinit { pointer.deallocate() }

    /// The bytes the elements take.
    public var byteCount: Int { count * element.size }

    /// The elements' bytes, read-only.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: byteCount) }

    /// The elements as codes (``Element/code8`` only).
    public var codes: UnsafeMutablePointer<UInt8> {
        precondition(element == .code8)
        return pointer.assumingMemoryBound(to: UInt8.self)
    }

    /// The elements as bfloat16 bit patterns (``Element/bfloat16`` only).
    public var bfloat16Bits: UnsafeMutablePointer<UInt16> {
        precondition(element == .bfloat16)
        return pointer.assumingMemoryBound(to: UInt16.self)
    }

    /// An independent copy.
    public func copy() -> PackedTensor { PackedTensor(shape: shape, element: element, copying: bytes) }
}
