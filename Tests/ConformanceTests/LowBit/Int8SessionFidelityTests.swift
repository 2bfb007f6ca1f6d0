import Foundation
import OptimizerWire
import Testing

@testable import OptimizerKit

/// The bitsandbytes golden cases (scripts/make_lowbit_cases.py) replayed through a whole session with
/// `state_dtype: int8` — the library path the server takes: the session must pick the 8-bit or
/// float32 form by size, keep the codes and absmax in its state slots bit for bit as bitsandbytes
/// does for the recorded steps, and keep the parameters within the case's tolerance at every step.
struct Int8SessionFidelityTests {
    @Test(arguments: Int8AdamFidelityTests.cases, [1, 4])
    func sessionReplaysBitsandbytes(caseName: String, threads: Int) throws {
        let file = try SafetensorsFile(data: Data(contentsOf: Int8AdamFidelityTests.directory.appendingPathComponent("\(caseName).safetensors")))
        let metadata = file.metadata
        #expect(metadata["state_dtype"] == "int8")
        let names = try JSONDecoder().decode([String].self, from: Data(metadata["parameters"]!.utf8))
        let hyperparameters = try JSONDecoder().decode(Hyperparameters.self, from: Data(metadata["hyperparameters"]!.utf8))
        let steps = Int(metadata["steps"]!)!, codeSteps = Int(metadata["code_steps"]!)!
        let atol = Double(metadata["atol"]!)!, rtol = Double(metadata["rtol"]!)!
        let session = OptimizerSession(
            configuration: try SessionConfiguration(optimizer: metadata["optimizer"]!, hyperparameters: hyperparameters, stateDType: .int8)
        )
        let initial = try names.map { try file.floats(named: "init/\($0)") }
        let shapes = names.map { file.entry(named: "init/\($0)")!.shape }
        let parameters = names.indices.map { TensorBuffer(shape: TensorShape(shapes[$0]), values: initial[$0]) }
        try session.setParameters(names.indices.map { TensorView(name: names[$0], shape: parameters[$0].shape, values: parameters[$0].readOnly) })
        for t in 1...steps {
            let gradients = try names.indices.map { TensorBuffer(shape: TensorShape(shapes[$0]), values: try file.floats(named: "grad/\(t)/\(names[$0])")) }
            try session.step(
                StepInput(gradients: names.indices.map { TensorView(name: names[$0], shape: gradients[$0].shape, values: gradients[$0].readOnly) }),
                parallelism: Parallelism(threads: threads)
            )
            for (index, name) in names.enumerated() {
                let state = session.states[index]
                let quantized = initial[index].count >= Int8AdamKernel.minimumSize
                if case .packed = state.all.first(where: { $0.name == "exp_avg" })!.value {
                    #expect(quantized, "\(name) is below min_8bit_size but has 8-bit state")
                } else {
                    #expect(!quantized, "\(name) is at least min_8bit_size but has float32 state")
                }
                if quantized, t <= codeSteps {
                    for (slot, moment) in [(1, "exp_avg"), (2, "exp_avg_sq")] {
                        guard case .packed(let codes) = state.all.first(where: { $0.name == moment })!.value else { continue }
                        let expectCodes = try file.floats(named: "codes\(slot)/\(t)/\(name)").map { UInt8($0) }
                        let differing = zip(expectCodes, UnsafeBufferPointer(start: codes.codes, count: codes.count)).filter { $0 != $1 }.count
                        #expect(differing == 0, "\(caseName) step \(t) \(name) \(moment): \(differing) codes differ")
                        let absmax = state.existingTensor("\(moment)_absmax")!.values
                        #expect(absmax.map(\.bitPattern) == (try file.floats(named: "absmax\(slot)/\(t)/\(name)")).map(\.bitPattern))
                    }
                }
                let expect = try file.floats(named: "expect/\(t)/\(name)")
                let got = session.parameters[index].values
                let worst = expect.indices.map { i in
                    abs(Double(got[i]) - Double(expect[i])) / (atol + rtol * abs(Double(expect[i]) - Double(initial[index][i])))
                }.max()!
                #expect(worst <= 1, "\(caseName) step \(t) \(name): off by \(worst)× the tolerance")
            }
        }
    }
}
