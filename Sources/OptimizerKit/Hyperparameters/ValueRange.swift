/// An allowed range for a numeric hyperparameter, with the text used in error messages.
public struct ValueRange: Sendable {
    /// Human-readable form, e.g. `[0, 1)`.
    public let text: String
    private let test: @Sendable (Double) -> Bool

    init(_ text: String, _ test: @escaping @Sendable (Double) -> Bool) {
        self.text = text
        self.test = test
    }

    /// Whether `value` is allowed. Non-finite values never are, nor values past float32's range:
    /// the kernels compute in float32, where they would be infinite.
    public func contains(_ value: Double) -> Bool { Self.fitsFloat32(value) && test(value) }

    /// ``text``, saying so when `value` is refused for being past float32's range.
    public func text(refusing value: Double) -> String {
        value.isFinite && !Self.fitsFloat32(value) ? "\(text) and within float32's range (|x| ≤ 3.4e38)" : text
    }

    /// Whether `value` is finite in float32 too.
    public static func fitsFloat32(_ value: Double) -> Bool { value.isFinite && abs(value) <= Double(Float.greatestFiniteMagnitude) }

    /// Any finite number.
    static let any = ValueRange("any finite number") { _ in true }
    /// `value ≥ lower`.
    static func atLeast(_ lower: Double) -> ValueRange { ValueRange("≥ \(format(lower))") { $0 >= lower } }
    /// `value > lower`.
    static func greaterThan(_ lower: Double) -> ValueRange { ValueRange("> \(format(lower))") { $0 > lower } }
    /// `lower ≤ value < upper`.
    static func halfOpen(_ lower: Double, _ upper: Double) -> ValueRange {
        ValueRange("[\(format(lower)), \(format(upper)))") { $0 >= lower && $0 < upper }
    }
    /// `lower ≤ value ≤ upper`.
    static func closed(_ lower: Double, _ upper: Double) -> ValueRange {
        ValueRange("[\(format(lower)), \(format(upper))]") { $0 >= lower && $0 <= upper }
    }
    /// `value < upper`.
    static func lessThan(_ upper: Double) -> ValueRange { ValueRange("< \(format(upper))") { $0 < upper } }

    private static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
    }
}
