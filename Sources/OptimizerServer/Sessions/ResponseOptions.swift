import OptimizerKit
import OptimizerWire

/// What a step or parameter download returns: from the query string (`return=`, `dtype=`).
struct ResponseOptions: Sendable, Hashable {
    /// What the step response carries.
    enum Content: String, Sendable, CaseIterable {
        /// The updated parameters (default).
        case params
        /// θ_after − θ_before.
        case delta
        /// No tensors, only `__metadata__`.
        case none
    }

    var content: Content = .params
    var dtype: WireFloat = .f32

    /// Parses `return` and `dtype` query values.
    ///
    /// - Throws: ``ProblemError`` (400) naming the query parameter.
    init(returnValue: String?, dtypeValue: String?) throws {
        if let returnValue {
            guard let content = Content(rawValue: returnValue) else {
                throw ProblemError.badRequest(
                    "invalid-query", "query parameter return: expected params, delta or none, got \"\(returnValue.abbreviated)\"")
            }
            self.content = content
        }
        if let dtypeValue {
            guard let dtype = WireFloat(rawValue: dtypeValue.lowercased()) else {
                throw ProblemError.badRequest(
                    "invalid-query", "query parameter dtype: expected f32, f16 or bf16, got \"\(dtypeValue.abbreviated)\"")
            }
            self.dtype = dtype
        }
    }

    init(content: Content = .params, dtype: WireFloat = .f32) {
        self.content = content
        self.dtype = dtype
    }
}
