import NIOCore
import NIOPosix
import ServiceLifecycle

/// The bounded pool of threads that does all CPU-heavy work: decompression, safetensors decoding,
/// the optimizer step, encoding and compression of responses.
///
/// Neither the event loops nor the cooperative pool ever run that work, so a large step on one
/// session does not stall `/healthz` or another session's requests; the pool's size bounds how much
/// CPU requests can take at once (work beyond that queues). The pool starts when it is created and
/// stops when the service's ``run()`` ends (at graceful shutdown, after the HTTP server stopped).
public final class ComputePool: Service, Sendable {
    private let pool: NIOThreadPool

    /// The number of threads.
    public let threads: Int

    /// Starts a pool of `threads` threads (at least 1).
    public init(threads: Int) {
        self.threads = max(1, threads)
        self.pool = NIOThreadPool(numberOfThreads: self.threads)
        self.pool.start()
    }

    /// Runs `body` on a pool thread and returns its result.
    ///
    /// - Throws: what `body` throws, or `NIOThreadPoolError.ThreadPoolInactive` after shutdown.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(body)
    }

    /// Waits for graceful shutdown, then stops the threads once queued work has finished.
    public func run() async throws {
        try? await gracefulShutdown()
        try await pool.shutdownGracefully()
    }
}
