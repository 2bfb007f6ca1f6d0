import Testing

@testable import OptimizerWire

struct StrictJSONParserTests {
    static func failure(_ text: String, maxDepth: Int = 64) -> StrictJSONParser.Failure? {
        failure(Array(text.utf8), maxDepth: maxDepth)
    }

    static func failure(_ bytes: [UInt8], maxDepth: Int = 64) -> StrictJSONParser.Failure? {
        bytes.withUnsafeBytes { raw -> StrictJSONParser.Failure? in
            do throws(StrictJSONParser.Failure) {
                _ = try StrictJSONParser.parse(raw, maxDepth: maxDepth)
                return nil
            } catch {
                return error
            }
        }
    }

    static func value(_ text: String) -> JSONValue? {
        Array(text.utf8).withUnsafeBytes { try? StrictJSONParser.parse($0) }
    }

    @Test func parsesEveryKindOfValueAndKeepsMemberOrder() throws {
        let value = try #require(Self.value(#" {"z": [1, -0, 2.5e-3, true, false, null], "a": {"s": "x"}} "#))
        guard case .object(let members) = value else {
            Issue.record("not an object")
            return
        }
        #expect(members.map(\.key) == ["z", "a"])
        guard case .array(let elements) = members[0].value else {
            Issue.record("not an array")
            return
        }
        #expect(elements[0] == .number(JSONNumber(text: "1", isIntegerLiteral: true, integerValue: 1)))
        #expect(elements[1] == .number(JSONNumber(text: "-0", isIntegerLiteral: true, integerValue: 0)))
        #expect(elements[2] == .number(JSONNumber(text: "2.5e-3", isIntegerLiteral: false, integerValue: nil)))
        #expect(Array(elements[3...]) == [.bool(true), .bool(false), .null])
        #expect(members[1].value == .object([JSONMember(key: "s", value: .string("x"))]))
    }

    @Test func integersAtTheLimitsOfInt() {
        #expect(
            Self.value("9223372036854775807")
                == .number(JSONNumber(text: "9223372036854775807", isIntegerLiteral: true, integerValue: .max))
        )
        #expect(
            Self.value("-9223372036854775808")
                == .number(JSONNumber(text: "-9223372036854775808", isIntegerLiteral: true, integerValue: .min))
        )
        #expect(
            Self.value("9223372036854775808")
                == .number(JSONNumber(text: "9223372036854775808", isIntegerLiteral: true, integerValue: nil))
        )
    }

    @Test func decodesEscapes() {
        #expect(Self.value(#""a\"\\\/\b\f\n\r\t\u0041\u00e9\ud83d\ude00""#) == .string("a\"\\/\u{8}\u{c}\n\r\tAé😀"))
        #expect(Self.value(#""\u0000""#) == .string("\u{0}"))
    }

    @Test(arguments: [
        "", " ", "{", "}", "[1,]", "[1 2]", "{\"a\" 1}", "{\"a\":1,}", "{1:2}", "01", "1.", ".5", "-", "1e", "+1",
        "tru", "nul", "NaN", "Infinity", "\"abc", "\"a\nb\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"",
        "\"\\ud800\\u0041\"", "{} {}", "'a'", "[1]]",
    ])
    func rejectsInvalidJSON(text: String) {
        #expect(Self.failure(text)?.kind == .syntax)
    }

    @Test func rejectsInvalidUTF8() {
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC0, 0x80, 0x22], [0x22, 0xED, 0xA0, 0x80, 0x22], [0x22, 0xE2, 0x82, 0x22],
        ] {
            let failure = Self.failure(bytes)
            #expect(failure?.message.contains("UTF-8") == true)
        }
    }

    @Test func rejectsDuplicateKeysInSmallAndLargeObjects() {
        #expect(Self.failure(#"{"a": 1, "b": 2, "a": 3}"#)?.kind == .duplicateKey)
        let many = (0..<40).map { #""k\#($0)": 0"# }.joined(separator: ",")
        #expect(Self.value("{\(many)}") != nil)
        let failure = Self.failure(#"{"outer": {\#(many), "k39": 1}}"#)
        #expect(failure?.kind == .duplicateKey)
        #expect(failure?.duplicate?.key == "k39" && failure?.duplicate?.context == "outer")
    }

    @Test func canonicallyEquivalentKeysAreDuplicates() {
        #expect(Self.failure(#"{"\u00e9": 1, "e\u0301": 2}"#)?.kind == .duplicateKey)
    }

    @Test func boundsNestingDepth() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(Self.failure(deep)?.kind == .tooDeep)
        #expect(Self.failure("[[[]]]", maxDepth: 2)?.kind == .tooDeep)
        #expect(Self.failure("[[[]]]", maxDepth: 3) == nil)
    }

    @Test func reportsTheOffsetOfTheProblem() {
        #expect(Self.failure(#"{"a": x}"#)?.offset == 6)
    }

    @Test func reportsThePathToTheProblem() {
        #expect(Self.failure(#"{"a": [1, {"b": 2, "b": 3}]}"#)?.reversedPath == [.key("b"), .index(1), .key("a")])
        #expect(Self.failure(#"{"a": [1, {"b": x}]}"#)?.reversedPath == [.key("b"), .index(1), .key("a")])
        #expect(Self.failure(#"{"a": 1, "a": 2}"#)?.reversedPath == [.key("a")])
        #expect(Self.failure("[1,]")?.reversedPath == [.index(1)])
    }

    @Test func withoutValuesOnlyChecks() {
        let text = #"{"a": [1, "x", {"b": true}], "c": {"d": null}}"#
        let checked = Array(text.utf8).withUnsafeBytes { try? StrictJSONParser.parse($0, keepsValues: false) }
        #expect(checked == .object([JSONMember(key: "a", value: .null), JSONMember(key: "c", value: .null)]))
        let duplicate = Array(#"{"a": [{"b": 1, "b": 2}]}"#.utf8).withUnsafeBytes { bytes -> StrictJSONParser.Failure? in
            do throws(StrictJSONParser.Failure) {
                _ = try StrictJSONParser.parse(bytes, keepsValues: false)
                return nil
            } catch {
                return error
            }
        }
        #expect(duplicate?.kind == .duplicateKey)
        #expect(duplicate?.reversedPath == [.key("b"), .index(0), .key("a")])
    }
}
