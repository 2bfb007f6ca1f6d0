import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Hands memory the daemon has freed back to the operating system every `interval` (glibc's
/// `malloc_trim`, and the body buffers ``BufferPool`` kept that no request took for
/// ``idleRounds`` trims), for the daemon's lifetime.
///
/// glibc keeps freed memory in its arenas for reuse, one arena per thread that allocated. After a
/// burst of allocations (a 16 MiB safetensors header parsed on each compute thread, many gzip
/// bombs), the daemon's resident memory would stay hundreds of MiB above what it uses, which looks
/// exactly like a leak to whoever watches it. Measured: three pairs of 150 000-tensor headers left
/// 266 MiB resident, 50 MiB after one trim. A trim walks the arenas' free lists: well under a
/// millisecond when there is little to return. Where `malloc_trim` does not exist it does nothing.
struct MemoryTrimService: Service {
    /// Time between trims.
    let interval: Duration
    /// What a trim does (tests count calls).
    let trim: @Sendable () -> Void

    init(interval: Duration = .seconds(5), trim: @escaping @Sendable () -> Void = MemoryTrimService.releaseFreedMemory) {
        self.interval = interval
        self.trim = trim
    }

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await Task.sleep(for: interval)
                trim()
            }
        }
    }

    /// Trims a pooled buffer must stay idle through before it is freed: 6, so 30–35 s with the
    /// default interval, longer than the pause between two steps of a large model.
    static let idleRounds = 6

    /// Returns long-idle pooled body buffers and the allocator's free pages to the system.
    @Sendable static func releaseFreedMemory() {
        BufferPool.shared.releaseIdle(afterRounds: idleRounds)
        _ = mallocTrim?(0)
    }

    /// glibc's `malloc_trim`, looked up at run time: Swift's Glibc module does not import
    /// `<malloc.h>`, and other C libraries (musl) do not have it.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(dlopen(nil, RTLD_NOW), "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()
}
