/// The shape of a dense, row-major tensor.
///
/// A rank-0 shape (`[]`) describes a scalar with one element.
public struct TensorShape: Hashable, Sendable, CustomStringConvertible {
    /// The size of each axis, outermost first.
    public var dimensions: [Int]

    /// Creates a shape from its axis sizes. Every size must be non-negative.
    public init(_ dimensions: [Int]) {
        precondition(dimensions.allSatisfy { $0 >= 0 }, "negative dimension in \(dimensions)")
        self.dimensions = dimensions
    }

    /// The number of axes.
    public var rank: Int { dimensions.count }

    /// The number of elements: the product of the dimensions (1 for rank 0).
    ///
    /// A zero dimension makes it 0 whatever the others are: a request may declare an empty tensor
    /// like `[4294967296, 4294967296, 0]`, whose other dimensions multiply past `Int.max`.
    public var elementCount: Int { dimensions.contains(0) ? 0 : dimensions.reduce(1, *) }

    public var description: String { "[" + dimensions.map(String.init).joined(separator: ", ") + "]" }
}
