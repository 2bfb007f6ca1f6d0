import Testing

@testable import OptimizerKit

/// `Reduction.firstNonFinite` against the value-by-value definition.
struct FiniteScanTests {
    private static let nonFinite: [Float] = [
        .nan, -.nan, .infinity, -.infinity, .signalingNaN, Float(bitPattern: 0x7FC0_1234), Float(bitPattern: 0xFF80_0001),
    ]

    @Test func finiteValuesHaveNone() {
        let values: [Float] = (0..<1000).map { Float($0) * 1e30 - 3e32 } + [.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .leastNonzeroMagnitude, -0.0]
        #expect(values.withUnsafeBufferPointer(Reduction.firstNonFinite) == nil)
    }

    @Test(arguments: [0, 1, 15, 16, 63, 64, 65, 127, 128, 200, 1000])
    func theFirstOfSeveralIsFound(count: Int) {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<50 {
            var values = (0..<count).map { _ in Float.random(in: -1e38...1e38, using: &generator) }
            for _ in 0..<Int.random(in: 0...3, using: &generator) where count > 0 {
                values[Int.random(in: 0..<count, using: &generator)] = Self.nonFinite.randomElement(using: &generator)!
            }
            let expected = values.firstIndex { !$0.isFinite }
            #expect(values.withUnsafeBufferPointer(Reduction.firstNonFinite) == expected, "\(count)")
        }
    }

    @Test func everyPositionOfARoundIsSeen() {
        for position in 0..<130 {
            for value in Self.nonFinite {
                var values = [Float](repeating: 1, count: 130)
                values[position] = value
                #expect(values.withUnsafeBufferPointer(Reduction.firstNonFinite) == position)
            }
        }
    }
}
