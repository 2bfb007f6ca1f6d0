import ArgumentParser
import Foundation
import OptimizerKit

/// What a timing measures.
enum BenchmarkClock: String, ExpressibleByArgument {
    /// Elapsed (monotonic) time.
    case wall
    /// This process's CPU time: on a machine shared with other work, the time the benchmark ran
    /// rather than waited for a core. Meaningful with one thread only (threads' times add up).
    case cpu

    /// Now in seconds on this clock.
    func now() -> Double {
        var time = timespec()
        clock_gettime(self == .wall ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}

/// Times of repeated runs of one piece of work, in seconds.
struct Timings {
    var samples: [Double]

    var best: Double { samples.min() ?? .nan }
    var median: Double {
        let sorted = samples.sorted()
        return sorted.isEmpty ? .nan : sorted[sorted.count / 2]
    }

    /// Runs `body` `warmup` times untimed (state allocation, page faults), then `repeats` times timed
    /// on `clock`.
    static func measure(repeats: Int, warmup: Int = 1, clock: BenchmarkClock = .wall, _ body: () throws -> Void) rethrows -> Timings {
        for _ in 0..<warmup { try body() }
        var samples: [Double] = []
        for _ in 0..<repeats {
            let start = clock.now()
            try body()
            samples.append(clock.now() - start)
        }
        return Timings(samples: samples)
    }

    /// Runs every body once untimed, then `rounds` rounds that time each body once in turn, so that
    /// a busy minute of a shared machine falls on every body alike; one ``Timings`` per body.
    static func interleaved(rounds: Int, clock: BenchmarkClock, _ bodies: [() throws -> Void]) throws -> [Timings] {
        for body in bodies { try body() }
        var samples = [[Double]](repeating: [], count: bodies.count)
        for _ in 0..<rounds {
            for (index, body) in bodies.enumerated() {
                let start = clock.now()
                try body()
                samples[index].append(clock.now() - start)
            }
        }
        return samples.map(Timings.init(samples:))
    }
}

/// A page-aligned float buffer filled with reproducible values in [-1, 1).
final class FloatBuffer {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int, seed: UInt64) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 4096)
            .bindMemory(to: Float.self, capacity: max(1, count))
        var state = seed | 1
        for i in 0..<count {
            // xorshift64*: fast enough to fill 32M floats in a blink, and the same on every run.
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            let bits = (state &* 2_685_821_657_736_338_717) >> 40
            pointer[i] = Float(bits) / Float(1 << 23) - 1
        }
    }

    init(zeros count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: 4096)
            .bindMemory(to: Float.self, capacity: max(1, count))
        pointer.initialize(repeating: 0, count: count)
    }

    var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }

    deinit { pointer.deallocate() }
}

extension StepInput {
    /// Each gradient's sum of squares by name, as the daemon gives a step it summed on arrival.
    static func sumsOfSquares(of gradients: [TensorView]) -> [String: Double] {
        Dictionary(gradients.map { ($0.name, Reduction.sumOfSquares($0.values)) }, uniquingKeysWith: { first, _ in first })
    }
}
