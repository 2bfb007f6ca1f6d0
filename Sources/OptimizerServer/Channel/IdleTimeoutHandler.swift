import NIOCore
import NIOHTTPTypes

/// Closes a connection that stayed idle for the idle timeout (`--idle-timeout`); it replaces
/// Hummingbird's own idle timeout, which cuts answers that are still being downloaded.
///
/// Hummingbird 2.28 (`HTTPConnectionStateHandler`) starts the idle period when the response's end is
/// handed to the channel. A large answer (16 MB of parameters, a checkpoint) then mostly still waits
/// in the channel's outbound buffer, and a client reading it steadily but slowly was disconnected one
/// idle timeout later, with most of the body never sent.
///
/// Here a connection is idle while nothing moves: no part of a request arrives and no byte of a
/// response leaves for the socket. It is closed once it has been idle for a whole timeout, except
/// while a request has been read and its answer is being computed (nothing of it waits to be sent):
/// that is never cut. So the timeout closes
/// - an unfinished request head (its bytes make no request part) and a stalled upload;
/// - a keep-alive connection idle after its last answer went out;
/// - a stalled download: a client that stops reading, so that the answer's bytes wait in the outbound
///   buffer and none leaves. A client reading slowly but steadily keeps its connection, however long
///   the answer takes.
///
/// Bytes leaving are seen two ways. ``OutboundByteCounter``, which this handler puts first in the
/// pipeline, counts the bytes handed to the socket; less the channel's
/// ``ChannelOptions/bufferedWritableBytes``, that is what the channel has written. But the kernel's
/// send buffer (up to 4 MB) takes those writes only in steps of about a third of it, so on Linux the
/// bytes the client has acknowledged (`TCP_INFO`) count too: they grow as the client reads. The
/// channel's writes are looked at after every flush, and both while bytes wait every quarter of the
/// timeout; so a stalled download is closed 1 to 1.25 timeouts after the client last took a byte.
///
/// Installed after HTTP decoding through `HTTP1Channel.Configuration(additionalChannelHandlers:)`,
/// with Hummingbird's own `idleTimeout` left nil (its handler still ends connections on shutdown).
final class IdleTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private let counter = OutboundByteCounter()
    /// When a request part last arrived, bytes last left, or an answer started.
    private var lastActivity = NIODeadline.now()
    /// Bytes that had left, and that the client had acknowledged, when last looked at.
    private var lastWritten: Int64 = 0
    private var lastAcknowledged: UInt64 = 0
    /// When the acknowledged bytes were last looked at.
    private var lastSample = NIODeadline.uptimeNanoseconds(0)
    /// Requests whose head arrived and whose response has not ended yet.
    private var requestsInProgress = 0
    private var isRequestBeingRead = false
    private var started = false
    private var check: (task: Scheduled<Void>, deadline: NIODeadline)?

    init(timeout: TimeAmount) {
        self.timeout = .nanoseconds(max(1, timeout.nanoseconds))
    }

    /// How often leaving bytes are looked at while some wait in the outbound buffer.
    private var sampleInterval: TimeAmount { .nanoseconds(max(1, timeout.nanoseconds / 4)) }

    func handlerAdded(context: ChannelHandlerContext) {
        do {
            try context.pipeline.syncOperations.addHandler(counter, position: .first)
        } catch {
            context.fireErrorCaught(error)
        }
        if context.channel.isActive { start(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        cancelCheck()
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        cancelCheck()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestsInProgress += 1
            isRequestBeingRead = true
        case .body:
            break
        case .end:
            isRequestBeingRead = false
        }
        lastActivity = .now()
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head:
            // The answer is ready (after however long it was computed): its delivery starts now.
            lastActivity = .now()
        case .body:
            break
        case .end:
            requestsInProgress = max(0, requestsInProgress - 1)
        }
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        // A flush sends what the socket takes at once; what it does not take waits and is looked
        // at again soon.
        let now = NIODeadline.now()
        noteProgress(context, now: now)
        if counter.bufferedBytes(in: context.channel) > 0 { schedule(context, at: now + sampleInterval) }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let now = NIODeadline.now()
        lastActivity = now
        lastWritten = counter.writtenBytes(in: context.channel)
        schedule(context, at: now + timeout)
    }

    /// Closes the connection if it has been idle for the timeout, else looks again later.
    private func runCheck(_ context: ChannelHandlerContext) {
        check = nil
        guard context.channel.isActive else { return }
        let now = NIODeadline.now()
        noteProgress(context, now: now)
        noteAcknowledged(context, now: now) { [self] in decide(context, now: now) }
    }

    private func decide(_ context: ChannelHandlerContext, now: NIODeadline) {
        guard context.channel.isActive, check == nil else { return }
        let isSending = counter.bufferedBytes(in: context.channel) > 0
        if !isSending, requestsInProgress > 0, !isRequestBeingRead {
            // An answer being computed is never cut.
            schedule(context, at: now + timeout)
            return
        }
        if now - lastActivity >= timeout {
            context.close(promise: nil)
            return
        }
        schedule(context, at: isSending ? min(lastActivity + timeout, now + sampleInterval) : lastActivity + timeout)
    }

    /// Counts bytes that left since last looked at as activity.
    private func noteProgress(_ context: ChannelHandlerContext, now: NIODeadline) {
        let written = counter.writtenBytes(in: context.channel)
        if written != lastWritten {
            lastWritten = written
            lastActivity = now
        }
    }

    /// Counts bytes the client acknowledged since last looked at as activity, then runs `then`. They
    /// were acknowledged some time since the last look, so they count from then: the acknowledgment
    /// of a keep-alive connection's last answer must not restart its idle period at the check that
    /// would close it (which kept idle connections for up to twice the timeout).
    private func noteAcknowledged(_ context: ChannelHandlerContext, now: NIODeadline, then: @escaping () -> Void) {
        #if os(Linux)
        if let socket = context.channel as? any SocketOptionProvider {
            let previous = lastSample
            lastSample = now
            let info: EventLoopFuture<KernelTCPInfo> = socket.unsafeGetSocketOption(level: .tcp, name: .tcp_info)
            info.assumeIsolated().whenComplete { [self] result in
                if case .success(let info) = result, info.bytesAcknowledged != lastAcknowledged {
                    lastAcknowledged = info.bytesAcknowledged
                    lastActivity = max(lastActivity, previous)
                }
                then()
            }
            return
        }
        #endif
        then()
    }

    /// Runs the check at `deadline`, or earlier if one is due earlier.
    private func schedule(_ context: ChannelHandlerContext, at deadline: NIODeadline) {
        if let check, check.deadline <= deadline { return }
        check?.task.cancel()
        let task = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in runCheck(context) }
        check = (task, deadline)
    }

    private func cancelCheck() {
        check?.task.cancel()
        check = nil
    }
}

/// Counts the bytes handed to the socket. First in the pipeline (before TLS, if any), so with the
/// channel's buffered bytes it tells how many bytes have actually left.
final class OutboundByteCounter: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var handedOn: Int64 = 0

    init() {}

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        handedOn += Int64(unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }

    /// Bytes waiting in the channel's outbound buffer; 0 once it is closed.
    func bufferedBytes(in channel: any Channel) -> Int64 {
        Int64((try? channel.syncOptions?.getOption(.bufferedWritableBytes)) ?? 0)
    }

    /// Bytes handed to the socket that are no longer waiting: written.
    func writtenBytes(in channel: any Channel) -> Int64 {
        handedOn - bufferedBytes(in: channel)
    }
}

#if os(Linux)
/// The start of Linux's `struct tcp_info` (linux/tcp.h) up to and with `tcpi_bytes_acked` (Linux 4.1;
/// 0 before), bytes 120..<128, which glibc's copy of the struct leaves out. The kernel copies as much
/// of its struct as asked for.
private struct KernelTCPInfo: Sendable {
    private var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    /// Bytes of this connection the peer has acknowledged.
    var bytesAcknowledged: UInt64 { words.15 }
}
#endif
