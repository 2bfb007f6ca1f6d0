/// A bearer token as stored: its SHA-256, never the token itself.
///
/// Tokens are 256 random bits (``generate()``), so a plain hash is enough (no salt or stretching
/// is needed against guessing). Comparison is constant-time in the digest bytes.
struct TokenDigest: Sendable, Hashable {
    private let bytes: [UInt8]

    /// The digest of `token`.
    init(of token: some StringProtocol) {
        bytes = SHA256.hash(Array(token.utf8))
    }

    /// A digest stored earlier as ``hex`` (64 lower-case hex digits), or nil if `hex` is not one.
    init?(hex: String) {
        let digits = Array(hex.utf8)
        guard digits.count == 64 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for index in stride(from: 0, to: 64, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else { return nil }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    /// The digest as 64 lower-case hex digits (what durable snapshots store).
    var hex: String { bytes.map { String($0 >> 4, radix: 16) + String($0 & 0xf, radix: 16) }.joined() }

    /// Whether `token` hashes to this digest, compared in constant time.
    func matches(_ token: some StringProtocol) -> Bool {
        let other = SHA256.hash(Array(token.utf8))
        var difference: UInt8 = 0
        for index in bytes.indices { difference |= bytes[index] ^ other[index] }
        return difference == 0
    }

    /// A new random token: 32 bytes from the system's secure generator, hex-encoded, prefixed `ozt_`
    /// so that leaked tokens are easy to recognise.
    static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = (0..<32).map { _ in
            let byte = UInt8.random(in: .min ... .max, using: &generator)
            return String(byte >> 4, radix: 16) + String(byte & 0xf, radix: 16)
        }
        return "ozt_" + hex.joined()
    }
}
