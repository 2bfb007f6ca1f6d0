import Foundation
import Testing

@testable import OptimizerKit

/// `state_dtype` in the configuration: which optimizers and options take compact state, what is
/// refused (naming `state_dtype`), that a change cannot switch it, and the bytes the state takes.
struct StateDTypeConfigurationTests {
    struct Refused: CustomTestStringConvertible, Sendable {
        var optimizer: String
        var hyperparameters: Hyperparameters = [:]
        var dtype: StateDType
        var testDescription: String { "\(optimizer) \(hyperparameters) \(dtype)" }
    }

    static let refused: [Refused] = [
        Refused(optimizer: "sgd", hyperparameters: ["momentum": .number(0.9)], dtype: .int8),
        Refused(optimizer: "sgd", dtype: .bf16),
        Refused(optimizer: "adafactor", dtype: .int8),
        Refused(optimizer: "momo", dtype: .bf16),
        Refused(optimizer: "momo_adam", dtype: .int8),
        Refused(optimizer: "acclip", dtype: .int8),
        Refused(optimizer: "mtadam", hyperparameters: ["terms": .number(2)], dtype: .bf16),
        Refused(optimizer: "adam", hyperparameters: ["amsgrad": .bool(true)], dtype: .int8),
        Refused(optimizer: "adamw", hyperparameters: ["amsgrad": .bool(true)], dtype: .bf16),
        Refused(optimizer: "adam", hyperparameters: ["weight_decay": .number(0.1)], dtype: .int8),
    ]

    @Test(arguments: refused)
    func refusedNamingStateDType(_ refused: Refused) {
        #expect {
            try SessionConfiguration(optimizer: refused.optimizer, hyperparameters: refused.hyperparameters, stateDType: refused.dtype)
        } throws: { error in
            guard let error = error as? OptimizerError else { return false }
            return error.subject == "state_dtype" && error.code == .invalidConfiguration && error.message.contains("state_dtype")
        }
    }

    @Test func acceptedForAdamAndAdamW() throws {
        for dtype in StateDType.allCases {
            for optimizer in ["adam", "adamw"] {
                #expect(try SessionConfiguration(optimizer: optimizer, stateDType: dtype).stateDType == dtype)
            }
        }
        let decoupled: Hyperparameters = ["weight_decay": .number(0.1), "decoupled_weight_decay": .bool(true)]
        #expect(try SessionConfiguration(optimizer: "adam", hyperparameters: decoupled, stateDType: .int8).stateDType == .int8)
        #expect(try SessionConfiguration(optimizer: "adam", hyperparameters: ["weight_decay": .number(0.1)], stateDType: .bf16).stateDType == .bf16)
    }

    @Test func unknownNameIsRefusedNamingStateDType() {
        #expect(throws: OptimizerError.self) { try StateDType(option: "fp8") }
        #expect((try? StateDType(option: "int8")) == .int8)
    }

    @Test func aChangeKeepsTheDTypeAndCannotSwitchIt() throws {
        let configuration = try SessionConfiguration(optimizer: "adamw", stateDType: .int8)
        #expect(try configuration.patched(hyperparameters: ["lr": .number(0.1)]).stateDType == .int8)
        #expect(throws: Never.self) { try configuration.checkStateDType(unchangedBy: .int8) }
        #expect(throws: OptimizerError.self) { try configuration.checkStateDType(unchangedBy: .bf16) }
        let session = OptimizerSession(configuration: configuration)
        #expect(throws: OptimizerError.self) { try session.reconfigure(try SessionConfiguration(optimizer: "adamw")) }
        #expect(session.configuration.stateDType == .int8)
    }

    /// State bytes per parameter element: int8 2 + 8/256 (≤ 2.1), bf16 4, f32 8; what the memory
    /// budget admits at upload is what the steps allocate.
    @Test(arguments: [(StateDType.f32, 8.0), (.bf16, 4.0), (.int8, 2.0 + 8.0 / 256)])
    func stateBytesPerParameter(dtype: StateDType, perElement: Double) throws {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam", stateDType: dtype))
        let count = 64 * 1024
        let admitted = session.memoryFootprint(adding: [(name: "w", shape: TensorShape([count]))])
        try session.upload([("w", [count], (0..<count).map { Float($0 % 97) / 97 })])
        try session.step([("w", [count], (0..<count).map { Float($0 % 13) / 13 - 0.5 })])
        try session.step([("w", [count], (0..<count).map { Float($0 % 7) / 7 - 0.5 })])
        #expect(Double(session.stateBytes) / Double(count) == perElement)
        #expect(session.memoryFootprint() == admitted)
    }

    /// Below bitsandbytes' min_8bit_size the int8 state is float32, as in bitsandbytes.
    @Test func smallTensorsKeepFloat32MomentsWithInt8() throws {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam", stateDType: .int8))
        try session.upload([("b", [4095], [Float](repeating: 1, count: 4095)), ("w", [4096], [Float](repeating: 1, count: 4096))])
        try session.step([("b", [4095], [Float](repeating: 0.1, count: 4095)), ("w", [4096], [Float](repeating: 0.1, count: 4096))])
        #expect(session.states[0].all.map(\.name) == ["step", "exp_avg", "exp_avg_sq"])
        #expect(session.states[0].existingTensor("exp_avg") != nil)
        #expect(session.states[1].all.map(\.name) == ["step", "exp_avg", "exp_avg_absmax", "exp_avg_sq", "exp_avg_sq_absmax"])
        #expect(session.states[1].existingTensor("exp_avg_absmax")?.count == 16)
    }

    /// Steps on large tensors split into fixed chunks: the bits do not depend on the thread count.
    @Test(arguments: [StateDType.int8, .bf16])
    func threadCountDoesNotChangeTheBits(dtype: StateDType) throws {
        let count = 3 * 65536 + 1000
        func run(threads: Int) throws -> (parameter: [Float], state: [[UInt8]]) {
            let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adamw", stateDType: dtype))
            try session.upload([("w", [count], (0..<count).map { sin(Float($0)) })])
            for t in 1...3 {
                let g = (0..<count).map { cos(Float($0 * t)) * 0.01 }
                try withBuffers([g]) { buffers in
                    _ = try session.step(
                        StepInput(gradients: [TensorView(name: "w", shape: TensorShape([count]), values: buffers[0])]),
                        parallelism: Parallelism(threads: threads)
                    )
                }
            }
            let state = session.states[0].all.compactMap { slot -> [UInt8]? in
                switch slot.value {
                case .packed(let tensor): return Array(tensor.bytes)
                case .tensor(let tensor): return Array(UnsafeRawBufferPointer(tensor.readOnly))
                case .scalar: return nil
                }
            }
            return (session.value("w"), state)
        }
        let serial = try run(threads: 1), parallel = try run(threads: 3)
        #expect(serial.parameter.map(\.bitPattern) == parallel.parameter.map(\.bitPattern))
        #expect(serial.state == parallel.state)
    }
}
