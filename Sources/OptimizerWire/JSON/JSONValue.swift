/// A JSON value as read by ``StrictJSONParser``.
///
/// Objects keep their members in document order (the header's tensor order is meaningful), and
/// numbers keep enough of their form to tell `2` from `2.0`, `2e0` or an integer too large for `Int`.
enum JSONValue: Sendable, Equatable {
    case object([JSONMember])
    case array([JSONValue])
    case string(String)
    case number(JSONNumber)
    case bool(Bool)
    case null

    /// The kind of value with its article, for messages: "an object", "a string", "null".
    var kindDescription: String {
        switch self {
        case .object: "an object"
        case .array: "an array"
        case .string: "a string"
        case .number: "a number"
        case .bool: "a boolean"
        case .null: "null"
        }
    }
}

/// One `"key": value` member of a JSON object.
struct JSONMember: Sendable, Equatable {
    var key: String
    var value: JSONValue
}

/// A JSON number literal.
struct JSONNumber: Sendable, Equatable {
    /// Whether the literal has neither a fraction nor an exponent.
    var isIntegerLiteral: Bool
    /// The value, when the literal is an integer literal that fits in `Int`.
    var integerValue: Int?
    /// The literal as written, kept only when `integerValue` cannot reproduce it.
    private var literal: String?

    /// Creates a number; `text` is the literal as written.
    init(text: String, isIntegerLiteral: Bool, integerValue: Int?) {
        self.isIntegerLiteral = isIntegerLiteral
        self.integerValue = integerValue
        self.literal = integerValue.map(String.init) == text ? nil : text
    }

    /// Creates an integer that prints as `String(value)`, without building the text.
    init(integer value: Int) {
        self.isIntegerLiteral = true
        self.integerValue = value
        self.literal = nil
    }

    /// The literal as written, e.g. `"-12"` or `"2.5e3"`.
    var text: String { literal ?? String(integerValue!) }

    static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        lhs.isIntegerLiteral == rhs.isIntegerLiteral && lhs.integerValue == rhs.integerValue && lhs.text == rhs.text
    }
}
