import ArgumentParser
import Foundation
import OptimizerKit

/// `optimizerd-bench`: every optimizer's step on large tensors and a multi-tensor model, next to a
/// plain C fused Adam loop (-O3 -march=native) timed in the same run.
///
/// Build in release mode: `swift run -c release optimizerd-bench`. `scripts/bench.sh` runs this with
/// the daemon benchmarks and writes one JSON file. Machines here are shared and noisy: compare the
/// ratios within one run, not absolute figures across runs.
@main
struct OptimizerBenchmarks: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optimizerd-bench",
        abstract: "Time every optimizer's step next to a C fused Adam loop (the memory-bandwidth yardstick)."
    )

    @Option(help: "Single-tensor sizes in parameters (suffixes K and M allowed).")
    var sizes: String = "1M,8M,32M"

    @Option(help: "Also time a transformer-like model of many tensors: 'WIDTHxLAYERS', or 'none'.")
    var transformer: String = "768x4"

    @Option(help: "Comma-separated optimizer rows to run (e.g. 'adam,momo'); default all.")
    var only: String?

    @Option(help: "MTAdam term counts to time.")
    var terms: String = "1,2,4"

    @Option(help: "Thread counts; default 1 and every core.")
    var threads: String?

    @Option(help: "Timed steps per row (the best one is reported, the median is in the JSON).")
    var repeats: Int = 5

    @Option(
        help: """
            What the times measure: 'wall' (elapsed) or 'cpu' (this process's CPU time, for one thread on \
            a machine busy with other work: the time the step ran, not the time it waited for a core).
            """
    )
    var clock: BenchmarkClock = .wall

    @Option(help: "Write the results as JSON to this file.")
    var json: String?

    @Option(
        help: """
            Instead of the suite: Adam with f32, bf16 and int8 state at these sizes (e.g. '1M,8M'), taking \
            turns with a memcpy (the bandwidth bound) and the C Adam loop; --repeats rounds.
            """
    )
    var lowbit: String?

    @Flag(
        help: """
            Give each step its gradients' sums of squares, as the daemon does for an uncompressed float32 \
            step body (summed while it arrives, from the cache): the step then reads each gradient once.
            """
    )
    var sumsOnArrival = false

    func run() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let threadCounts = try threads.map { try Self.integers($0) } ?? Array(Set([1, cores])).sorted()
        guard clock == .wall || threadCounts == [1] else {
            throw ValidationError("--clock cpu adds up the threads' times: use it with --threads 1")
        }
        if let lowbit {
            return try LowBitSuite.main(
                sizes: try Self.integers(lowbit), threadCounts: threadCounts, repeats: repeats, clock: clock, sumsOnArrival: sumsOnArrival,
                json: json)
        }
        var models = try Self.integers(sizes).map { BenchmarkModel.matrix(parameters: $0) }
        if transformer != "none" {
            let parts = transformer.split(separator: "x").compactMap { Int($0) }
            guard parts.count == 2 else { throw ValidationError("--transformer expects WIDTHxLAYERS, e.g. 768x4") }
            models.append(.transformer(width: parts[0], layers: parts[1], vocabulary: 8192))
        }
        var cases = BenchmarkCase.all(terms: try Self.integers(terms))
        if let only {
            let wanted = Set(only.split(separator: ",").map(String.init))
            cases = cases.filter { wanted.contains($0.label) || wanted.contains($0.optimizer) }
        }
        print(
            "optimizerd-bench: \(cores) cores, \(clock) clock, kernels \(KernelVariant.active), best of \(repeats) steps per row\(sumsOnArrival ? ", sums of squares given (as on arrival)" : ""); C Adam = plain fused C loop at the same size and thread count"
        )
        print("x bound = step time / (bound bytes per parameter ÷ the C loop's bandwidth); 1.00 = at the memory limit")
        print(KernelSuite.header)
        let suite = KernelSuite(
            models: models, cases: cases, threadCounts: threadCounts, repeats: repeats, clock: clock, sumsOnArrival: sumsOnArrival
        ) { line in
            // Unbuffered, so a long run shows its progress through a pipe too.
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
        }
        let results = try suite.run()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let document = KernelReport(cores: cores, repeats: repeats, kernels: results)
            try encoder.encode(document).write(to: URL(fileURLWithPath: json))
        }
    }

    static func integers(_ list: String) throws -> [Int] {
        try list.split(separator: ",").map { item in
            var text = item.trimmingCharacters(in: .whitespaces).uppercased()
            var scale = 1
            if text.hasSuffix("M") {
                scale = 1_000_000
                text.removeLast()
            } else if text.hasSuffix("K") {
                scale = 1_000
                text.removeLast()
            }
            guard let value = Double(text), value > 0 else { throw ValidationError("not a positive number: \(item)") }
            return Int(value * Double(scale))
        }
    }
}

struct KernelReport: Codable {
    var cores: Int
    var repeats: Int
    var kernels: [KernelResult]
}
