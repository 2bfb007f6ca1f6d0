import Foundation
import OptimizerKit
import OptimizerWire

@testable import OptimizerStore

/// A fresh temporary data directory, removed at deinit.
final class TemporaryDirectory {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "optimizerd-store-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum StoreFixtures {
    /// A small Adam session with two parameters.
    static func session() throws -> OptimizerSession {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam", hyperparameters: ["lr": .number(0.01)]))
        let w = TensorBuffer(shape: TensorShape([2, 3]), values: [1, 2, 3, 4, 5, 6])
        let b = TensorBuffer(shape: TensorShape([3]), values: [0.1, 0.2, 0.3])
        try session.setParameters([
            TensorView(name: "w", shape: w.shape, values: w.readOnly),
            TensorView(name: "b", shape: b.shape, values: b.readOnly),
        ])
        return session
    }

    /// A step request body: plain safetensors gradients, deterministic for `step`.
    static func stepBody(_ step: Int) throws -> [UInt8] {
        var writer = SafetensorsWriter(metadata: ["step": String(step)])
        let scale = Float(step)
        try writer.add("w", shape: [2, 3], floats: (0..<6).map { sin(Float($0) + scale) })
        try writer.add("b", shape: [3], floats: (0..<3).map { cos(Float($0) * scale) })
        return writer.bytes()
    }

    /// Applies a logged step record the way a server would: decode the body and step.
    static func replay(_ record: LogRecord, _ session: OptimizerSession) throws {
        precondition(record.kind == .step)
        let file = try SafetensorsFile(bytes: record.body)
        let buffers = try file.tensors.map { TensorBuffer(shape: TensorShape($0.shape), values: try file.floats(named: $0.name)) }
        try session.step(
            StepInput(gradients: zip(file.tensors, buffers).map { TensorView(name: $0.name, shape: $1.shape, values: $1.readOnly) })
        )
    }

    /// Logs then applies `count` steps, as the server does.
    static func run(_ count: Int, session: OptimizerSession, journal: SessionJournal) throws {
        for _ in 0..<count {
            let next = session.step + 1
            let record = LogRecord(kind: .step, step: UInt64(next), contentEncoding: nil, body: try stepBody(next))
            try journal.append(record)
            try replay(record, session)
        }
    }

    static func fingerprint(_ session: OptimizerSession) -> [UInt32] {
        var bits = session.parameters.flatMap { $0.values.map(\.bitPattern) }
        for state in session.states {
            for slot in state.all {
                switch slot.value {
                case .tensor(let tensor): bits += tensor.values.map(\.bitPattern)
                case .scalar(let value): bits += [UInt32(truncatingIfNeeded: value.bitPattern), UInt32(value.bitPattern >> 32)]
                case .packed(let tensor): bits += tensor.bytes.map(UInt32.init)
                }
            }
        }
        return bits + [UInt32(session.step)]
    }
}
