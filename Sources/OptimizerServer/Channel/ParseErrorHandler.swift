import Foundation
import HTTPTypes
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// Answers a request that NIO's HTTP/1 parser refused with a problem+json, then closes the connection.
///
/// Hummingbird answers parse errors with a bare `400` and no body. This handler answers first:
/// `431 Request Header Fields Too Large` when the head passes ``RequestLimits/maxHeaderBytes`` or
/// ``RequestLimits/maxHeaderFields``, `400` for anything else that is not HTTP/1.1 (a bad request
/// line, a bad header, a broken chunked body), each naming the problem. It answers only between
/// requests: if a request is being answered, the error goes on to Hummingbird, which ends that
/// response first (an answer of ours would be interleaved with it).
///
/// Installed after HTTP decoding through `HTTP1Channel.Configuration(additionalChannelHandlers:)`.
final class ParseErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    /// Requests whose head arrived and whose response has not ended yet.
    private var requestsInProgress = 0
    private var answered = false

    init() {}

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { requestsInProgress += 1 }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { requestsInProgress = max(0, requestsInProgress - 1) }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError, requestsInProgress == 0, !answered else {
            context.fireErrorCaught(error)
            return
        }
        answered = true
        let problem = Self.problem(for: parseError)
        var head = HTTPResponse(status: problem.status)
        head.headerFields[.contentType] = "application/problem+json"
        head.headerFields[.contentLength] = String(problem.body.count)
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(bytes: problem.body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// The answer to a parse error.
    static func problem(for error: HTTPParserError) -> ProblemError {
        if case .headerOverflow = error {
            return ProblemError(
                .init(code: 431, reasonPhrase: "Request Header Fields Too Large"), kind: "request-header-too-large",
                detail: "the request head exceeds the limit of \(RequestLimits.maxHeaderBytes) bytes of header fields "
                    + "or \(RequestLimits.maxHeaderFields) fields"
            )
        }
        return ProblemError(.badRequest, kind: "invalid-http", detail: "the request is not valid HTTP/1.1 (\(error))")
    }
}
