import OptimizerKit
import Testing

/// `String.abbreviated`, the one helper that quotes client input into errors and log lines.
struct AbbreviatedTests {
    @Test func shortStringsAreKeptWhole() {
        #expect("lr".abbreviated == "lr")
        #expect("".abbreviated == "")
        let hundred = String(repeating: "é", count: 100)
        #expect(hundred.abbreviated == hundred)
    }

    @Test func longStringsAreCutWithAnEllipsis() {
        let long = String(repeating: "z", count: 1_000_000)
        #expect(long.abbreviated == String(repeating: "z", count: 100) + "…")
        #expect(long.abbreviated(to: 3) == "zzz…")
    }

    /// One character may carry any number of combining marks: the cut counts scalars.
    @Test func oneHugeCharacterIsCutToo() {
        let character = "e" + String(repeating: "\u{301}", count: 100_000)
        #expect(character.count == 1)
        #expect(character.abbreviated.unicodeScalars.count == 101)
    }
}
