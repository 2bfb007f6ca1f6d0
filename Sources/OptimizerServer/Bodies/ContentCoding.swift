import Foundation

/// An HTTP content coding the daemon understands (RFC 9110 §8.4).
enum ContentCoding: String, Sendable {
    case identity
    case gzip
    case deflate

    /// The coding of a request body from its `Content-Encoding` header.
    ///
    /// `x-gzip` is taken as gzip; `identity` or no header means uncompressed. Anything else,
    /// including stacked codings such as `gzip, deflate`, is refused.
    ///
    /// - Throws: ``ProblemError`` 415 naming the coding.
    init(contentEncoding header: String?) throws {
        let codings = (header ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        switch codings {
        case []: self = .identity
        case ["gzip"], ["x-gzip"]: self = .gzip
        case ["deflate"]: self = .deflate
        default: throw ProblemError.unsupportedEncoding(header ?? "")
        }
    }

    /// The preferred coding for a response from an `Accept-Encoding` header: gzip, then deflate,
    /// skipping codings with `q=0`; identity when neither is acceptable.
    init(acceptEncoding header: String?) {
        var accepted: Set<String> = []
        for item in (header ?? "").split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let name = parts.first, !name.isEmpty else { continue }
            let quality = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            if quality > 0 { accepted.insert(name) }
        }
        if accepted.contains("gzip") || accepted.contains("x-gzip") || accepted.contains("*") {
            self = .gzip
        } else if accepted.contains("deflate") {
            self = .deflate
        } else {
            self = .identity
        }
    }
}
