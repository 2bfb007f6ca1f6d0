import HummingbirdCore
import OptimizerKit
import OptimizerWire

/// The fixed limits on one request, besides the configurable body limit
/// (``ServerConfiguration/maxBodyBytes``) and idle timeout (``ServerConfiguration/idleTimeout``).
///
/// Each is far above what a legitimate client sends, and low enough that a hostile request costs
/// the daemon little. Every refusal is a problem+json naming the limit (README, "Limits").
enum RequestLimits {
    /// The request head's header fields, all of them together (and any one of them): 32 KiB, which
    /// fits a browser's cookies for `localhost` next to the dashboard's own headers. Larger heads
    /// are answered 431 (``HTTPErrorHandler``).
    static let maxHeaderBytes = 32 << 10

    /// Header fields in one request head; a client sends about ten.
    static let maxHeaderFields = 100

    /// A JSON body (session configuration, PATCH), compressed or not.
    static let maxJSONBodyBytes = 1 << 20

    /// A safetensors request body's header: at most 100 000 tensors (a 7B-parameter LLM has about
    /// 300, its checkpoint with Adam's state about 1 200), names of at most 1024 bytes, and a JSON
    /// header of at most 16 MiB (100 000 entries with 100-byte names). Parsing a header takes up to
    /// ~12 times its size in memory while it lasts (measured: a 16 MiB header of 285 000 tiny
    /// entries, +184 MiB, refused for its count), so the header limit bounds that to ~200 MiB per
    /// compute thread. Records already in a write-ahead log are replayed without these limits (a
    /// request accepted once stays valid).
    static let safetensors = SafetensorsHeader.Limits(
        maxHeaderBytes: 16 << 20,
        maxTensorCount: 100_000,
        maxNameBytes: 1024
    )

    /// A session's `name`, in bytes of UTF-8: a label for listings and the dashboard. A session keeps
    /// its name for life, outside the memory budget, and every `GET /v1/sessions` (the dashboard
    /// polls it every 2 s) carries all of them, so a name is kept short; longer ones are refused
    /// (400 naming `name`) when the session is created.
    static let maxSessionNameBytes = 256

    /// One name pattern of a parameter group (`groups[i].parameters[j]`), in bytes of UTF-8: as long
    /// as a tensor name may be (``safetensors``), which is all a pattern needs to match any name.
    /// Patterns are kept for the session's life like its name; longer ones are refused (400 naming
    /// the pattern) at creation and in a PATCH, and a checkpoint that carries one is refused (422).
    static let maxPatternBytes = safetensors.maxNameBytes

    /// The first pattern of `groups` longer than ``maxPatternBytes``: where it is
    /// (`groups[1].parameters[0]`) and how many bytes it has.
    static func oversizedPattern(in groups: [ParameterGroup]) -> (field: String, bytes: Int)? {
        for (index, group) in groups.enumerated() {
            if let position = group.parameters.firstIndex(where: { $0.utf8.count > maxPatternBytes }) {
                return ("groups[\(index)].parameters[\(position)]", group.parameters[position].utf8.count)
            }
        }
        return nil
    }

    /// NIO's HTTP/1 parser configured with these limits.
    static var httpDecoder: HTTP1Channel.Configuration.DecoderConfiguration {
        .init(maxHeaderFieldSize: maxHeaderBytes, maxHeaderListSize: maxHeaderBytes, maxHeaderFieldCount: maxHeaderFields)
    }
}
