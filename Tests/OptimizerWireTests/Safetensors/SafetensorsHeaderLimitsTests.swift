import Testing

@testable import OptimizerWire

/// The length prefix and the configurable limits are checked before anything is allocated.
struct SafetensorsHeaderLimitsTests {
    // MARK: The length prefix

    @Test(arguments: [0, 1, 7])
    func bufferShorterThanEightBytesIsRejected(count: Int) {
        expectSafetensorsError(.bufferTooShort, mentioning: ["\(count) bytes"]) {
            _ = try parseHeader([UInt8](repeating: 0x7B, count: count))
        }
    }

    @Test func headerLengthZeroIsRejected() {
        expectSafetensorsError(.invalidHeaderLength, mentioning: ["0"]) {
            _ = try parseHeader(safetensors(declaredLength: 0, rest: Array("{}".utf8)))
        }
    }

    @Test func headerLengthPastTheBufferIsRejected() {
        expectSafetensorsError(.invalidHeaderLength, mentioning: ["100 bytes", "only 2"]) {
            _ = try parseHeader(safetensors(declaredLength: 100, rest: Array("{}".utf8)))
        }
    }

    /// Random bytes read as a length are almost always huge: past the end of the body, that is a
    /// malformed body (400 at the edge), never "too large" (413).
    @Test(arguments: [UInt64(100_000_001), UInt64(Int64.max), UInt64.max])
    func headerLengthPastTheBufferIsMalformedWhateverItsSize(length: UInt64) {
        expectSafetensorsError(.invalidHeaderLength, mentioning: ["\(length)", "only 2"]) {
            _ = try parseHeader(safetensors(declaredLength: length, rest: Array("{}".utf8)))
        }
    }

    /// Only a header that really is in the buffer and over the cap is "too large" (413 at the edge).
    @Test func headerCapIsConfigurable() {
        let bytes = safetensors(header: #"{"__metadata__": {"a": "b"}}"#)
        expectSafetensorsError(.headerTooLarge, mentioning: ["more than the limit of 16"]) {
            _ = try parseHeader(bytes, limits: .init(maxHeaderBytes: 16))
        }
    }

    @Test func invalidUTF8InTheHeaderIsRejected() {
        var bytes = safetensors(header: #"{"__metadata__": {"a": "bX"}}"#)
        bytes[bytes.firstIndex(of: UInt8(ascii: "X"))!] = 0xFF
        expectSafetensorsError(.invalidJSON, mentioning: ["UTF-8"]) { _ = try parseHeader(bytes) }
    }

    // MARK: Limits

    @Test func tooManyTensorsIsRejected() {
        let header =
            #"{"a": \#(SafetensorsHeaderValidationTests.entry("F32", "[0]", "[0, 0]")), "b": \#(SafetensorsHeaderValidationTests.entry("F32", "[0]", "[0, 0]"))}"#
        expectSafetensorsError(.limitExceeded, tensor: "b", mentioning: ["more than 1 tensors"]) {
            _ = try parseHeader(safetensors(header: header), limits: .init(maxTensorCount: 1))
        }
    }

    @Test func overlongNameIsRejected() {
        let name = String(repeating: "n", count: 1025)
        let header = #"{"\#(name)": \#(SafetensorsHeaderValidationTests.entry("F32", "[0]", "[0, 0]"))}"#
        expectSafetensorsError(.limitExceeded, tensor: name, mentioning: ["1025 bytes", "1024"]) {
            _ = try parseHeader(safetensors(header: header))
        }
    }

    @Test func excessiveRankIsRejected() {
        let shape = "[" + Array(repeating: "1", count: 65).joined(separator: ",") + "]"
        let header = #"{"w": \#(SafetensorsHeaderValidationTests.entry("F32", shape, "[0, 4]"))}"#
        expectSafetensorsError(.limitExceeded, tensor: "w", mentioning: ["65 dimensions"]) {
            _ = try parseHeader(safetensors(header: header, data: [0, 0, 0, 0]))
        }
    }
}
