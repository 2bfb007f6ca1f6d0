import Foundation
import OptimizerKit

// Adam step throughput on one large tensor, next to a plain scalar loop in the same run.
//
//   swift run -c release optimizerd-bench [--parameters 32000000] [--repeats 5]
//
// Machines here are shared and noisy: compare the ratios within one run, not absolute figures.

func argument(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    if let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let parsed = Int(arguments[index + 1]) {
        return parsed
    }
    return value
}

let count = argument("--parameters", default: 32_000_000)
let repeats = argument("--repeats", default: 5)
let threads = ProcessInfo.processInfo.activeProcessorCount

/// The baseline: the textbook fused Adam loop over plain arrays, in Double coefficients rounded once.
func plainAdam(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>, _ v: UnsafeMutablePointer<Float>, count: Int, step: Int) {
    let beta1: Float = 0.9, beta2: Float = 0.999, lr = 1e-3, eps: Float = 1e-8
    let stepSize = Float(lr / (1 - pow(0.9, Double(step))))
    let sqrtBC2 = Float((1 - pow(0.999, Double(step))).squareRoot())
    for i in 0..<count {
        let gi = g[i]
        m[i] = beta1 * m[i] + (1 - beta1) * gi
        v[i] = beta2 * v[i] + (1 - beta2) * gi * gi
        p[i] -= stepSize * m[i] / (v[i].squareRoot() / sqrtBC2 + eps)
    }
}

func measure(_ label: String, _ body: (Int) -> Void) -> Double {
    body(1)  // warm up: state allocation, page faults
    var best = Double.infinity
    for step in 2...(repeats + 1) {
        let start = ContinuousClock.now
        body(step)
        let elapsed = ContinuousClock.now - start
        best = min(best, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
    }
    return Double(count) / best
}

var random = SystemRandomNumberGenerator()
let gradient = (0..<count).map { _ in Float.random(in: -1...1, using: &random) }
let initial = (0..<count).map { _ in Float.random(in: -1...1, using: &random) }

var rows: [(String, Double)] = []

do {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let m = UnsafeMutablePointer<Float>.allocate(capacity: count)
    let v = UnsafeMutablePointer<Float>.allocate(capacity: count)
    p.initialize(from: initial, count: count)
    m.initialize(repeating: 0, count: count)
    v.initialize(repeating: 0, count: count)
    let rate = gradient.withUnsafeBufferPointer { g in
        measure("plain loop") { step in plainAdam(p, g.baseAddress!, m, v, count: count, step: step) }
    }
    rows.append(("plain scalar loop, 1 thread", rate))
    p.deallocate()
    m.deallocate()
    v.deallocate()
}

for threadCount in Set([1, threads]).sorted() {
    let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam"))
    try initial.withUnsafeBufferPointer {
        try session.setParameters([ParameterTensor(name: "w", shape: TensorShape([count]), values: $0)])
    }
    let rate = try gradient.withUnsafeBufferPointer { g in
        let input = StepInput(gradients: [GradientTensor(name: "w", shape: TensorShape([count]), values: g)])
        var failure: (any Error)?
        let rate = measure("session") { _ in
            do { try session.step(input, parallelism: Parallelism(threads: threadCount)) } catch { failure = error }
        }
        if let failure { throw failure }
        return rate
    }
    rows.append(("OptimizerSession.step (norm pass + SIMD kernel), \(threadCount) thread\(threadCount == 1 ? "" : "s")", rate))
}

let baseline = rows[0].1
print("Adam, one tensor of \(count) float32 parameters, best of \(repeats) steps")
print("(28 bytes touched per parameter by the kernel; the session step also reads the gradient once more for its norm)")
for (label, rate) in rows {
    let name = label.padding(toLength: 68, withPad: " ", startingAt: 0)
    print(String(format: "%@ %8.1f M params/s %6.2f GB/s  %5.2fx", name, rate / 1e6, rate * 28 / 1e9, rate / baseline))
}
