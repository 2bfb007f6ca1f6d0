/// A named float32 tensor borrowed from the caller: a parameter upload or a gradient.
///
/// The same shape of data flows both ways into a session (``OptimizerSession/setParameters(_:)``
/// takes parameters, ``StepInput/gradients`` carries gradients) and out of a request decoder
/// (OptimizerWire's `withFloatTensors`), so one type serves all of them. For a gradient of
/// MTAdam, `name` is `k/P`: the gradient of loss term `k` for parameter `P` (split at the first `/`).
///
/// Ownership: `values` is not retained; it must stay valid and unchanged for the call it is passed to.
public struct TensorView {
    /// The tensor name as sent.
    public var name: String
    /// The shape as sent.
    public var shape: TensorShape
    /// The values, row-major; read during the call only.
    public var values: UnsafeBufferPointer<Float>

    /// Creates a view of `values` with a name and shape.
    public init(name: String, shape: TensorShape, values: UnsafeBufferPointer<Float>) {
        self.name = name
        self.shape = shape
        self.values = values
    }
}
