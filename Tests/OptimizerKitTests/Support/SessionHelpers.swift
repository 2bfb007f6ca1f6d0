@testable import OptimizerKit

/// Test conveniences over the pointer-based public API.
extension OptimizerSession {
    static func make(_ optimizer: String, _ hyperparameters: Hyperparameters = [:], groups: [ParameterGroup] = []) throws -> OptimizerSession {
        OptimizerSession(configuration: try SessionConfiguration(optimizer: optimizer, hyperparameters: hyperparameters, groups: groups))
    }

    func upload(_ tensors: [(String, [Int], [Float])]) throws {
        try withBuffers(tensors.map(\.2)) { buffers in
            try setParameters(zip(tensors, buffers).map { TensorView(name: $0.0, shape: TensorShape($0.1), values: $1) })
        }
    }

    @discardableResult
    func step(
        _ gradients: [(String, [Int], [Float])],
        loss: Double? = nil,
        termWeights: [Double]? = nil,
        gradScale: Double? = nil,
        knownSumsOfSquares: [String: Double] = [:]
    ) throws -> StepTelemetry {
        try withBuffers(gradients.map(\.2)) { buffers in
            try step(
                StepInput(
                    gradients: zip(gradients, buffers).map { TensorView(name: $0.0, shape: TensorShape($0.1), values: $1) },
                    loss: loss,
                    termWeights: termWeights,
                    gradScale: gradScale,
                    knownSumsOfSquares: knownSumsOfSquares
                )
            )
        }
    }

    func value(_ name: String) -> [Float] { parameters[parameterIndex(named: name)!].values }
}

/// Calls `body` with read-only buffers over every array (kept alive for the call).
func withBuffers<R>(_ arrays: [[Float]], _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
    var pointers: [UnsafeMutableBufferPointer<Float>] = []
    defer { pointers.forEach { $0.deallocate() } }
    for array in arrays {
        let copy = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(array.count, 1))
        _ = copy.initialize(from: array)
        pointers.append(copy)
    }
    return try body(zip(pointers, arrays).map { UnsafeBufferPointer(start: $0.baseAddress, count: $1.count) })
}

/// |got − expect| ≤ atol + rtol·|expect − initial| element-wise (the conformance criterion).
func withinCriterion(_ got: [Float], _ expect: [Double], initial: [Float], atol: Double = 1e-6, rtol: Double = 1e-5) -> Bool {
    guard got.count == expect.count else { return false }
    for i in got.indices where abs(Double(got[i]) - expect[i]) > atol + rtol * abs(expect[i] - Double(initial[i])) {
        return false
    }
    return true
}
