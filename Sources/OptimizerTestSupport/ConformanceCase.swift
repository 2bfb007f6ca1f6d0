import Foundation
import OptimizerKit
import OptimizerWire

/// One golden trajectory from `shared/conformance/<case>.safetensors`, decoded with the project's own
/// safetensors reader (see that folder's README for the format and the pass criterion).
///
/// Used by the library conformance test and by the HTTP conformance test, so both replay the same data
/// the same way. Cases are discovered from the folder: a new file is picked up without code changes.
public struct ConformanceCase: Sendable {
    /// The file name without extension, e.g. `adam_amsgrad_l2`.
    public let name: String
    /// `optimizer` from the metadata.
    public let optimizer: String
    /// The session hyperparameters: the case's `hyperparameters` plus `terms` for MTAdam.
    public let hyperparameters: Hyperparameters
    /// Parameter names, in order.
    public let parameters: [String]
    /// Number of steps.
    public let steps: Int
    /// Number of loss terms.
    public let terms: Int
    /// The loss to send at each step (MTAdam: the sum of the terms' losses), if the case has losses.
    public let losses: [Double]?
    /// The criterion's tolerances.
    public let atol: Double
    public let rtol: Double

    private let file: SafetensorsFile

    /// The folder holding the cases: `$OPTIMIZERD_CONFORMANCE_DIR`, or `shared/conformance` beside the repository.
    public static var directory: URL {
        if let override = ProcessInfo.processInfo.environment["OPTIMIZERD_CONFORMANCE_DIR"] {
            return URL(fileURLWithPath: override)
        }
        // Sources/OptimizerTestSupport/ConformanceCase.swift → repository root → its parent → shared/conformance
        return URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("shared/conformance")
    }

    /// The names of every case in ``directory``, sorted.
    public static func caseNames() -> [String] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return files.filter { $0.hasSuffix(".safetensors") }.map { String($0.dropLast(".safetensors".count)) }.sorted()
    }

    /// Loads one case by name.
    public init(named name: String) throws {
        let url = Self.directory.appendingPathComponent(name + ".safetensors")
        let data = try Data(contentsOf: url)
        file = try SafetensorsFile(data: data)
        self.name = name
        let metadata = file.metadata
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else { throw ConformanceError("\(name): metadata lacks \"\(key)\"") }
            return value
        }
        optimizer = try field("optimizer")
        steps = Int(try field("steps")) ?? 0
        terms = Int(metadata["terms"] ?? "1") ?? 1
        atol = Double(try field("atol")) ?? 0
        rtol = Double(try field("rtol")) ?? 0
        parameters = try JSONDecoder().decode([String].self, from: Data(try field("parameters").utf8))
        var hyperparameters = try JSONDecoder().decode(Hyperparameters.self, from: Data((metadata["hyperparameters"] ?? "{}").utf8))
        if optimizer == "mtadam" { hyperparameters["terms"] = .number(Double(terms)) }
        self.hyperparameters = hyperparameters
        if let text = metadata["losses"] {
            if terms > 1 || optimizer == "mtadam", let perTerm = try? JSONDecoder().decode([[Double]].self, from: Data(text.utf8)) {
                losses = perTerm.map { $0.reduce(0, +) }
            } else {
                losses = try JSONDecoder().decode([Double].self, from: Data(text.utf8))
            }
        } else {
            losses = nil
        }
    }

    /// A tensor of the case file.
    public struct Tensor: Sendable {
        public let name: String
        public let shape: [Int]
        public let values: [Float]
    }

    private func tensor(_ key: String, as name: String) throws -> Tensor {
        guard let entry = file.tensors.first(where: { $0.name == key }) else {
            throw ConformanceError("\(self.name): no tensor \(key)")
        }
        return Tensor(name: name, shape: entry.shape, values: try file.floats(named: key))
    }

    /// The initial parameter values, named by parameter.
    public func initialParameters() throws -> [Tensor] {
        try parameters.map { try tensor("init/\($0)", as: $0) }
    }

    /// The gradients of step `step` (1-based) under their wire names (`k/P` for MTAdam).
    public func gradients(step: Int) throws -> [Tensor] {
        if optimizer == "mtadam" {
            return try (0..<terms).flatMap { term in
                try parameters.map { try tensor("grad/\(step)/\(term)/\($0)", as: "\(term)/\($0)") }
            }
        }
        return try parameters.map { try tensor("grad/\(step)/\($0)", as: $0) }
    }

    /// The expected value of `parameter` after step `step`.
    public func expected(step: Int, parameter: String) throws -> Tensor {
        try tensor("expect/\(step)/\(parameter)", as: parameter)
    }

    /// Applies the pass criterion |got − expect| ≤ atol + rtol·|expect − init| to every element.
    ///
    /// - Returns: nil when it passes, otherwise a description of the worst element.
    public func failure(step: Int, parameter: String, got: [Float]) throws -> String? {
        let expect = try expected(step: step, parameter: parameter).values
        let initial = try tensor("init/\(parameter)", as: parameter).values
        guard got.count == expect.count else {
            return "\(name) step \(step) \(parameter): \(got.count) values, expected \(expect.count)"
        }
        var worst: (index: Int, excess: Double)?
        for i in got.indices {
            let allowed = atol + rtol * abs(Double(expect[i]) - Double(initial[i]))
            let error = abs(Double(got[i]) - Double(expect[i]))
            if !(error <= allowed), error - allowed > (worst?.excess ?? -1) || error.isNaN { worst = (i, error - allowed) }
        }
        guard let worst else { return nil }
        let i = worst.index
        return
            "\(name) step \(step) \(parameter)[\(i)]: got \(got[i]), expected \(expect[i]) (init \(initial[i]), allowed ±\(atol + rtol * abs(Double(expect[i]) - Double(initial[i]))))"
    }
}

/// A malformed conformance case.
public struct ConformanceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
