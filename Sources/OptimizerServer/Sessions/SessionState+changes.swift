import Foundation
import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

/// A `PATCH` as it is logged and replayed: the hyperparameter changes and, optionally, new groups.
struct ConfigurationChange: Codable, Sendable {
    var hyperparameters: Hyperparameters
    var groups: [ParameterGroup]?
}

extension SessionState {
    /// Uploads parameters: checked, logged, then applied (OptimizerWire's
    /// ``OptimizerSession/setParameters(from:in:parallelism:beforeChange:)`` with the log in between).
    mutating func setParameters(_ payload: TensorPayload, parallelism: Parallelism) throws {
        let (session, journal) = (self.session, self.journal)
        try payload.bytes.withUnsafeReadableBytes { body in
            try session.setParameters(from: payload.header, in: body, parallelism: parallelism) {
                try journal?.append(kind: .parameters, step: session.step, contentEncoding: nil, body: body, spooled: payload.spooled)
            }
        }
    }

    /// Changes hyperparameters and groups: validated, logged, then applied.
    mutating func reconfigure(_ change: ConfigurationChange) throws {
        let configuration = try session.configuration.patched(hyperparameters: change.hyperparameters, groups: change.groups)
        if let journal {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = try encoder.encode(change)
            try body.withUnsafeBytes { body in
                try journal.append(kind: .configure, step: session.step, contentEncoding: nil, body: body)
            }
        }
        try session.reconfigure(configuration)
    }

    /// Applies one record of the write-ahead log during recovery, through the same code paths as the
    /// request that wrote it (the journal is not attached yet, so nothing is logged again).
    mutating func replay(_ record: LogRecord, parallelism: Parallelism) throws {
        precondition(journal == nil, "replay runs before the journal is attached")
        switch record.kind {
        case .step:
            let request = try StepRequest(
                payload: TensorPayload(parsing: ByteBuffer(bytes: record.body)),
                options: ResponseOptions(returnValue: "none", dtypeValue: nil)
            )
            _ = try step(request, parallelism: parallelism)
        case .parameters:
            try setParameters(try TensorPayload(parsing: ByteBuffer(bytes: record.body)), parallelism: parallelism)
        case .configure:
            try reconfigure(try JSONDecoder().decode(ConfigurationChange.self, from: Data(record.body)))
        case .commit:
            try replayCommit(record, parallelism: parallelism)
        }
    }
}
