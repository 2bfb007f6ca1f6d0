import Foundation
import OptimizerKit

/// `--lowbit`: Adam's session step with float32, bfloat16 and 8-bit state on the same tensors, in
/// the same run, taking turns (each round times every row once), next to the measured copy
/// bandwidth and the C fused Adam loop (DESIGN §10, issue 15).
///
/// Per parameter a step moves, at least: θ read and written (8 bytes), g read (4), and the moments
/// read and written — 16 bytes in float32 (28 in all), 8 in bfloat16 (20), 2 codes plus the block
/// scales twice in 8-bit (16.06). "x copy bound" is the step time over the time those bytes take at
/// the copy bandwidth measured in the same rounds (`memcpy` of 16 bytes per parameter, 32 moved; 1 =
/// at the memory limit), "x C-loop bound" the same at the C Adam loop's bandwidth (28 bytes per
/// parameter; on machines where that loop moves bytes faster than `memcpy`, the stricter bound).
struct LowBitSuite {
    var sizes: [Int]
    var threadCounts: [Int]
    var repeats: Int
    var clock: BenchmarkClock
    /// Whether steps are given their gradients' sums of squares (``StepInput/knownSumsOfSquares``).
    var sumsOnArrival = false
    var log: (String) -> Void

    /// One row: a state dtype at a size and thread count.
    struct Row: Codable {
        var parameters: Int
        var threads: Int
        var stateDType: String
        var stepBest: Double
        var stepMedian: Double
        /// Optimizer state bytes per parameter, as the session holds them after the steps.
        var stateBytesPerParameter: Double
        var boundBytes: Double
        /// Bytes moved per second by `memcpy` in the same rounds (read + written).
        var copyBytesPerSecond: Double
        /// The C fused Adam loop's best time for the same size and threads, in the same rounds.
        var cLoopBest: Double
        /// Step time over the bound bytes at the copy bandwidth.
        var boundFactor: Double { stepBest / (Double(parameters) * boundBytes / copyBytesPerSecond) }
        /// Step time over the bound bytes at the C Adam loop's bandwidth (28 bytes per parameter).
        var cLoopBoundFactor: Double { stepBest / (cLoopBest * boundBytes / 28) }
    }

    static let header = "parameters  thr  state  M param/s  state B/param  x copy bound  x C-loop bound  vs f32 step"

    func run() throws -> [Row] {
        var rows: [Row] = []
        for count in sizes {
            var baseline = BaselineAdam(count: count)
            let copy = CopyBaseline(count: count)
            let steppers = try StateDType.allCases.map { try Stepper(dtype: $0, count: count, sumsOnArrival: sumsOnArrival) }
            for threads in threadCounts {
                let parallelism = Parallelism(threads: threads)
                var bodies: [() throws -> Void] = [{ copy.run(threads: threads) }, { baseline.run(threads: threads) }]
                bodies += steppers.map { stepper in { try stepper.step(parallelism) } }
                let timings = try Timings.interleaved(rounds: repeats, clock: clock, bodies)
                let copyBandwidth = Double(copy.bytesMoved) / timings[0].best
                let f32 = timings[2].best
                for (stepper, timing) in zip(steppers, timings[2...]) {
                    let dtype = stepper.dtype
                    let row = Row(
                        parameters: count, threads: threads, stateDType: dtype.rawValue, stepBest: timing.best,
                        stepMedian: timing.median, stateBytesPerParameter: Double(stepper.session.stateBytes) / Double(count),
                        boundBytes: 12 + 2 * Double(dtype.momentBytes(count: count)) / Double(count),
                        copyBytesPerSecond: copyBandwidth, cLoopBest: timings[1].best
                    )
                    rows.append(row)
                    log(
                        String(
                            format: "%10d %4d  %-5@ %10.1f %14.2f %13.2f %15.2f %11.2fx", count, threads, dtype.rawValue,
                            Double(count) / row.stepBest / 1e6, row.stateBytesPerParameter, row.boundFactor, row.cLoopBoundFactor,
                            f32 / row.stepBest
                        )
                    )
                }
                log(
                    String(
                        format: "%10d %4d  copy %.1f GB/s, C Adam loop %.1f M param/s", count, threads, copyBandwidth / 1e9,
                        Double(count) / timings[1].best / 1e6
                    )
                )
            }
        }
        return rows
    }

    /// An Adam session of one tensor with a state dtype, and the gradient it steps with.
    private struct Stepper {
        let dtype: StateDType
        let session: OptimizerSession
        let input: StepInput
        let values: FloatBuffer
        let gradient: FloatBuffer

        init(dtype: StateDType, count: Int, sumsOnArrival: Bool) throws {
            self.dtype = dtype
            session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam", stateDType: dtype))
            values = FloatBuffer(count: count, seed: 1)
            try session.setParameters([TensorView(name: "w", shape: TensorShape([count]), values: values.buffer)])
            gradient = FloatBuffer(count: count, seed: 2)
            for i in 0..<count { gradient.pointer[i] *= 1e-2 }
            let gradients = [TensorView(name: "w", shape: TensorShape([count]), values: gradient.buffer)]
            input = StepInput(gradients: gradients, knownSumsOfSquares: sumsOnArrival ? StepInput.sumsOfSquares(of: gradients) : [:])
        }

        func step(_ parallelism: Parallelism) throws { _ = try session.step(input, parallelism: parallelism) }
    }
}

extension LowBitSuite {
    /// Runs the suite, printing rows as they come, and writes them as JSON if `json` is given.
    static func main(sizes: [Int], threadCounts: [Int], repeats: Int, clock: BenchmarkClock, sumsOnArrival: Bool, json: String?) throws {
        print(
            "optimizerd-bench --lowbit: Adam steps with f32, bf16 and int8 state taking turns with a copy and the C Adam loop, best of \(repeats) rounds, \(clock) clock\(sumsOnArrival ? ", sums of squares given (as on arrival)" : ""); bound = 28/20/16.06 B per parameter at the copy bandwidth"
        )
        print(header)
        let suite = LowBitSuite(
            sizes: sizes, threadCounts: threadCounts, repeats: repeats, clock: clock, sumsOnArrival: sumsOnArrival
        ) { line in
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let rows = try suite.run()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
    }
}
