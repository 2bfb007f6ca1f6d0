import Foundation
import OptimizerWire
import Testing

@testable import OptimizerKit

/// Replays the golden cases of scripts/make_lowbit_cases.py (bitsandbytes 0.50.2's CPU
/// Adam8bit/AdamW8bit) through the 8-bit Adam kernel: the quantized codes and absmax must be the
/// same bits for the recorded steps, and the parameters within the case's tolerance at every step.
struct Int8AdamFidelityTests {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/lowbit")

    static let cases = ["adam8bit", "adamw8bit"]

    /// One parameter's state: 8-bit (codes + absmax) at or above min_8bit_size, float32 below.
    final class State {
        var parameter: [Float]
        var codes1: [UInt8], codes2: [UInt8], absmax1: [Float], absmax2: [Float]
        var m: [Float], v: [Float]
        let quantized: Bool

        init(_ initial: [Float]) {
            parameter = initial
            quantized = initial.count >= 4096
            let blocks = (initial.count + 255) / 256
            codes1 = Array(repeating: 0, count: initial.count)
            codes2 = codes1
            absmax1 = Array(repeating: 0, count: blocks)
            absmax2 = absmax1
            m = Array(repeating: 0, count: initial.count)
            v = m
        }
    }

    @Test(arguments: cases, [false, true])
    func replay(caseName: String, useSIMD: Bool) throws {
        let file = try SafetensorsFile(data: Data(contentsOf: Self.directory.appendingPathComponent("\(caseName).safetensors")))
        let metadata = file.metadata
        let names = try JSONDecoder().decode([String].self, from: Data(metadata["parameters"]!.utf8))
        let hyper = try JSONDecoder().decode([String: JSONNumberOrList].self, from: Data(metadata["hyperparameters"]!.utf8))
        let steps = Int(metadata["steps"]!)!, codeSteps = Int(metadata["code_steps"]!)!
        let atol = Double(metadata["atol"]!)!, rtol = Double(metadata["rtol"]!)!
        let lr = hyper["lr"]!.values[0], betas = hyper["betas"]!.values, eps = hyper["eps"]!.values[0]
        let weightDecay = hyper["weight_decay"]?.values[0] ?? 0
        var states = try names.map { State(try file.floats(named: "init/\($0)")) }
        let initial = states.map(\.parameter)
        for t in 1...steps {
            let c = Int8AdamKernel.Coefficients(
                lr: lr, beta1: betas[0], beta2: betas[1], eps: eps, weightDecay: weightDecay, step: Double(t), gradientScale: 1
            )
            for (index, name) in names.enumerated() {
                var gradient = try file.floats(named: "grad/\(t)/\(name)")
                step(&states[index], gradient: &gradient, c, lr: lr, beta1: betas[0], beta2: betas[1], eps: eps, t: Double(t), useSIMD: useSIMD)
                let state = states[index]
                if state.quantized, t <= codeSteps {
                    for slot in [1, 2] {
                        let codes = try file.floats(named: "codes\(slot)/\(t)/\(name)").map { UInt8($0) }
                        let absmax = try file.floats(named: "absmax\(slot)/\(t)/\(name)")
                        let gotCodes = slot == 1 ? state.codes1 : state.codes2
                        let gotAbsmax = slot == 1 ? state.absmax1 : state.absmax2
                        let differing = zip(codes, gotCodes).filter { $0 != $1 }.count
                        #expect(differing == 0, "\(caseName) step \(t) \(name) state\(slot): \(differing) codes differ")
                        #expect(absmax.map(\.bitPattern) == gotAbsmax.map(\.bitPattern), "\(caseName) step \(t) \(name) absmax\(slot)")
                    }
                }
                let expect = try file.floats(named: "expect/\(t)/\(name)")
                var worst = 0.0
                for i in expect.indices {
                    let allowed = atol + rtol * abs(Double(expect[i]) - Double(initial[index][i]))
                    worst = max(worst, abs(Double(state.parameter[i]) - Double(expect[i])) / allowed)
                }
                #expect(worst <= 1, "\(caseName) step \(t) \(name): off by \(worst)× the tolerance")
            }
        }
    }

    /// One step of one parameter, 8-bit or float32 path as bitsandbytes chooses by size.
    private func step(
        _ state: inout State, gradient: inout [Float], _ c: Int8AdamKernel.Coefficients,
        lr: Double, beta1: Double, beta2: Double, eps: Double, t: Double, useSIMD: Bool
    ) {
        let count = state.parameter.count
        gradient.withUnsafeBufferPointer { g in
            if state.quantized {
                state.parameter.withUnsafeMutableBufferPointer { p in
                    state.codes1.withUnsafeMutableBufferPointer { q1 in
                        state.codes2.withUnsafeMutableBufferPointer { q2 in
                            state.absmax1.withUnsafeMutableBufferPointer { a1 in
                                state.absmax2.withUnsafeMutableBufferPointer { a2 in
                                    let buffers = Int8AdamKernel.Buffers(
                                        parameter: p.baseAddress!, gradient: g.baseAddress!, codes1: q1.baseAddress!,
                                        codes2: q2.baseAddress!, absmax1: a1.baseAddress!, absmax2: a2.baseAddress!
                                    )
                                    _ = useSIMD ? Int8AdamKernel.simd(buffers, count: count, c) : Int8AdamKernel.scalar(buffers, count: count, c)
                                }
                            }
                        }
                    }
                }
            } else {
                let sqrtBC2 = (1 - Foundation.pow(beta2, t)).squareRoot()
                state.parameter.withUnsafeMutableBufferPointer { p in
                    state.m.withUnsafeMutableBufferPointer { m in
                        state.v.withUnsafeMutableBufferPointer { v in
                            _ = Int8AdamKernel.float32(
                                parameter: p.baseAddress!, gradient: g.baseAddress!, expAvg: m.baseAddress!, expAvgSq: v.baseAddress!,
                                count: count, c, epsTimesSqrtBiasCorrection2: Float(eps * sqrtBC2),
                                stepSize: Float(-lr * sqrtBC2 / (1 - Foundation.pow(beta1, t)))
                            )
                        }
                    }
                }
            }
        }
    }
}

/// A hyperparameter that is a number or a list of numbers (`lr`, `betas`).
struct JSONNumberOrList: Decodable {
    let values: [Double]
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let number = try? container.decode(Double.self) { values = [number] } else { values = try container.decode([Double].self) }
    }
}
