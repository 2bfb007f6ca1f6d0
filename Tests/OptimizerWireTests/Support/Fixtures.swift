import Testing

@testable import OptimizerWire

extension [UInt8] {
    /// Bytes from a hex string; whitespace is ignored.
    init(hex: String) {
        let digits = hex.filter { !$0.isWhitespace }.map { UInt8(String($0), radix: 16)! }
        self = stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
    }

    var hexString: String {
        map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
    }
}

/// A safetensors buffer with the given header text (not padded) and data bytes.
func safetensors(header: String, data: [UInt8] = []) -> [UInt8] {
    let json = Array(header.utf8)
    return withUnsafeBytes(of: UInt64(json.count).littleEndian, Array.init) + json + data
}

/// A safetensors buffer whose length prefix is exactly `length`, followed by `rest`.
func safetensors(declaredLength length: UInt64, rest: [UInt8]) -> [UInt8] {
    withUnsafeBytes(of: length.littleEndian, Array.init) + rest
}

func parseHeader(_ bytes: [UInt8], limits: SafetensorsHeader.Limits = .init()) throws -> SafetensorsHeader {
    try bytes.withUnsafeBytes { try SafetensorsHeader(parsing: $0, limits: limits) }
}

/// Expects `body` to throw a ``SafetensorsError`` with `code`, whose description contains every
/// string in `mentions` and whose `tensorName` is `tensor` (when given).
func expectSafetensorsError(
    _ code: SafetensorsError.Code,
    tensor: String? = nil,
    mentioning mentions: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected SafetensorsError \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as SafetensorsError {
        #expect(error.code == code, "\(error.description)", sourceLocation: sourceLocation)
        if let tensor {
            #expect(error.tensorName == tensor, "\(error.description)", sourceLocation: sourceLocation)
        }
        for mention in mentions {
            #expect(error.description.contains(mention), "\(error.description)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected SafetensorsError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Float bytes, little-endian.
func littleEndianBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
}
