import Testing

@testable import OptimizerWire

/// Every malformed input is rejected with the right code and a message naming what is wrong.
struct SafetensorsHeaderValidationTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var header: String
        var dataCount = 0
        var code: SafetensorsError.Code
        var tensor: String? = nil
        var mentions: [String] = []
        var testDescription: String { label }
    }

    static func entry(_ dtype: String = "F32", _ shape: String = "[2]", _ offsets: String = "[0, 8]") -> String {
        #"{"dtype": "\#(dtype)", "shape": \#(shape), "data_offsets": \#(offsets)}"#
    }

    static let cases: [Case] = [
        // JSON
        Case(label: "syntax error", header: #"{"w": }"#, code: .invalidJSON, mentions: ["not valid JSON", "byte 6"]),
        Case(label: "truncated JSON", header: #"{"w": {"dtype""#, code: .invalidJSON),
        Case(label: "garbage after the object", header: "{} x", code: .invalidJSON, mentions: ["'x'"]),
        Case(label: "trailing comma", header: #"{"a": "b",}"#, code: .invalidJSON),
        Case(label: "array header", header: "[1, 2]", code: .headerNotObject),
        Case(label: "leading whitespace", header: " {}", code: .headerNotObject),
        Case(
            label: "duplicate tensor",
            header: #"{"w": \#(entry()), "w": \#(entry("F32", "[2]", "[8, 16]"))}"#,
            dataCount: 16,
            code: .duplicateKey,
            tensor: "w",
            mentions: ["duplicate key 'w'"]
        ),
        Case(
            label: "duplicate field in an entry",
            header: #"{"w": {"dtype": "F32", "dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}"#,
            dataCount: 8,
            code: .duplicateKey,
            tensor: "w",
            mentions: ["'dtype'", "in 'w'"]
        ),
        Case(
            label: "duplicate metadata key",
            header: #"{"__metadata__": {"k": "1", "k": "2"}}"#,
            code: .duplicateKey,
            mentions: ["'k'", "__metadata__"]
        ),
        Case(
            label: "duplicate key after escaping",
            header: #"{"__metadata__": {"k": "1", "\u006b": "2"}}"#,
            code: .duplicateKey
        ),
        Case(
            label: "deep nesting",
            header: #"{"w": "# + String(repeating: "[", count: 200) + String(repeating: "]", count: 200) + "}",
            code: .invalidJSON,
            mentions: ["nesting"]
        ),
        // Entries
        Case(
            label: "entry not an object",
            header: #"{"w": 5}"#,
            code: .invalidTensorEntry,
            tensor: "w",
            mentions: ["'w'", "a number"]
        ),
        Case(
            label: "missing dtype",
            header: #"{"w": {"shape": [2], "data_offsets": [0, 8]}}"#,
            dataCount: 8,
            code: .invalidTensorEntry,
            tensor: "w",
            mentions: ["missing field 'dtype'"]
        ),
        Case(
            label: "missing shape",
            header: #"{"w": {"dtype": "F32", "data_offsets": [0, 8]}}"#,
            dataCount: 8,
            code: .invalidTensorEntry,
            tensor: "w",
            mentions: ["missing field 'shape'"]
        ),
        Case(
            label: "missing data_offsets",
            header: #"{"w": {"dtype": "F32", "shape": [2]}}"#,
            dataCount: 8,
            code: .invalidTensorEntry,
            tensor: "w",
            mentions: ["missing field 'data_offsets'"]
        ),
        Case(
            label: "extra field",
            header: #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "strides": [1]}}"#,
            dataCount: 8,
            code: .invalidTensorEntry,
            tensor: "w",
            mentions: ["unexpected field 'strides'"]
        ),
        Case(
            label: "dtype not a string",
            header: #"{"w": \#(entry("F32").replacingOccurrences("\"F32\"", "32"))}"#,
            dataCount: 8,
            code: .invalidTensorEntry,
            tensor: "w",
            mentions: ["dtype must be a string"]
        ),
        Case(
            label: "unknown dtype",
            header: #"{"w": \#(entry("F33"))}"#,
            dataCount: 8,
            code: .unknownDType,
            tensor: "w",
            mentions: ["'F33'"]
        ),
        Case(
            label: "lower-case dtype",
            header: #"{"w": \#(entry("f32"))}"#,
            dataCount: 8,
            code: .unknownDType,
            tensor: "w"
        ),
        // Shapes
        Case(
            label: "negative dim",
            header: #"{"w": \#(entry("F32", "[-2]"))}"#,
            dataCount: 8,
            code: .invalidShape,
            tensor: "w",
            mentions: ["shape[0]", "negative"]
        ),
        Case(
            label: "fractional dim",
            header: #"{"w": \#(entry("F32", "[2, 1.5]"))}"#,
            dataCount: 8,
            code: .invalidShape,
            tensor: "w",
            mentions: ["shape[1]", "1.5", "not an integer"]
        ),
        Case(
            label: "exponent dim",
            header: #"{"w": \#(entry("F32", "[2e0]"))}"#,
            dataCount: 8,
            code: .invalidShape,
            tensor: "w",
            mentions: ["2e0"]
        ),
        Case(
            label: "huge dim",
            header: #"{"w": \#(entry("F32", "[99999999999999999999]"))}"#,
            dataCount: 8,
            code: .invalidShape,
            tensor: "w",
            mentions: ["too large"]
        ),
        Case(
            label: "string dim",
            header: #"{"w": \#(entry("F32", #"["2"]"#))}"#,
            dataCount: 8,
            code: .invalidShape,
            tensor: "w",
            mentions: ["a string"]
        ),
        Case(
            label: "shape not an array",
            header: #"{"w": \#(entry("F32", "2"))}"#,
            dataCount: 8,
            code: .invalidShape,
            tensor: "w"
        ),
        Case(
            label: "element count overflow",
            header: #"{"w": \#(entry("F32", "[4611686018427387904, 4]"))}"#,
            dataCount: 8,
            code: .sizeOverflow,
            tensor: "w"
        ),
        Case(
            label: "byte count overflow",
            header: #"{"w": \#(entry("F64", "[4611686018427387904]"))}"#,
            dataCount: 8,
            code: .sizeOverflow,
            tensor: "w"
        ),
        Case(
            label: "bytes differ from shape",
            header: #"{"w": \#(entry("F32", "[3]", "[0, 8]"))}"#,
            dataCount: 8,
            code: .sizeMismatch,
            tensor: "w",
            mentions: ["[3]", "F32", "12 bytes", "[0, 8]"]
        ),
        Case(
            label: "F4 half byte",
            header: #"{"w": \#(entry("F4", "[3]", "[0, 2]"))}"#,
            dataCount: 2,
            code: .sizeMismatch,
            tensor: "w"
        ),
        // Offsets
        Case(
            label: "fractional offset",
            header: #"{"w": \#(entry("F32", "[2]", "[0, 8.0]"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w",
            mentions: ["data_offsets[1]"]
        ),
        Case(
            label: "negative offset",
            header: #"{"w": \#(entry("F32", "[2]", "[-8, 0]"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w",
            mentions: ["negative"]
        ),
        Case(
            label: "begin after end",
            header: #"{"w": \#(entry("F32", "[0]", "[8, 0]"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w",
            mentions: ["[8, 0]"]
        ),
        Case(
            label: "three offsets",
            header: #"{"w": \#(entry("F32", "[2]", "[0, 8, 8]"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w",
            mentions: ["3 values"]
        ),
        Case(
            label: "offsets not an array",
            header: #"{"w": \#(entry("F32", "[2]", "8"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w"
        ),
        Case(
            label: "past the data section",
            header: #"{"w": \#(entry("F32", "[4]", "[0, 16]"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w",
            mentions: ["past the end", "8 bytes"]
        ),
        Case(
            label: "10 GB claim on a small buffer",
            header: #"{"w": \#(entry("F32", "[2684354560]", "[0, 10737418240]"))}"#,
            dataCount: 8,
            code: .invalidOffsets,
            tensor: "w"
        ),
        // Tiling
        Case(
            label: "overlap",
            header: #"{"a": \#(entry("F32", "[3]", "[0, 12]")), "b": \#(entry("F32", "[2]", "[8, 16]"))}"#,
            dataCount: 16,
            code: .overlappingTensors,
            tensor: "b",
            mentions: ["'a'", "'b'"]
        ),
        Case(
            label: "identical ranges",
            header: #"{"a": \#(entry()), "b": \#(entry())}"#,
            dataCount: 8,
            code: .overlappingTensors
        ),
        Case(
            label: "gap between tensors",
            header: #"{"a": \#(entry("F32", "[1]", "[0, 4]")), "b": \#(entry("F32", "[1]", "[8, 12]"))}"#,
            dataCount: 12,
            code: .gapBetweenTensors,
            tensor: "b",
            mentions: ["4 bytes", "'a'", "'b'"]
        ),
        Case(
            label: "gap before the first tensor",
            header: #"{"a": \#(entry("F32", "[1]", "[4, 8]"))}"#,
            dataCount: 8,
            code: .gapBetweenTensors,
            tensor: "a",
            mentions: ["first 4 bytes"]
        ),
        Case(
            label: "trailing bytes",
            header: #"{"a": \#(entry("F32", "[1]", "[0, 4]"))}"#,
            dataCount: 8,
            code: .trailingBytes,
            tensor: "a",
            mentions: ["4 bytes after the last tensor 'a'"]
        ),
        Case(label: "data but no tensors", header: "{}", dataCount: 4, code: .trailingBytes, mentions: ["4 bytes"]),
        // Metadata
        Case(
            label: "metadata not an object",
            header: #"{"__metadata__": ["a"]}"#,
            code: .invalidMetadata,
            mentions: ["an array"]
        ),
        Case(
            label: "metadata number value",
            header: #"{"__metadata__": {"step": 3}}"#,
            code: .invalidMetadata,
            mentions: ["'step'", "a number"]
        ),
        Case(
            label: "metadata null value",
            header: #"{"__metadata__": {"step": null}}"#,
            code: .invalidMetadata,
            mentions: ["'step'"]
        ),
    ]

    @Test(arguments: cases)
    func malformedHeaderIsRejected(_ testCase: Case) {
        let bytes = safetensors(header: testCase.header, data: [UInt8](repeating: 0, count: testCase.dataCount))
        expectSafetensorsError(testCase.code, tensor: testCase.tensor, mentioning: testCase.mentions) {
            _ = try parseHeader(bytes)
        }
    }

    @Test func hostileStringsAreAbbreviatedInMessages() {
        let long = String(repeating: "Z", count: 100_000)
        let header = #"{"w": \#(Self.entry(long)), "__metadata__": {"\#(long)": 1}}"#
        do {
            _ = try parseHeader(safetensors(header: header, data: [UInt8](repeating: 0, count: 8)))
            Issue.record("parsed")
        } catch let error as SafetensorsError {
            #expect(error.code == .unknownDType)
            #expect(error.description.count < 200)
            #expect(error.description.hasSuffix("…'"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
