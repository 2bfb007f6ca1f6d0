import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// One `GET` of a daemon's health endpoint, for container health checks (`optimizerd probe`): the
/// slim runtime image has no curl.
///
/// Plain HTTP/1.1 over a NIO socket, `Connection: close`, reading only the status line. For
/// `https` URLs the certificate is not verified: the probe sends nothing secret and only asks
/// whether the process answers, typically over loopback with a certificate issued for another name.
///
/// ```swift
/// let status = try await HealthProbe(url: "http://127.0.0.1:8080/healthz").status()
/// ```
public struct HealthProbe: Sendable {
    /// Why a probe failed.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    let host: String
    let port: Int
    let path: String
    let usesTLS: Bool
    /// The longest the whole probe (connect, request, status line) may take.
    public let timeout: Duration

    /// - Parameters:
    ///   - url: `http://HOST[:PORT]/PATH` or `https://…`.
    ///   - timeout: The longest the probe may take.
    /// - Throws: ``Failure`` for a URL that is not http(s) with a host.
    public init(url: String, timeout: Duration = .seconds(3)) throws {
        guard let parsed = URL(string: url), let scheme = parsed.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = parsed.host, !host.isEmpty
        else {
            throw Failure(description: "not an http(s) URL with a host: \(url)")
        }
        self.host = host
        self.usesTLS = scheme == "https"
        self.port = parsed.port ?? (usesTLS ? 443 : 80)
        let path = parsed.path.isEmpty ? "/" : parsed.path
        self.path = parsed.query.map { path + "?" + $0 } ?? path
        self.timeout = timeout
    }

    /// The HTTP status code the endpoint answers with.
    ///
    /// - Throws: ``Failure`` when nothing answers in time or the answer is not HTTP; NIO's errors
    ///   when the connection is refused.
    public func status() async throws -> Int {
        let group = MultiThreadedEventLoopGroup.singleton
        let loop = group.next()
        let promise = loop.makePromise(of: Int.self)
        let deadline = loop.scheduleTask(in: .nanoseconds(Int64(timeout / .nanoseconds(1)))) {
            promise.fail(Failure(description: "no answer within \(timeout)"))
        }
        let tls = try usesTLS ? NIOSSLContext(configuration: Self.tlsConfiguration) : nil
        let serverHostname = Self.isIPAddress(host) ? nil : host
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(Int64(timeout / .nanoseconds(1))))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                    }
                    try channel.pipeline.syncOperations.addHandler(StatusLineHandler(promise: promise))
                }
            }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            let request = "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUser-Agent: optimizerd-probe\r\nConnection: close\r\n\r\n"
            channel.writeAndFlush(ByteBuffer(string: request), promise: nil)
            defer { channel.close(promise: nil) }
            let status = try await promise.futureResult.get()
            deadline.cancel()
            return status
        } catch {
            deadline.cancel()
            promise.fail(error)
            throw error
        }
    }

    private static var tlsConfiguration: TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.certificateVerification = .none
        return configuration
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// Reads the status line of the response and fulfils the promise with its code.
private final class StatusLineHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<Int>
    private var received = ""

    init(promise: EventLoopPromise<Int>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        received += buffer.readString(length: buffer.readableBytes) ?? ""
        guard let end = received.range(of: "\r\n") else {
            if received.utf8.count > 8192 { fail(context, "no status line in the first 8 KiB") }
            return
        }
        // "HTTP/1.1 200 OK"
        let parts = received[..<end.lowerBound].split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), let code = Int(parts[1]) else {
            fail(context, "not an HTTP answer: \(received[..<end.lowerBound].prefix(80))")
            return
        }
        promise.succeed(code)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(HealthProbe.Failure(description: "the connection closed before an answer"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(error)
        context.close(promise: nil)
    }

    private func fail(_ context: ChannelHandlerContext, _ description: String) {
        promise.fail(HealthProbe.Failure(description: description))
        context.close(promise: nil)
    }
}
