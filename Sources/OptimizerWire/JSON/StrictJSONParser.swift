import OptimizerKit

/// A small strict JSON parser (RFC 8259) over raw UTF-8 bytes.
///
/// Stricter than Foundation's `JSONSerialization` where the wire format needs it:
/// - a key that appears twice in one object is an error (`JSONSerialization` keeps one silently);
/// - nesting deeper than `maxDepth` is an error, so hostile input cannot exhaust the stack;
/// - strings must be valid UTF-8 without raw control characters, and `\u` escapes must not
///   leave unpaired surrogates;
/// - nothing but whitespace may follow the top-level value.
///
/// Keys are compared as Swift `String`s, that is up to Unicode canonical equivalence: `"é"` and
/// `"e\u0301"` count as the same key. Such names would collide in any Swift dictionary later,
/// so rejecting them up front is deliberate.
///
/// Runs in time linear in the input; allocates only for the values it returns.
struct StrictJSONParser {
    /// Why parsing failed, and where.
    struct Failure: Error, Sendable {
        enum Kind: Sendable, Equatable {
            case syntax
            case duplicateKey
            case tooDeep
        }

        var kind: Kind
        /// Byte offset into the parsed input.
        var offset: Int
        var message: String
        /// For a duplicate key: the key, and the key of the enclosing member (nil at the top level).
        var duplicate: (key: String, context: String?)? = nil
        /// Where the problem is, innermost first: the member keys and array indices that lead to
        /// it (for a duplicate key, that key first). Added as the failure leaves each level.
        var reversedPath: [PathComponent] = []

        /// One step of a path into a JSON value.
        enum PathComponent: Sendable, Equatable {
            case key(String)
            case index(Int)
        }

        /// The failure seen from one level up, inside `component`.
        func within(_ component: PathComponent) -> Failure {
            var failure = self
            failure.reversedPath.append(component)
            return failure
        }
    }

    private let bytes: UnsafeRawBufferPointer
    private let maxDepth: Int
    /// Whether values are built; without, only object keys are kept (to find duplicates).
    private let keepsValues: Bool
    private var index = 0

    /// Parses one JSON value that fills `bytes` (whitespace around it is allowed).
    ///
    /// With `keepsValues` false it only checks: the result is the value's shape with every member
    /// value and array element dropped, and memory stays proportional to the keys of the objects
    /// being read.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 64, keepsValues: Bool = true) throws(Failure) -> JSONValue {
        var parser = StrictJSONParser(bytes: bytes, maxDepth: maxDepth, keepsValues: keepsValues)
        parser.skipWhitespace()
        let value = try parser.parseValue(depth: 0, context: nil)
        parser.skipWhitespace()
        if parser.index < bytes.count {
            throw parser.failure("unexpected \(parser.describeCurrent()) after the JSON value")
        }
        return value
    }

    private init(bytes: UnsafeRawBufferPointer, maxDepth: Int, keepsValues: Bool) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.keepsValues = keepsValues
    }

    // MARK: Values

    private mutating func parseValue(depth: Int, context: String?) throws(Failure) -> JSONValue {
        guard index < bytes.count else { throw failure("unexpected end of input, expected a value") }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try parseObject(depth: depth + 1, context: context)
        case UInt8(ascii: "["): return try parseArray(depth: depth + 1, context: context)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        case UInt8(ascii: "t"):
            try expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expectLiteral("null")
            return .null
        default: throw failure("unexpected \(describeCurrent()), expected a value")
        }
    }

    private mutating func parseObject(depth: Int, context: String?) throws(Failure) -> JSONValue {
        try checkDepth(depth)
        index += 1  // {
        skipWhitespace()
        var members: [JSONMember] = []
        if consume(UInt8(ascii: "}")) { return .object(members) }
        // Small objects (every tensor entry) are checked for duplicates by a scan; big ones by a set.
        var seen: Set<String>? = nil
        while true {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else {
                throw failure("expected a string key, found \(describeCurrent())")
            }
            let keyOffset = index
            let key = try parseString()
            if Self.insertIsDuplicate(key, into: &seen, members: members) {
                let place = context.map { " in '\($0.abbreviated)'" } ?? ""
                throw Failure(
                    kind: .duplicateKey,
                    offset: keyOffset,
                    message: "duplicate key '\(key.abbreviated)'\(place)",
                    duplicate: (key, context),
                    reversedPath: [.key(key)]
                )
            }
            skipWhitespace()
            guard consume(UInt8(ascii: ":")) else {
                throw failure("expected ':' after key '\(key.abbreviated)', found \(describeCurrent())")
            }
            skipWhitespace()
            let value: JSONValue
            do {
                value = try parseValue(depth: depth, context: key)
            } catch {
                throw error.within(.key(key))
            }
            members.append(JSONMember(key: key, value: keepsValues ? value : .null))
            skipWhitespace()
            if consume(UInt8(ascii: ",")) {
                skipWhitespace()
                continue
            }
            if consume(UInt8(ascii: "}")) { return .object(members) }
            throw failure("expected ',' or '}' after the value of '\(key.abbreviated)', found \(describeCurrent())")
        }
    }

    private static func insertIsDuplicate(_ key: String, into seen: inout Set<String>?, members: [JSONMember]) -> Bool {
        if seen == nil {
            if members.count < 16 {
                return members.contains { $0.key == key }
            }
            seen = Set(members.map(\.key))
        }
        return !seen!.insert(key).inserted
    }

    private mutating func parseArray(depth: Int, context: String?) throws(Failure) -> JSONValue {
        try checkDepth(depth)
        index += 1  // [
        skipWhitespace()
        var elements: [JSONValue] = []
        if consume(UInt8(ascii: "]")) { return .array(elements) }
        var count = 0
        while true {
            do {
                let element = try parseValue(depth: depth, context: context)
                if keepsValues { elements.append(element) }
            } catch {
                throw error.within(.index(count))
            }
            count += 1
            skipWhitespace()
            if consume(UInt8(ascii: ",")) {
                skipWhitespace()
                continue
            }
            if consume(UInt8(ascii: "]")) { return .array(elements) }
            throw failure("expected ',' or ']' in an array, found \(describeCurrent())")
        }
    }

    private mutating func parseNumber() throws(Failure) -> JSONNumber {
        let start = index
        let negative = consume(UInt8(ascii: "-"))
        var value = 0
        var overflow = false
        if consume(UInt8(ascii: "0")) {
            // A leading zero stands alone: "01" is not JSON.
        } else if index < bytes.count, (UInt8(ascii: "1")...UInt8(ascii: "9")).contains(bytes[index]) {
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
                let digit = Int(bytes[index] &- UInt8(ascii: "0"))
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (next, o2) =
                    negative ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
                overflow = overflow || o1 || o2
                value = next
                index += 1
            }
        } else {
            throw failure("invalid number: expected a digit, found \(describeCurrent())")
        }
        var isInteger = true
        if consume(UInt8(ascii: ".")) {
            isInteger = false
            try consumeDigits(after: "'.'")
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            isInteger = false
            index += 1
            if !consume(UInt8(ascii: "+")) { _ = consume(UInt8(ascii: "-")) }
            try consumeDigits(after: "the exponent")
        }
        // Plain integers (every shape and offset) skip building the literal's text.
        let isNegativeZero = negative && value == 0
        if isInteger, !overflow, !isNegativeZero {
            return JSONNumber(integer: value)
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        return JSONNumber(text: text, isIntegerLiteral: isInteger, integerValue: isInteger && !overflow ? value : nil)
    }

    private mutating func consumeDigits(after what: String) throws(Failure) {
        let start = index
        while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) {
            index += 1
        }
        if index == start {
            throw failure("invalid number: expected a digit after \(what), found \(describeCurrent())")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(Failure) {
        let count = literal.utf8CodeUnitCount
        guard bytes.count - index >= count,
            (0..<count).allSatisfy({ bytes[index + $0] == literal.utf8Start[$0] })
        else {
            throw failure("unexpected \(describeCurrent()), expected '\(literal)'")
        }
        index += count
    }

    // MARK: Helpers

    private func checkDepth(_ depth: Int) throws(Failure) {
        if depth > maxDepth {
            throw Failure(kind: .tooDeep, offset: index, message: "nesting deeper than \(maxDepth) levels")
        }
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"): index += 1
            default: return
            }
        }
    }

    mutating func consume(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    func failure(_ message: String) -> Failure {
        Failure(kind: .syntax, offset: index, message: message)
    }

    /// Names the byte at the cursor for a message: `'x'`, `byte 0xFF` or `end of input`.
    func describeCurrent() -> String {
        guard index < bytes.count else { return "end of input" }
        let byte = bytes[index]
        if byte >= 0x21, byte < 0x7F { return "'\(Character(Unicode.Scalar(byte)))'" }
        return "byte 0x" + String(byte, radix: 16, uppercase: true)
    }

    /// The bytes being parsed, for the string reader in `StrictJSONParser+string.swift`.
    var input: UnsafeRawBufferPointer { bytes }
    /// The cursor, for the string reader.
    var position: Int {
        get { index }
        set { index = newValue }
    }
}
