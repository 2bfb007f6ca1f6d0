import Foundation

/// Hyperparameter overrides for the parameters whose names match one of `patterns`.
///
/// Patterns are globs over the whole parameter name: `*` matches any run of characters (including
/// dots), `?` matches one character; everything else matches itself. A parameter belongs to the first
/// group with a matching pattern, and to the session's default hyperparameters otherwise.
public struct ParameterGroup: Sendable, Hashable, Codable {
    /// Name globs, e.g. `["*.bias", "norm.*"]`.
    public var parameters: [String]
    /// Overrides on top of the session's hyperparameters.
    public var hyperparameters: Hyperparameters

    /// Creates a group.
    public init(parameters: [String], hyperparameters: Hyperparameters) {
        self.parameters = parameters
        self.hyperparameters = hyperparameters
    }

    /// Whether `name` matches one of the group's patterns.
    public func matches(_ name: String) -> Bool {
        // Names are in NFC (``OptimizerSession`` refuses others); a pattern given in another spelling
        // is matched in NFC too, so that it means what it reads as.
        parameters.contains { Glob.matches(pattern: Array($0.precomposedStringWithCanonicalMapping.unicodeScalars), name: Array(name.unicodeScalars)) }
    }
}

/// Minimal glob matching with `*` and `?` over Unicode scalars (`?` is one character, `é` too),
/// iterative with single backtracking point (linear-ish, no recursion).
enum Glob {
    static func matches(pattern: [Unicode.Scalar], name: [Unicode.Scalar]) -> Bool {
        var p = 0
        var n = 0
        var star = -1
        var mark = 0
        let asterisk: Unicode.Scalar = "*"
        let question: Unicode.Scalar = "?"
        while n < name.count {
            if p < pattern.count, pattern[p] == question || pattern[p] == name[n] {
                p += 1
                n += 1
            } else if p < pattern.count, pattern[p] == asterisk {
                star = p
                mark = n
                p += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                n = mark
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == asterisk { p += 1 }
        return p == pattern.count
    }
}
