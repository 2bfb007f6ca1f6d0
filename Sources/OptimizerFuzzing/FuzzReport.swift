/// What one fuzz input did: the stages it went through and the error each one threw, if any.
///
/// Errors are the expected outcome of most inputs; what a fuzz target must never do is crash, hang,
/// allocate without bound or break an invariant (those stop the process with `fatalError`, which
/// libFuzzer reports). Regression tests read the report to check that a fixed input now fails
/// with the right error.
public struct FuzzReport: CustomStringConvertible {
    /// One stage of the input's processing.
    public struct Stage {
        /// What was attempted (`"parse"`, `"parameters"`, `"step 1"`, ...).
        public let name: String
        /// What it threw, or `nil` when it succeeded.
        public let error: (any Error)?
    }

    /// The stages in the order they ran.
    public private(set) var stages: [Stage] = []

    /// The errors thrown, in order.
    public var errors: [any Error] { stages.compactMap(\.error) }

    /// The stage named `name`, if it ran.
    public func stage(_ name: String) -> Stage? { stages.first { $0.name == name } }

    public var description: String {
        stages.map { "\($0.name): \($0.error.map { "\(type(of: $0)): \($0)" } ?? "ok")" }.joined(separator: "\n")
    }

    /// Runs `body` as stage `name`; returns its result, or `nil` after recording what it threw.
    ///
    /// An error that `isExpected` refuses is a bug (the daemon would answer 500), so it stops the
    /// process like a crash.
    @discardableResult
    mutating func run<Result>(
        _ name: String,
        expecting isExpected: (any Error) -> Bool,
        _ body: () throws -> Result
    ) -> Result? {
        do {
            let result = try body()
            stages.append(Stage(name: name, error: nil))
            return result
        } catch {
            guard isExpected(error) else {
                fuzzFailure("stage \(name) threw an unexpected \(type(of: error)): \(error)")
            }
            stages.append(Stage(name: name, error: error))
            return nil
        }
    }
}

/// Stops the process: an invariant the fuzzer checks does not hold.
func fuzzFailure(_ message: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz invariant violated: \(message)", file: file, line: line)
}

/// Checks an invariant; see ``fuzzFailure(_:file:line:)``.
func fuzzCheck(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #file, line: UInt = #line) {
    if !condition { fuzzFailure(message(), file: file, line: line) }
}
