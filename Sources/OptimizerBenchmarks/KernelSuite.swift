import Foundation
import OptimizerKit

/// One timed row of the kernel suite.
struct KernelResult: Codable {
    var model: String
    var parameters: Int
    var tensors: Int
    var optimizer: String
    var threads: Int
    /// Seconds of a whole session step (validation and norms, then the kernels): best and median.
    var stepBest: Double
    var stepMedian: Double
    /// Seconds of the kernels alone (``OptimizerSession/apply(_:)``), best of the same runs.
    var kernelBest: Double
    /// Bytes per parameter the maths needs, and what the session step moves as implemented.
    var boundBytes: Int
    var implementationBytes: Int
    /// The C Adam loop at this size and thread count: seconds (best), and its bandwidth.
    var baselineSeconds: Double
    var baselineBytesPerSecond: Double

    var paramsPerSecond: Double { Double(parameters) / stepBest }
    var kernelParamsPerSecond: Double { Double(parameters) / kernelBest }
    /// Time of the step over the time the C loop's bandwidth needs for the bound bytes (1 = at the limit).
    var boundFactor: Double { stepBest / (Double(parameters * boundBytes) / baselineBytesPerSecond) }
    var kernelBoundFactor: Double { kernelBest / (Double(parameters * boundBytes) / baselineBytesPerSecond) }

    enum CodingKeys: String, CodingKey {
        case model, parameters, tensors, optimizer, threads, stepBest, stepMedian, kernelBest, boundBytes
        case implementationBytes, baselineSeconds, baselineBytesPerSecond
    }
}

/// Times every optimizer's session step on each model, next to the C Adam loop at the same size and
/// thread count, measured in the same run just before.
struct KernelSuite {
    var models: [BenchmarkModel]
    var cases: [BenchmarkCase]
    var threadCounts: [Int]
    var repeats: Int
    var clock: BenchmarkClock
    /// Whether steps are given their gradients' sums of squares (``StepInput/knownSumsOfSquares``).
    var sumsOnArrival = false
    var log: (String) -> Void

    func run() throws -> [KernelResult] {
        var results: [KernelResult] = []
        for model in models {
            var baseline = BaselineAdam(count: model.parameterCount)
            for threads in threadCounts {
                var baselineTime = Timings.measure(repeats: repeats, clock: clock) { baseline.run(threads: threads) }.best
                for benchmark in cases {
                    let (step, kernel) = try time(benchmark, on: model, threads: threads)
                    // Re-measure the yardstick between rows: the machine is shared and its speed drifts;
                    // the best seen so far is the honest bandwidth figure.
                    baselineTime = min(baselineTime, Timings.measure(repeats: 2, warmup: 0, clock: clock) { baseline.run(threads: threads) }.best)
                    let result = KernelResult(
                        model: model.label, parameters: model.parameterCount, tensors: model.tensors.count,
                        optimizer: benchmark.label, threads: threads, stepBest: step.best, stepMedian: step.median,
                        kernelBest: kernel.best, boundBytes: benchmark.boundBytes(model.mostlyMatrices),
                        implementationBytes: benchmark.implementationBytes(factored: model.mostlyMatrices),
                        baselineSeconds: baselineTime,
                        baselineBytesPerSecond: Double(model.parameterCount * 28) / baselineTime
                    )
                    results.append(result)
                    log(KernelSuite.row(result))
                }
            }
        }
        return results
    }

    /// Times `repeats` session steps (after one untimed step that allocates the state), and the
    /// kernels alone within the same steps.
    private func time(_ benchmark: BenchmarkCase, on model: BenchmarkModel, threads: Int) throws -> (Timings, Timings) {
        let session = OptimizerSession(
            configuration: try SessionConfiguration(optimizer: benchmark.optimizer, hyperparameters: benchmark.hyperparameters)
        )
        var keep: [FloatBuffer] = []
        var parameters: [TensorView] = []
        for (index, tensor) in model.tensors.enumerated() {
            let values = FloatBuffer(count: tensor.shape.reduce(1, *), seed: UInt64(index + 1))
            keep.append(values)
            parameters.append(TensorView(name: tensor.name, shape: TensorShape(tensor.shape), values: values.buffer))
        }
        try session.setParameters(parameters)
        keep.removeAll()  // setParameters copied them
        var gradients: [TensorView] = []
        for term in 0..<benchmark.terms {
            for (index, tensor) in model.tensors.enumerated() {
                // Small gradients keep every optimizer's state finite and non-degenerate over the runs.
                let values = FloatBuffer(count: tensor.shape.reduce(1, *), seed: UInt64(1000 * (term + 1) + index))
                for i in 0..<values.count { values.pointer[i] *= 1e-2 }
                keep.append(values)
                let name = benchmark.optimizer == "mtadam" ? "\(term)/\(tensor.name)" : tensor.name
                gradients.append(TensorView(name: name, shape: TensorShape(tensor.shape), values: values.buffer))
            }
        }
        let input = StepInput(
            gradients: gradients, loss: benchmark.needsLoss ? 1.0 : nil,
            knownSumsOfSquares: sumsOnArrival ? StepInput.sumsOfSquares(of: gradients) : [:])
        let parallelism = Parallelism(threads: threads)
        var kernelSamples: [Double] = []
        var warm = false
        let steps = try Timings.measure(repeats: repeats, clock: clock) {
            let prepared = try session.prepareStep(input, parallelism: parallelism)
            let start = clock.now()
            session.apply(prepared)
            if warm { kernelSamples.append(clock.now() - start) }
            warm = true
        }
        withExtendedLifetime(keep) {}
        return (steps, Timings(samples: kernelSamples))
    }

    static let header =
        "model                                     optimizer        thr   M param/s  kernel M/s  GB/s(bound)  x bound  C Adam M/s  vs C Adam"

    static func row(_ r: KernelResult) -> String {
        let baselineRate = Double(r.parameters) / r.baselineSeconds
        return String(
            format: "%@ %@ %3d %11.1f %11.1f %12.2f %8.2f %11.1f %9.2fx",
            pad(r.model, 41), pad(r.optimizer, 16), r.threads, r.paramsPerSecond / 1e6, r.kernelParamsPerSecond / 1e6,
            r.paramsPerSecond * Double(r.boundBytes) / 1e9, r.boundFactor, baselineRate / 1e6,
            r.paramsPerSecond / baselineRate
        )
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count)
    }
}
