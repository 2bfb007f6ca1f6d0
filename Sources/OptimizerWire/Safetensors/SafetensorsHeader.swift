/// The validated header of a safetensors buffer: its tensors, where their bytes are, and its
/// metadata.
///
/// A safetensors buffer is a u64 little-endian header length `n`, `n` bytes of JSON, then the
/// tensors' raw little-endian bytes:
///
/// ```
/// {"__metadata__": {"step": "3"}, "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}
/// ```
///
/// Parsing validates everything a reader relies on, so tensor data can afterwards be read without
/// further checks: the JSON is strict (no duplicate keys), every entry has exactly `dtype`, `shape`
/// and `data_offsets`, the byte size agrees with shape × dtype, and the tensors tile the data
/// section exactly (no overlap, no gap, no trailing bytes). Nothing is allocated in proportion to a
/// size the header claims before that size is checked against the real buffer.
///
/// The header does not keep the buffer: read tensor data with ``withFloats(_:in:_:)``,
/// ``floats(_:in:)``, ``decodeFloats(_:in:into:)`` or ``integers(_:in:)``, passing the same bytes.
/// Use ``SafetensorsFile`` to keep bytes and header together.
///
/// ```swift
/// let header = try bytes.withUnsafeBytes { try SafetensorsHeader(parsing: $0) }
/// for entry in header.tensors {
///     try bytes.withUnsafeBytes { buffer in
///         try header.withFloats(entry, in: buffer) { floats in print(entry.name, floats.count) }
///     }
/// }
/// ```
public struct SafetensorsHeader: Sendable {
    /// Bounds on what a header may declare, checked while parsing.
    public struct Limits: Sendable, Hashable {
        /// The largest JSON header accepted, in bytes (the reference implementation's cap is 100 MB).
        public var maxHeaderBytes: Int
        /// The most tensors one header may list.
        public var maxTensorCount: Int
        /// The longest tensor name accepted, in UTF-8 bytes.
        public var maxNameBytes: Int
        /// The most dimensions a shape may have.
        public var maxRank: Int
        /// The deepest JSON nesting accepted (a valid header needs 3).
        public var maxNestingDepth: Int

        /// Creates limits; every parameter has the default used by ``SafetensorsHeader/init(parsing:limits:)``.
        public init(
            maxHeaderBytes: Int = 100_000_000,
            maxTensorCount: Int = 1 << 20,
            maxNameBytes: Int = 1024,
            maxRank: Int = 64,
            maxNestingDepth: Int = 16
        ) {
            self.maxHeaderBytes = maxHeaderBytes
            self.maxTensorCount = maxTensorCount
            self.maxNameBytes = maxNameBytes
            self.maxRank = maxRank
            self.maxNestingDepth = maxNestingDepth
        }
    }

    /// The `__metadata__` object: string keys to string values (empty when absent).
    public let metadata: [String: String]
    /// The tensors in the order the header lists them.
    public let tensors: [TensorEntry]
    /// The length of the JSON header in bytes, including any trailing space padding.
    public let headerByteCount: Int
    /// The size of the whole buffer the header was parsed from, in bytes.
    public let bufferByteCount: Int
    private let indexByName: [String: Int]

    /// Where the data section is in the buffer: after the 8-byte length and the JSON header.
    public var dataRange: Range<Int> { (8 + headerByteCount)..<bufferByteCount }

    /// Parses and validates the header of a whole safetensors buffer.
    ///
    /// The header may be padded with trailing whitespace (Python's writer pads it with spaces to a
    /// multiple of 8 bytes) but must begin with `{`.
    ///
    /// - Parameters:
    ///   - buffer: The entire safetensors body: length prefix, header and data. Only read during
    ///     the call.
    ///   - limits: Bounds on sizes and counts the header may declare.
    /// - Throws: ``SafetensorsError`` saying what is wrong and naming the tensor or key.
    public init(parsing buffer: UnsafeRawBufferPointer, limits: Limits = Limits()) throws {
        guard buffer.count >= 8 else {
            throw SafetensorsError(
                .bufferTooShort,
                "the buffer is \(buffer.count) bytes; a safetensors buffer starts with an 8-byte header length"
            )
        }
        let declared = UInt64(littleEndian: buffer.loadUnaligned(as: UInt64.self))
        guard declared > 0 else {
            throw SafetensorsError(.invalidHeaderLength, "the header length is 0; the header must be a JSON object")
        }
        // A length past the end of the buffer is malformed whatever its size (random bytes read as
        // a length are almost always huge); only a header that is really there can be too large.
        guard declared <= UInt64(buffer.count - 8) else {
            throw SafetensorsError(
                .invalidHeaderLength,
                "the header length is \(declared) bytes but only \(buffer.count - 8) bytes follow the length prefix"
            )
        }
        guard declared <= UInt64(clamping: limits.maxHeaderBytes) else {
            throw SafetensorsError(
                .headerTooLarge,
                "the header length is \(declared) bytes, more than the limit of \(limits.maxHeaderBytes)"
            )
        }
        let headerLength = Int(declared)
        let json = try Self.parseJSON(UnsafeRawBufferPointer(rebasing: buffer[8..<(8 + headerLength)]), limits: limits)
        let dataStart = 8 + headerLength

        var metadata: [String: String] = [:]
        var tensors: [TensorEntry] = []
        var indexByName: [String: Int] = Dictionary(minimumCapacity: json.count)
        tensors.reserveCapacity(json.count)
        for member in json {
            if member.key == "__metadata__" {
                metadata = try Self.parseMetadata(member.value)
                continue
            }
            guard tensors.count < limits.maxTensorCount else {
                throw SafetensorsError(
                    .limitExceeded,
                    tensor: member.key,
                    "the header lists more than \(limits.maxTensorCount) tensors"
                )
            }
            let entry = try Self.parseEntry(
                name: member.key,
                value: member.value,
                data: dataStart..<buffer.count,
                limits: limits
            )
            indexByName[entry.name] = tensors.count
            tensors.append(entry)
        }
        try Self.checkTiling(tensors, data: dataStart..<buffer.count)

        self.metadata = metadata
        self.tensors = tensors
        self.headerByteCount = headerLength
        self.bufferByteCount = buffer.count
        self.indexByName = indexByName
    }

    /// Returns the tensor with the given name, or `nil` when the header has none.
    ///
    /// Names are compared as Swift strings (up to Unicode canonical equivalence).
    public func entry(named name: String) -> TensorEntry? {
        indexByName[name].map { tensors[$0] }
    }

    // MARK: JSON

    private static func parseJSON(_ header: UnsafeRawBufferPointer, limits: Limits) throws -> [JSONMember] {
        guard header[0] == UInt8(ascii: "{") else {
            throw SafetensorsError(
                .headerNotObject,
                "the header must be a JSON object beginning with '{', but its first byte is 0x"
                    + String(header[0], radix: 16, uppercase: true)
            )
        }
        let value: JSONValue
        do {
            value = try StrictJSONParser.parse(header, maxDepth: limits.maxNestingDepth)
        } catch {
            switch error.kind {
            case .duplicateKey:
                let tensor = error.duplicate.map { $0.context ?? $0.key }.flatMap { $0 == "__metadata__" ? nil : $0 }
                throw SafetensorsError(.duplicateKey, tensor: tensor, "the header has a \(error.message)")
            case .syntax, .tooDeep:
                throw SafetensorsError(
                    .invalidJSON,
                    "the header is not valid JSON: \(error.message) (at header byte \(error.offset))"
                )
            }
        }
        guard case .object(let members) = value else {
            throw SafetensorsError(.headerNotObject, "the header is \(value.kindDescription), not a JSON object")
        }
        return members
    }
}
