/// An error in a step request whose safetensors body is well formed but whose `__metadata__` is not
/// usable: a value a step cannot take, or a `step` number out of sequence.
///
/// Like ``SafetensorsError`` it never mentions HTTP; the server maps ``code`` to a status
/// (``Code-swift.struct/invalidMetadata`` 400, ``Code-swift.struct/stepMismatch`` 409).
/// ``description`` names the metadata key.
public struct StepRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What kind of problem an error reports.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: String, Sendable, Hashable {
            case invalidMetadata
            case stepMismatch
        }

        private let base: Base

        private init(_ base: Base) {
            self.base = base
        }

        /// A short identifier of the code, such as `"stepMismatch"`.
        public var description: String { base.rawValue }

        /// A `__metadata__` value of the wrong form (`step` not a non-negative integer, `loss` not a
        /// number, ...).
        public static let invalidMetadata = Code(.invalidMetadata)
        /// `__metadata__.step` is not the step this request would make.
        public static let stepMismatch = Code(.stepMismatch)
    }

    /// What kind of problem this is.
    public let code: Code
    /// The metadata key the error is about (`step`, `loss`, `term_weights`, `grad_scale`).
    public let key: String
    /// A sentence saying what is wrong, starting with `__metadata__.<key>`.
    public let description: String

    /// A metadata value of the wrong form.
    static func invalidMetadata(_ key: String, _ detail: String) -> StepRequestError {
        StepRequestError(code: .invalidMetadata, key: key, description: "__metadata__.\(key): \(detail)")
    }

    /// A `step` that is neither the next step nor (for a retry) the current one.
    static func stepMismatch(requested: Int, current: Int) -> StepRequestError {
        let retry = current > 0 ? ", or \(current) to retry the last one" : ""
        return StepRequestError(
            code: .stepMismatch, key: "step",
            description:
                "__metadata__.step is \(requested) but the session is at step \(current): send step \(current + 1) for the next step\(retry)"
        )
    }
}
