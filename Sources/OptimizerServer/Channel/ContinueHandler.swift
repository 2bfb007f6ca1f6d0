import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers `Expect: 100-continue` with `100 Continue`, which Hummingbird 2.28 never does.
///
/// curl sends `Expect: 100-continue` for bodies over 1 MiB and then waits up to a second for the
/// interim response before sending the body anyway; without this handler every large upload would
/// stall for that second. Installed after HTTP decoding through
/// `HTTP1Channel.Configuration(additionalChannelHandlers:)`, it writes the interim response as soon
/// as the request head arrives and passes every part on unchanged. The final response follows as
/// usual (RFC 9110 §10.1.1 allows a server to answer 100 and then refuse the request).
final class ContinueHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundOut = HTTPResponsePart

    init() {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), Self.expectsContinue(head) {
            context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
        }
        context.fireChannelRead(data)
    }

    /// Whether the request asks for `100 Continue`.
    static func expectsContinue(_ head: HTTPRequest) -> Bool {
        head.headerFields[values: .expect].contains { $0.lowercased() == "100-continue" }
    }
}
