import CBaseline
import Dispatch
import Foundation

/// The yardstick: the plain C fused Adam loop (28 bytes per parameter), on one thread or split into
/// equal contiguous ranges over `threads` threads.
struct BaselineAdam {
    let parameter: FloatBuffer
    let gradient: FloatBuffer
    let expAvg: FloatBuffer
    let expAvgSq: FloatBuffer
    var step = 0

    init(count: Int) {
        parameter = FloatBuffer(count: count, seed: 1)
        gradient = FloatBuffer(count: count, seed: 2)
        expAvg = FloatBuffer(zeros: count)
        expAvgSq = FloatBuffer(zeros: count)
    }

    mutating func run(threads: Int) {
        step += 1
        let stepSize = Float(1e-3 / (1 - pow(0.9, Double(step))))
        let sqrtBC2 = Float((1 - pow(0.999, Double(step))).squareRoot())
        let count = parameter.count
        let buffers = (parameter, gradient, expAvg, expAvgSq)
        let work = { @Sendable (range: Range<Int>) in
            let (p, g, m, v) = (buffers.0.pointer, buffers.1.pointer, buffers.2.pointer, buffers.3.pointer)
            optimizerd_baseline_adam(
                p + range.lowerBound, g + range.lowerBound, m + range.lowerBound, v + range.lowerBound,
                range.count, 0.9, 0.999, stepSize, sqrtBC2, 1e-8
            )
        }
        Self.split(count: count, threads: threads, work)
    }

    /// Runs `work` over `0..<count` on one thread, or over `threads` equal contiguous ranges split
    /// at multiples of 64 elements (so no two threads share a cache line) at once.
    static func split(count: Int, threads: Int, _ work: @Sendable (Range<Int>) -> Void) {
        guard threads > 1 else { return work(0..<count) }
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            let lower = (count * worker / threads) & ~63
            let upper = worker == threads - 1 ? count : (count * (worker + 1) / threads) & ~63
            work(lower..<upper)
        }
    }
}

/// The memory-bandwidth yardstick of `--lowbit`: `memcpy` of 16 bytes per parameter (the size of
/// float32 Adam moments), split as ``BaselineAdam`` splits its loop.
struct CopyBaseline {
    let source: FloatBuffer
    let destination: FloatBuffer

    init(count: Int) {
        source = FloatBuffer(count: 4 * count, seed: 3)
        destination = FloatBuffer(zeros: 4 * count)
    }

    /// Bytes read plus bytes written by one ``run(threads:)``.
    var bytesMoved: Int { 2 * 4 * source.count }

    func run(threads: Int) {
        let buffers = (source, destination)
        BaselineAdam.split(count: source.count, threads: threads) { range in
            _ = memcpy(buffers.1.pointer + range.lowerBound, buffers.0.pointer + range.lowerBound, range.count * 4)
        }
    }
}

// The buffers are only touched by the thread that owns a disjoint range during `run`.
extension FloatBuffer: @unchecked Sendable {}
