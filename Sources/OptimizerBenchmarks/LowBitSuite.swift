import Foundation
import OptimizerKit

/// `--lowbit`: Adam's session step with float32, bfloat16 and 8-bit state on the same tensors, in
/// the same run, next to the C fused Adam loop's bandwidth (DESIGN §10).
///
/// Per parameter a step moves, at least: θ read and written (8 bytes), g read (4), and the moments
/// read and written — 16 bytes in float32 (28 in all), 8 in bfloat16 (20), 4 codes plus the block
/// scales in 8-bit (16.06). "x bound" is the step time over the time those bytes take at the C
/// loop's bandwidth (1 = at the memory limit).
struct LowBitSuite {
    var sizes: [Int]
    var threadCounts: [Int]
    var repeats: Int
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
        var baselineBytesPerSecond: Double
        /// Step time over the bound bytes at the C loop's bandwidth.
        var boundFactor: Double { stepBest / (Double(parameters) * boundBytes / baselineBytesPerSecond) }
    }

    static let header = "parameters  thr  state  M param/s  state B/param  x bound  vs f32 step"

    func run() throws -> [Row] {
        var rows: [Row] = []
        for count in sizes {
            var baseline = BaselineAdam(count: count)
            for threads in threadCounts {
                let baselineTime = Timings.measure(repeats: repeats) { baseline.run(threads: threads) }.best
                let bandwidth = Double(count * 28) / baselineTime
                var f32Time = Double.nan
                for dtype in StateDType.allCases {
                    let (timings, stateBytes) = try time(dtype, count: count, threads: threads)
                    if dtype == .f32 { f32Time = timings.best }
                    let row = Row(
                        parameters: count, threads: threads, stateDType: dtype.rawValue, stepBest: timings.best,
                        stepMedian: timings.median, stateBytesPerParameter: Double(stateBytes) / Double(count),
                        boundBytes: 12 + 2 * Double(dtype.momentBytes(count: count)) / Double(count), baselineBytesPerSecond: bandwidth
                    )
                    rows.append(row)
                    log(
                        String(
                            format: "%10d %4d  %-5@ %10.1f %14.2f %8.2f %11.2fx", count, threads, dtype.rawValue,
                            Double(count) / row.stepBest / 1e6, row.stateBytesPerParameter, row.boundFactor, f32Time / row.stepBest
                        )
                    )
                }
            }
        }
        return rows
    }

    /// Times `repeats` Adam steps (after one untimed step that allocates the state) on one tensor.
    private func time(_ dtype: StateDType, count: Int, threads: Int) throws -> (Timings, Int) {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam", stateDType: dtype))
        let values = FloatBuffer(count: count, seed: 1)
        try session.setParameters([TensorView(name: "w", shape: TensorShape([count]), values: values.buffer)])
        let gradient = FloatBuffer(count: count, seed: 2)
        for i in 0..<count { gradient.pointer[i] *= 1e-2 }
        let input = StepInput(gradients: [TensorView(name: "w", shape: TensorShape([count]), values: gradient.buffer)])
        let parallelism = Parallelism(threads: threads)
        let timings = try Timings.measure(repeats: repeats) { _ = try session.step(input, parallelism: parallelism) }
        return (timings, session.stateBytes)
    }
}

extension LowBitSuite {
    /// Runs the suite, printing rows as they come, and writes them as JSON if `json` is given.
    static func main(sizes: [Int], threadCounts: [Int], repeats: Int, json: String?) throws {
        print("optimizerd-bench --lowbit: Adam steps with f32, bf16 and int8 state, best of \(repeats); bound = 28/20/16.06 B per parameter")
        print(header)
        let suite = LowBitSuite(sizes: sizes, threadCounts: threadCounts, repeats: repeats) { line in
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
