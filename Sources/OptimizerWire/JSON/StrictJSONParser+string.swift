extension StrictJSONParser {
    /// Reads a string literal starting at the opening quote and returns its decoded value.
    ///
    /// Strings without escapes (nearly all of them: tensor names, dtypes) are validated and
    /// decoded straight from the input; only strings with a backslash are copied.
    mutating func parseString() throws(Failure) -> String {
        position += 1  // opening quote
        let start = position
        var highBits: UInt8 = 0
        while position < input.count {
            let byte = input[position]
            if byte == UInt8(ascii: "\"") {
                let slice = UnsafeRawBufferPointer(rebasing: input[start..<position])
                position += 1
                // ASCII needs no validation, and `String(decoding:)` is much faster than `validating`.
                return highBits & 0x80 == 0
                    ? String(decoding: slice, as: UTF8.self) : try Self.decodeUTF8(slice, at: start)
            }
            highBits |= byte
            if byte == UInt8(ascii: "\\") {
                return try parseEscapedString(from: start)
            }
            if byte < 0x20 {
                throw failure("raw control character 0x\(String(byte, radix: 16, uppercase: true)) in a string")
            }
            position += 1
        }
        throw Failure(kind: .syntax, offset: start - 1, message: "unterminated string")
    }

    private mutating func parseEscapedString(from start: Int) throws(Failure) -> String {
        var utf8 = [UInt8](UnsafeRawBufferPointer(rebasing: input[start..<position]))
        while position < input.count {
            let byte = input[position]
            switch byte {
            case UInt8(ascii: "\""):
                position += 1
                guard let string = utf8.withUnsafeBytes({ String(validating: $0, as: UTF8.self) }) else {
                    throw Failure(kind: .syntax, offset: start, message: "a string is not valid UTF-8")
                }
                return string
            case UInt8(ascii: "\\"):
                position += 1
                try appendEscape(to: &utf8)
            case ..<0x20:
                throw failure("raw control character 0x\(String(byte, radix: 16, uppercase: true)) in a string")
            default:
                utf8.append(byte)
                position += 1
            }
        }
        throw Failure(kind: .syntax, offset: start - 1, message: "unterminated string")
    }

    /// Decodes the escape after a backslash (the cursor is on the character after it).
    private mutating func appendEscape(to utf8: inout [UInt8]) throws(Failure) {
        guard position < input.count else { throw failure("unterminated escape sequence") }
        let escape = input[position]
        position += 1
        switch escape {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): utf8.append(escape)
        case UInt8(ascii: "b"): utf8.append(0x08)
        case UInt8(ascii: "f"): utf8.append(0x0C)
        case UInt8(ascii: "n"): utf8.append(0x0A)
        case UInt8(ascii: "r"): utf8.append(0x0D)
        case UInt8(ascii: "t"): utf8.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = UInt32(try readHex4())
            if (0xD800...0xDBFF).contains(scalar) {
                guard consume(UInt8(ascii: "\\")), consume(UInt8(ascii: "u")) else {
                    throw failure("unpaired high surrogate in a \\u escape")
                }
                let low = UInt32(try readHex4())
                guard (0xDC00...0xDFFF).contains(low) else { throw failure("unpaired high surrogate in a \\u escape") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw failure("unpaired low surrogate in a \\u escape")
            }
            // Every value left is a valid scalar: surrogates were handled above.
            utf8.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(scalar)!)!)
        default:
            position -= 1
            throw failure("invalid escape '\\\(Character(Unicode.Scalar(escape)))'")
        }
    }

    private mutating func readHex4() throws(Failure) -> UInt16 {
        guard input.count - position >= 4 else { throw failure("truncated \\u escape") }
        var value: UInt16 = 0
        for _ in 0..<4 {
            let byte = input[position]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw failure("invalid hex digit \(describeCurrent()) in a \\u escape")
            }
            value = value << 4 | UInt16(digit)
            position += 1
        }
        return value
    }

    private static func decodeUTF8(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws(Failure) -> String {
        guard let string = String(validating: bytes, as: UTF8.self) else {
            throw Failure(kind: .syntax, offset: offset, message: "a string is not valid UTF-8")
        }
        return string
    }
}
