import Testing

@testable import OptimizerKit

/// A parameter upload checks every tensor before it changes anything, copies new parameters in
/// the pass that checks them, and gives the same result on one thread or several.
struct ParameterUploadTests {
    /// Three ``Chunking`` ranges and a bit, so that two threads split the work.
    private static let count = 3 * Chunking.grain + 17

    private static func values(_ seed: Int) -> [Float] {
        (0..<count).map { Float(($0 &* 7919 &+ seed) % 1000) / 7 - 70 }
    }

    private func upload(
        _ session: OptimizerSession, _ tensors: [(String, [Float])], threads: Int, beforeChange: () throws -> Void = {}
    ) throws {
        try withBuffers(tensors.map(\.1)) { buffers in
            let views = zip(tensors, buffers).map { TensorView(name: $0.0, shape: TensorShape([$0.1.count]), values: $1) }
            try session.setParameters(views, parallelism: Parallelism(threads: threads), beforeChange: beforeChange)
        }
    }

    @Test(arguments: [1, 2, 3])
    func newAndExistingParametersHoldTheUploadedValues(threads: Int) throws {
        let session = try OptimizerSession.make("sgd")
        try upload(session, [("a", Self.values(1))], threads: threads)
        try upload(session, [("a", Self.values(2)), ("b", Self.values(3))], threads: threads)
        #expect(session.value("a") == Self.values(2))
        #expect(session.value("b") == Self.values(3))
    }

    @Test(arguments: [1, 2])
    func aNonFiniteValueInAnyTensorChangesNothingAndNamesTheFirst(threads: Int) throws {
        let session = try OptimizerSession.make("sgd")
        try upload(session, [("a", Self.values(1))], threads: threads)
        var bad = Self.values(4)
        bad[Self.count - 5] = .infinity
        bad[Self.count - 3] = .nan
        var called = false
        for tensors in [[("new", Self.values(2)), ("a", bad)], [("a", Self.values(2)), ("new", bad)]] {
            #expect {
                try upload(session, tensors, threads: threads) { called = true }
            } throws: { error in
                let error = error as! OptimizerError
                return error.code == .nonFiniteValue && error.message.contains("element \(Self.count - 5) is inf")
            }
        }
        #expect(!called && session.parameterNames == ["a"] && session.value("a") == Self.values(1))
    }

    @Test func whenBeforeChangeThrowsNothingChanges() throws {
        struct Refused: Error {}
        let session = try OptimizerSession.make("sgd")
        try upload(session, [("a", Self.values(1))], threads: 2)
        #expect(throws: Refused.self) {
            try upload(session, [("a", Self.values(2)), ("b", Self.values(3))], threads: 2) { throw Refused() }
        }
        #expect(session.parameterNames == ["a"] && session.value("a") == Self.values(1))
    }

    @Test(arguments: [1, 2])
    func aCopyIsMadeOnlyOfFiniteValues(threads: Int) {
        var values = Self.values(5)
        values.withUnsafeBufferPointer { source in
            let copy = TensorBuffer.finiteCopy(of: source, shape: TensorShape([Self.count]), parallelism: Parallelism(threads: threads))
            #expect(copy?.values == values)
            #expect(Reduction.allFinite(source, parallelism: Parallelism(threads: threads)))
        }
        values[2 * Chunking.grain + 1] = -.nan
        values.withUnsafeBufferPointer { source in
            #expect(TensorBuffer.finiteCopy(of: source, shape: TensorShape([Self.count]), parallelism: Parallelism(threads: threads)) == nil)
            #expect(!Reduction.allFinite(source, parallelism: Parallelism(threads: threads)))
        }
    }
}
