import OptimizerWire

/// Fuzz target `json`: JSON text through the two parsers the daemon feeds it to.
///
/// 1. OptimizerWire's strict parser, which reads safetensors headers: the text is wrapped into a
///    header (as the value of a member, and as the whole header when it is an object), so any JSON
///    value reaches the parser through the public API.
/// 2. The session-creation path: the strict check of JSON bodies (``JSONBody``), Foundation's
///    `JSONDecoder` and `SessionConfiguration`'s validation of optimizers, hyperparameters and groups.
public enum JSONFuzz {
    /// Runs one input. Errors are recorded in the report; broken invariants stop the process.
    @discardableResult
    public static func fuzzOne(_ data: UnsafeRawBufferPointer) -> FuzzReport {
        var report = FuzzReport()
        let text = Array(data)
        for (name, header) in [("member", Array(#"{"t":"#.utf8) + text + [UInt8(ascii: "}")]), ("header", text)] {
            let body = FuzzBytes(withLengthPrefix: header)
            defer { body.release() }
            report.run("strict \(name)", expecting: SafetensorsFuzz.isSafetensorsError) {
                try SafetensorsHeader(parsing: body.buffer)
            }
        }
        let body = FuzzBytes(data)
        defer { body.release() }
        report.run("configure", expecting: RequestFuzz.isRequestError) { try SessionRequest.configuration(from: body.buffer) }
        return report
    }
}

extension FuzzBytes {
    /// A safetensors buffer with `header` as its JSON header and no data.
    init(withLengthPrefix header: [UInt8]) {
        let bytes = withUnsafeBytes(of: UInt64(header.count).littleEndian, Array.init) + header
        self = bytes.withUnsafeBytes { FuzzBytes($0) }
    }
}
