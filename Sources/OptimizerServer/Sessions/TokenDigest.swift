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
