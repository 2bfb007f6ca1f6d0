import Testing

@testable import OptimizerWire

/// Valid inputs that a strict reader must still accept.
struct SafetensorsHeaderTests {
    @Test func emptyHeaderWithNoDataIsValid() throws {
        let header = try parseHeader(safetensors(header: "{}"))
        #expect(header.tensors.isEmpty && header.metadata.isEmpty)
        #expect(header.dataRange == 10..<10)
    }

    @Test(arguments: ["    ", "\n", " \t\r\n "])
    func headerPaddedWithWhitespaceIsAccepted(padding: String) throws {
        let json = #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"# + padding
        let header = try parseHeader(safetensors(header: json, data: littleEndianBytes([7])))
        #expect(header.headerByteCount == json.utf8.count)
        #expect(header.entry(named: "w")?.byteRange == (8 + json.utf8.count)..<(12 + json.utf8.count))
    }

    @Test func tensorsListedOutOfOffsetOrderAreAccepted() throws {
        let json = #"""
            {"b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]},
             "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
            """#
        let bytes = safetensors(header: json, data: littleEndianBytes([1, 2]))
        let header = try parseHeader(bytes)
        #expect(header.tensors.map(\.name) == ["b", "a"])  // header order is kept
        try bytes.withUnsafeBytes { (buffer) throws in
            #expect(try header.floats(header.entry(named: "a")!, in: buffer) == [1])
            #expect(try header.floats(header.entry(named: "b")!, in: buffer) == [2])
        }
    }

    @Test func zeroSizedAndScalarTensorsAreAccepted() throws {
        let json = #"""
            {"empty": {"dtype": "F32", "shape": [0, 5], "data_offsets": [0, 0]},
             "scalar": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
             "tail": {"dtype": "F16", "shape": [0], "data_offsets": [4, 4]}}
            """#
        let bytes = safetensors(header: json, data: littleEndianBytes([3.5]))
        let header = try parseHeader(bytes)
        #expect(header.entry(named: "empty")?.elementCount == 0)
        #expect(header.entry(named: "scalar")?.elementCount == 1)
        #expect(header.entry(named: "scalar")?.rank == 0)
        try bytes.withUnsafeBytes { buffer in
            #expect(try header.floats(header.entry(named: "empty")!, in: buffer) == [])
            #expect(try header.floats(header.entry(named: "scalar")!, in: buffer) == [3.5])
            try header.withFloats(header.entry(named: "tail")!, in: buffer) { #expect($0.isEmpty) }
        }
    }

    @Test func zeroDimensionSkipsOverflowOfTheOtherDimensions() throws {
        let json = #"{"z": {"dtype": "F64", "shape": [4611686018427387904, 0, 8], "data_offsets": [0, 0]}}"#
        #expect(try parseHeader(safetensors(header: json)).tensors[0].elementCount == 0)
    }

    @Test func namesWithEscapesAndUnicodeAreDecoded() throws {
        let json = #"{"la\"yer\u00e9.\ud83d\ude00/w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}"#
        let header = try parseHeader(safetensors(header: json, data: [9]))
        #expect(header.tensors[0].name == "la\"yeré.😀/w")
        #expect(header.entry(named: "la\"yeré.😀/w") != nil)
    }

    @Test func everySafetensorsDTypeIsKnown() throws {
        for dtype in DType.allCases {
            let elements = 8 / dtype.bitWidth.gcd(8)  // enough elements to fill whole bytes
            let bytes = elements * dtype.bitWidth / 8
            let json =
                #"{"t": {"dtype": "\#(dtype.rawValue)", "shape": [\#(elements)], "data_offsets": [0, \#(bytes)]}}"#
            let header = try parseHeader(safetensors(header: json, data: [UInt8](repeating: 0, count: bytes)))
            #expect(header.tensors[0].dtype == dtype)
        }
        #expect(DType.allCases.count == 22)
        #expect(DType.F8_E4M3.byteSize == 1 && DType.F4.byteSize == nil && DType.BF16.byteSize == 2)
    }

    @Test func metadataIsReadAndExcludedFromTensors() throws {
        let json = #"{"__metadata__": {"step": "12", "loss": "0.5", "empty": ""}}"#
        let header = try parseHeader(safetensors(header: json))
        #expect(header.metadata == ["step": "12", "loss": "0.5", "empty": ""])
        #expect(header.tensors.isEmpty)
        #expect(header.entry(named: "__metadata__") == nil)
    }

    @Test func lookupOfAMissingNameReturnsNil() throws {
        let header = try parseHeader(GoldenFixtureTests.f32)
        #expect(header.entry(named: "W") == nil)
        #expect(header.entry(named: "w")?.name == "w")
    }
}

extension Int {
    fileprivate func gcd(_ other: Int) -> Int {
        other == 0 ? self : other.gcd(self % other)
    }
}
