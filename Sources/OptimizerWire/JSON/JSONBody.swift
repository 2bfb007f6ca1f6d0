import OptimizerKit

/// The strict check of a JSON request body, before it is decoded.
///
/// Foundation's `JSONDecoder` reads an object that has the same key twice and silently keeps one
/// of the values (`{"lr": 0.1, "lr": -5}` is read as lr 0.1, the out-of-range value never seen).
/// ``check(_:maxDepth:)`` reads the body with ``StrictJSONParser``, the parser of safetensors
/// headers, which refuses that at any depth, so an ambiguous body is refused before anything is
/// decoded or changed.
public enum JSONBody {
    /// Checks that `bytes` is one JSON value (RFC 8259, UTF-8) nested at most `maxDepth` levels, in
    /// which no object has the same key twice (keys compared as Swift strings, as a decoder's
    /// dictionary would). A leading UTF-8 byte order mark is let through, as RFC 8259 allows and
    /// `JSONDecoder` does; anything else the strict parser refuses (a trailing comma, which
    /// `JSONDecoder` would take) is invalid. Keeps no values: memory stays proportional to the keys
    /// of the objects being read.
    ///
    /// - Throws: ``JSONBodyError`` naming the duplicated member (`hyperparameters.lr`,
    ///   `groups[1].parameters`), or saying where the JSON is invalid.
    public static func check(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64) throws(JSONBodyError) {
        let byteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]
        let start = bytes.starts(with: byteOrderMark) ? byteOrderMark.count : 0
        do {
            _ = try StrictJSONParser.parse(UnsafeRawBufferPointer(rebasing: bytes[start...]), maxDepth: maxDepth, keepsValues: false)
        } catch {
            switch error.kind {
            case .duplicateKey:
                throw JSONBodyError(
                    kind: .duplicateKey, field: Self.describe(error.reversedPath),
                    message: "duplicate key; each member may be given once, so which value was meant is ambiguous")
            case .syntax, .tooDeep:
                throw JSONBodyError(kind: .invalid, field: "body", message: "not valid JSON: \(error.message) (at byte \(start + error.offset))")
            }
        }
    }

    /// A path as the daemon's errors name fields: `groups[1].hyperparameters.lr`, keys abbreviated.
    private static func describe(_ reversedPath: [StrictJSONParser.Failure.PathComponent]) -> String {
        var text = ""
        for component in reversedPath.reversed() {
            switch component {
            case .index(let index): text += "[\(index)]"
            case .key(let key): text += text.isEmpty ? key.abbreviated : "." + key.abbreviated
            }
        }
        return text.isEmpty ? "body" : text
    }
}

/// A JSON request body refused by ``JSONBody/check(_:maxDepth:)``.
public struct JSONBodyError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What is wrong with the body.
    public enum Kind: Sendable, Hashable {
        /// Not JSON: a syntax error, invalid UTF-8, or nesting too deep.
        case invalid
        /// An object has the same key twice.
        case duplicateKey
    }

    /// What is wrong.
    public let kind: Kind
    /// The member given twice (`hyperparameters.lr`), or `body` for invalid JSON.
    public let field: String
    /// What is wrong with it.
    public let message: String

    /// `field: message`.
    public var description: String { "\(field): \(message)" }
}
