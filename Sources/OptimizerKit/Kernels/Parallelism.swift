import Dispatch

/// How many threads a step may use for one large tensor.
///
/// The split never changes results: work is cut into chunks of a fixed size that does not depend on
/// the thread count, and per-chunk partial sums are combined in chunk order, so a step gives
/// bit-identical results on 1 or 16 threads (which replay after a crash relies on).
public struct Parallelism: Sendable, Hashable {
    /// The largest number of threads to use; 1 runs everything on the calling thread.
    public var threads: Int

    /// Creates a parallelism budget of `threads` (at least 1).
    public init(threads: Int) { self.threads = max(1, threads) }

    /// Everything on the calling thread.
    public static let serial = Parallelism(threads: 1)
}

/// Fixed-size chunking for element-wise kernels and reductions.
enum Chunking {
    /// Elements per chunk: 64 Ki floats (256 KiB), large enough to amortise scheduling, small enough
    /// to balance two to sixteen threads on tensors of a few million elements.
    static let grain = 1 << 16

    /// Runs `body` over consecutive ranges covering `0..<count` and returns the sum of its results,
    /// added in range order (deterministic for any thread count).
    static func sum(count: Int, parallelism: Parallelism, _ body: (Range<Int>) -> Double) -> Double {
        let chunks = (count + grain - 1) / grain
        if chunks <= 1 || parallelism.threads <= 1 {
            var total = 0.0
            var start = 0
            while start < count {
                let end = min(start + grain, count)
                total += body(start..<end)
                start = end
            }
            return total
        }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: chunks) { partials in
            let workers = min(parallelism.threads, chunks)
            withoutActuallyEscaping(body) { body in
                // Both captures are used only until concurrentPerform returns, and every worker writes
                // a disjoint set of `partials` entries.
                let shared = UncheckedSendable((body, partials))
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let (body, partials) = shared.value
                    var chunk = worker * chunks / workers
                    let last = (worker + 1) * chunks / workers
                    while chunk < last {
                        let start = chunk * grain
                        partials[chunk] = body(start..<min(start + grain, count))
                        chunk += 1
                    }
                }
            }
            var total = 0.0
            for index in 0..<chunks { total += partials[index] }
            return total
        }
    }

    /// Runs `body` over consecutive ranges covering `0..<count`, in parallel when large.
    static func forEach(count: Int, parallelism: Parallelism, _ body: (Range<Int>) -> Void) {
        _ = sum(count: count, parallelism: parallelism) { range in
            body(range)
            return 0
        }
    }
}
