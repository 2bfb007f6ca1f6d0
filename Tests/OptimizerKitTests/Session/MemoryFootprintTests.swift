import Testing

@testable import OptimizerKit

/// The memory budget admits a session's optimizer state when its parameters are uploaded: the
/// footprint counted then must be exactly what the first step allocates, so no step ever needs
/// more than was admitted.
struct MemoryFootprintTests {
    struct Case: CustomStringConvertible, Sendable {
        var optimizer: String
        var hyperparameters: Hyperparameters = [:]
        /// State float elements per parameter element (for the [3, 4] and [5] parameters), as planned.
        var stateElements: Int
        var description: String { "\(optimizer) \(hyperparameters)" }
    }

    static let shapes: [(String, [Int])] = [("w", [3, 4]), ("b", [5])]

    static let cases: [Case] = [
        Case(optimizer: "adam", stateElements: 2 * 17),
        Case(optimizer: "adam", hyperparameters: ["amsgrad": .bool(true)], stateElements: 3 * 17),
        Case(optimizer: "adamw", stateElements: 2 * 17),
        Case(optimizer: "sgd", stateElements: 0),
        Case(optimizer: "sgd", hyperparameters: ["momentum": .number(0.9)], stateElements: 17),
        Case(optimizer: "acclip", stateElements: 2 * 17),
        Case(optimizer: "mtadam", hyperparameters: ["terms": .number(2)], stateElements: 2 * 2 * 17),
        // Factored for w ([3, 4]: 3 row and 4 column statistics), full for b; exp_avg with beta1.
        Case(optimizer: "adafactor", stateElements: 3 + 4 + 5),
        Case(optimizer: "adafactor", hyperparameters: ["beta1": .number(0.9)], stateElements: 17 + 3 + 4 + 5),
        Case(optimizer: "momo", stateElements: 17),
        Case(optimizer: "momo_adam", stateElements: 2 * 17),
    ]

    @Test(arguments: cases)
    func footprintCountedAtUploadIsWhatTheStepAllocates(_ testCase: Case) throws {
        let session = try OptimizerSession.make(testCase.optimizer, testCase.hyperparameters)
        let planned = Self.shapes.map { (name: $0.0, shape: TensorShape($0.1)) }
        let admitted = session.memoryFootprint(adding: planned)
        let overhead = 2 * OptimizerSession.tensorOverheadBytes + OptimizerSession.sessionOverheadBytes
        #expect(admitted == (17 + testCase.stateElements) * 4 + overhead)

        try session.upload(Self.shapes.map { ($0.0, $0.1, [Float](repeating: 0.5, count: TensorShape($0.1).elementCount)) })
        #expect(session.memoryFootprint() == admitted)
        let terms = testCase.optimizer == "mtadam" ? 2 : 1
        let gradients = (0..<terms).flatMap { term in
            Self.shapes.map { (terms == 1 ? $0.0 : "\(term)/\($0.0)", $0.1, [Float](repeating: 0.1, count: TensorShape($0.1).elementCount)) }
        }
        let loss: Double? = testCase.optimizer.hasPrefix("momo") ? 1 : nil
        try session.step(gradients, loss: loss)
        try session.step(gradients, loss: loss)
        #expect(session.states.reduce(0) { $0 + $1.tensorBytes } == 4 * testCase.stateElements)
        #expect(session.memoryFootprint() == admitted)
    }

    @Test func uploadsOfExistingNamesAddNothing() throws {
        let session = try OptimizerSession.make("adam")
        try session.upload([("w", [4], [1, 2, 3, 4])])
        let before = session.memoryFootprint()
        #expect(session.memoryFootprint(adding: [(name: "w", shape: TensorShape([4]))]) == before)
        let twice = [(name: "v", shape: TensorShape([4])), (name: "v", shape: TensorShape([4]))]
        #expect(session.memoryFootprint(adding: twice) == before + 12 * 4 + OptimizerSession.tensorOverheadBytes)
    }

    @Test func aChangeThatAddsStateCountsIt() throws {
        let session = try OptimizerSession.make("adam")
        try session.upload([("w", [4], [1, 2, 3, 4])])
        let amsgrad = try session.configuration.patched(hyperparameters: ["amsgrad": .bool(true)])
        #expect(session.memoryFootprint(configuration: amsgrad) == session.memoryFootprint() + 4 * 4)
    }

    @Test func stateAlreadyHeldIsCountedWhenTheConfigurationNoLongerCreatesIt() throws {
        let session = try OptimizerSession.make("sgd", ["momentum": .number(0.9)])
        try session.upload([("w", [4], [1, 2, 3, 4])])
        try session.step([("w", [4], [1, 1, 1, 1])])
        let held = session.memoryFootprint()
        let withoutMomentum = try session.configuration.patched(hyperparameters: ["momentum": .number(0)])
        #expect(session.memoryFootprint(configuration: withoutMomentum) == held)
    }
}
