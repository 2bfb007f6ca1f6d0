import CChecksum

/// One entry of a session's write-ahead log: a request as it was received, framed with its length and
/// checksums.
///
/// Layout (little-endian): a 32-byte header — magic `OPWL`, format version, kind, two reserved
/// bytes, the session step the record leads to (u64), the payload length (u64), the payload's
/// CRC-32C (u32), and the CRC-32C of the preceding 28 header bytes (u32) — followed by the payload:
/// the content encoding (u16 length + UTF-8), then, in version 1, the body; in version 2, a
/// reference to the body in a file beside the log (``BodyReference``: a spooled body,
/// ``BodySpool``).
public struct LogRecord: Sendable, Equatable {
    /// What the record replays.
    public enum Kind: UInt8, Sendable {
        /// A step request (`POST /step`): the body and its content encoding.
        case step = 1
        /// A parameter upload (`PUT /parameters`).
        case parameters = 2
        /// A configuration change (`PATCH`): the JSON body.
        case configure = 3
        /// The commit of a step sent in parts: every staged gradient in float32 with the commit's
        /// scalars in `__metadata__` (one record, so a step in parts is logged whole or not at all).
        case commit = 4

        /// Whether applying the record moves the session to the next step (steps and commits do;
        /// uploads and configuration changes happen at a step).
        public var advancesStep: Bool { self == .step || self == .commit }
    }

    /// The kind of request.
    public var kind: Kind
    /// For steps: the session step after this record; otherwise the step at which it was applied.
    public var step: UInt64
    /// The request's `Content-Encoding` (`gzip`, `deflate`) or nil for identity.
    public var contentEncoding: String?
    /// The request body exactly as received.
    public var body: [UInt8]

    /// Creates a record.
    public init(kind: Kind, step: UInt64, contentEncoding: String?, body: [UInt8]) {
        self.kind = kind
        self.step = step
        self.contentEncoding = contentEncoding
        self.body = body
    }

    static let magic: [UInt8] = Array("OPWL".utf8)
    static let headerSize = 32
    /// The version of a record holding its body.
    static let version: UInt8 = 1
    /// The version of a record whose body is in a file beside the log.
    static let referenceVersion: UInt8 = 2

    /// The payload prefix: a u16 length-prefixed encoding name (the body follows it).
    static func payloadPrefix(contentEncoding: String?) -> [UInt8] {
        let encoding = Array((contentEncoding ?? "").utf8.prefix(0xFFFF))
        return [UInt8(encoding.count & 0xFF), UInt8(encoding.count >> 8)] + encoding
    }

    /// The 32-byte header for a payload of `prefix` + `body`.
    static func header(
        kind: Kind, step: UInt64, prefix: [UInt8], body: UnsafeRawBufferPointer, version: UInt8 = Self.version
    ) -> [UInt8] {
        var crc = prefix.withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, $0.count) }
        crc = optimizerd_crc32c(crc, body.baseAddress, body.count)
        var header = magic + [version, kind.rawValue, 0, 0]
        header += step.littleEndianBytes
        header += UInt64(prefix.count + body.count).littleEndianBytes
        header += crc.littleEndianBytes
        let headerCRC = header.withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, $0.count) }
        header += headerCRC.littleEndianBytes
        return header
    }

    /// Parsed header fields.
    struct Header {
        /// Whether the payload refers to the body in a file (version 2).
        var bodyInFile: Bool
        var kind: Kind
        var step: UInt64
        var payloadLength: Int
        var payloadCRC: UInt32
    }

    /// Parses and checks a header, or says why it is not one.
    static func parseHeader(_ bytes: [UInt8]) -> Result<Header, RecordProblem> {
        guard bytes.count == headerSize else { return .failure(RecordProblem("truncated record header")) }
        guard Array(bytes[0..<4]) == magic else { return .failure(RecordProblem("bad record magic")) }
        let stored = UInt32(littleEndianBytes: bytes[28..<32])
        let computed = bytes.withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, 28) }
        guard stored == computed else { return .failure(RecordProblem("record header checksum mismatch")) }
        guard bytes[4] == version || bytes[4] == referenceVersion else {
            return .failure(RecordProblem("unknown record version \(bytes[4])"))
        }
        guard let kind = Kind(rawValue: bytes[5]) else { return .failure(RecordProblem("unknown record kind \(bytes[5])")) }
        let length = UInt64(littleEndianBytes: bytes[16..<24])
        guard length <= UInt64(Int.max) else { return .failure(RecordProblem("record length out of range")) }
        return .success(
            Header(
                bodyInFile: bytes[4] == referenceVersion,
                kind: kind,
                step: UInt64(littleEndianBytes: bytes[8..<16]),
                payloadLength: Int(length),
                payloadCRC: UInt32(littleEndianBytes: bytes[24..<28])
            )
        )
    }

    /// Rebuilds a record from a checked header and its payload, or says why the payload is bad. A
    /// version 2 payload's body is read with `loadBody`.
    static func decode(
        _ header: Header, payload: [UInt8],
        loadBody: (BodyReference) -> Result<[UInt8], RecordProblem> = { _ in
            .failure(RecordProblem("a record refers to a body file"))
        }
    ) -> Result<LogRecord, RecordProblem> {
        let crc = payload.withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, $0.count) }
        guard crc == header.payloadCRC else { return .failure(RecordProblem("record payload checksum mismatch")) }
        guard payload.count >= 2 else { return .failure(RecordProblem("record payload too short")) }
        let encodingLength = Int(payload[0]) | Int(payload[1]) << 8
        guard payload.count >= 2 + encodingLength else { return .failure(RecordProblem("record payload too short")) }
        let encoding = String(decoding: payload[2..<(2 + encodingLength)], as: UTF8.self)
        var body = Array(payload[(2 + encodingLength)...])
        if header.bodyInFile {
            guard let reference = BodyReference(decoding: body) else { return .failure(RecordProblem("bad body file reference")) }
            switch loadBody(reference) {
            case .success(let loaded): body = loaded
            case .failure(let problem): return .failure(problem)
            }
        }
        return .success(
            LogRecord(kind: header.kind, step: header.step, contentEncoding: encoding.isEmpty ? nil : encoding, body: body))
    }
}

/// What a version 2 record holds instead of its body: the body's length and CRC-32C (u64, u32) and
/// the name of the file beside the log that holds it (UTF-8, the rest of the payload; a plain name).
struct BodyReference: Equatable {
    var length: Int
    var crc: UInt32
    var fileName: String

    init(length: Int, crc: UInt32, fileName: String) {
        self.length = length
        self.crc = crc
        self.fileName = fileName
    }

    init?(decoding bytes: [UInt8]) {
        guard bytes.count > 12 else { return nil }
        let length = UInt64(littleEndianBytes: bytes[0..<8])
        let name = String(decoding: bytes[12...], as: UTF8.self)
        guard length <= UInt64(Int.max), !name.contains("/"), name != ".", name != ".." else { return nil }
        self.init(length: Int(length), crc: UInt32(littleEndianBytes: bytes[8..<12]), fileName: name)
    }

    var encoded: [UInt8] { UInt64(length).littleEndianBytes + crc.littleEndianBytes + Array(fileName.utf8) }
}

extension FixedWidthInteger {
    var littleEndianBytes: [UInt8] { withUnsafeBytes(of: littleEndian) { Array($0) } }

    init(littleEndianBytes bytes: ArraySlice<UInt8>) {
        var value: Self = 0
        for (shift, byte) in bytes.enumerated() { value |= Self(byte) << (shift * 8) }
        self = value
    }
}

/// Why a log record is not valid.
struct RecordProblem: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
