import Testing

@testable import OptimizerKit

/// Empty tensors whose other dimensions are huge. A request declares one in a few bytes (it has no
/// data), so nothing may multiply or allocate by those dimensions. Both cases were found by
/// fuzzing the request path (scripts/fuzz.sh; reproducers in Tests/FuzzCorpus/regressions/).
struct EmptyTensorTests {
    static let huge = [1 << 32, 1 << 32, 0]

    @Test func anEmptyShapeHasNoElementsWhateverItsOtherDimensions() {
        #expect(TensorShape(Self.huge).elementCount == 0)
        #expect(TensorShape([0, Int.max]).elementCount == 0)
        #expect(TensorShape([3, 0, 2]).elementCount == 0)
        #expect(TensorShape([]).elementCount == 1)
    }

    /// Used to trap on an overflowing element count while checking the upload.
    @Test func anEmptyParameterWithHugeDimensionsCanBeUploaded() throws {
        let session = try OptimizerSession.make("adam")
        try session.upload([("e", Self.huge, [])])
        #expect(session.parameters[0].count == 0)
    }

    /// Adafactor used to allocate its column statistics by the last dimension: 4 TB for [0, 10^12].
    @Test(arguments: OptimizerKind.allCases)
    func everyOptimizerStepsAnEmptyTensorWithoutStateSizedByItsDimensions(kind: OptimizerKind) throws {
        let session = try OptimizerSession.make(kind.rawValue, kind == .mtadam ? ["terms": .number(1)] : [:])
        let empty = [0, 1_000_000_000_000]
        try session.upload([("e", empty, []), ("w", [2], [1, 2])])
        try session.step([("e", empty, []), ("w", [2], [0.5, -0.5])], loss: 1)
        try session.step([("e", empty, []), ("w", [2], [0.25, 0.5])], loss: 0.5)
        let slots = session.states[session.parameterIndex(named: "e")!].all
        for slot in slots {
            if case .tensor(let tensor) = slot.value { #expect(tensor.count == 0, "\(slot.name) has \(tensor.count) elements") }
        }
        #expect(session.value("w") != [1, 2])
    }
}
