#if canImport(FoundationEssentials)
public import FoundationEssentials
#else
public import Foundation
#endif

/// A whole safetensors buffer together with its validated header: the owning convenience.
///
/// Use it where holding the bytes is simpler than threading a buffer pointer through calls (tests,
/// checkpoints, clients). The hot path of a server can parse a ``SafetensorsHeader`` straight from
/// the request body instead and avoid the copy into `bytes`.
///
/// ```swift
/// let file = try SafetensorsFile(bytes: body)
/// let weights = try file.floats(named: "layer.0.weight")
/// ```
public struct SafetensorsFile: Sendable {
    /// The whole buffer: length prefix, header and data.
    public let bytes: [UInt8]
    /// The validated header.
    public let header: SafetensorsHeader

    /// Validates `bytes` as a safetensors buffer and keeps them.
    ///
    /// - Parameters:
    ///   - bytes: The whole buffer.
    ///   - limits: Bounds on what the header may declare.
    /// - Throws: ``SafetensorsError`` describing the first problem found.
    public init(bytes: [UInt8], limits: SafetensorsHeader.Limits = .init()) throws {
        self.header = try bytes.withUnsafeBytes { try SafetensorsHeader(parsing: $0, limits: limits) }
        self.bytes = bytes
    }

    /// Validates `data` as a safetensors buffer and keeps a copy of it.
    ///
    /// - Parameters:
    ///   - data: The whole buffer.
    ///   - limits: Bounds on what the header may declare.
    /// - Throws: ``SafetensorsError`` describing the first problem found.
    public init(data: Data, limits: SafetensorsHeader.Limits = .init()) throws {
        try self.init(bytes: [UInt8](data), limits: limits)
    }

    /// The `__metadata__` strings (empty when absent).
    public var metadata: [String: String] { header.metadata }

    /// The tensors in header order.
    public var tensors: [TensorEntry] { header.tensors }

    /// Returns the tensor with the given name, or `nil`.
    public func entry(named name: String) -> TensorEntry? {
        header.entry(named: name)
    }

    /// Returns a tensor's values as `Float`s (`F32`, `F16` or `BF16` data).
    ///
    /// - Throws: ``SafetensorsError/Code/tensorNotFound`` or ``SafetensorsError/Code/unsupportedDType``.
    public func floats(named name: String) throws -> [Float] {
        let entry = try requireEntry(named: name)
        return try bytes.withUnsafeBytes { try header.floats(entry, in: $0) }
    }

    /// Calls `body` with a tensor's values as `Float`s, in place when the data is aligned `F32`.
    ///
    /// - Throws: ``SafetensorsError/Code/tensorNotFound``, ``SafetensorsError/Code/unsupportedDType``,
    ///   or what `body` throws.
    public func withFloats<Result>(
        named name: String,
        _ body: (UnsafeBufferPointer<Float>) throws -> Result
    ) throws -> Result {
        let entry = try requireEntry(named: name)
        return try bytes.withUnsafeBytes { try header.withFloats(entry, in: $0, body) }
    }

    /// Returns an integer tensor's values (`I32`, `I64`, …) as `Int`s.
    ///
    /// - Throws: ``SafetensorsError/Code/tensorNotFound``, ``SafetensorsError/Code/unsupportedDType``
    ///   or ``SafetensorsError/Code/integerOutOfRange``.
    public func integers(named name: String) throws -> [Int] {
        let entry = try requireEntry(named: name)
        return try bytes.withUnsafeBytes { try header.integers(entry, in: $0) }
    }

    /// Returns an `F64` tensor's values (or a float tensor's, widened).
    ///
    /// - Throws: ``SafetensorsError/Code/tensorNotFound`` or ``SafetensorsError/Code/unsupportedDType``.
    public func doubles(named name: String) throws -> [Double] {
        let entry = try requireEntry(named: name)
        return try bytes.withUnsafeBytes { try header.doubles(entry, in: $0) }
    }

    private func requireEntry(named name: String) throws -> TensorEntry {
        guard let entry = header.entry(named: name) else {
            throw SafetensorsError(.tensorNotFound, tensor: name, "there is no tensor named '\(name)'")
        }
        return entry
    }
}
