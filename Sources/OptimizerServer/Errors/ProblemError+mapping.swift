import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import OptimizerKit
import OptimizerStore
import OptimizerWire

extension ProblemError {
    /// The problem to answer for any error a route throws: the one place where library errors get
    /// HTTP statuses.
    ///
    /// - ``OptimizerError``: configuration problems (unknown optimizer or hyperparameter, bad value)
    ///   → 400; tensor and step-input problems (unknown, missing or duplicate tensor, wrong shape,
    ///   NaN/Inf, missing loss) → 422.
    /// - ``SafetensorsError``: malformed bodies → 400, also past a limit on tensors or names
    ///   (``RequestLimits/safetensors``); a header over its size limit → 413; a sparse index outside
    ///   its parameter → 422.
    /// - ``StepRequestError``: a step's `__metadata__` of the wrong form → 400, a `step` out of
    ///   sequence → 409.
    /// - ``StoreError``: disk full → 507, data directory read-only or unavailable → 503, a checkpoint
    ///   that does not fit → 422.
    /// - ``MemoryBudgetExceeded``: the request would pass `--max-memory` → 507 naming the budget,
    ///   what is in use and what the request needs; a step that only has to wait for the requests
    ///   being served to give their memory back → 503 `memory-busy` with `Retry-After`.
    /// - ``JSONBodyError`` (a JSON body with a key twice, or not JSON) → 400 naming the member
    ///   (`duplicate-key`) or saying where the JSON breaks (`invalid-json`).
    /// - `DecodingError` (JSON bodies) → 400 naming the field.
    /// - Hummingbird's `HTTPError` keeps its status (404 for unknown routes).
    /// - Anything else → 500 without details (the error is logged).
    init(mapping error: any Error) {
        switch error {
        case let problem as ProblemError:
            self = problem
        case let error as OptimizerError:
            self = ProblemError(
                error.code.isConfigurationError ? .badRequest : .unprocessableContent,
                kind: Self.kebab(error.code.description),
                detail: error.message
            )
        case let error as SafetensorsError:
            switch error.code {
            case .sparseIndexOutOfRange:
                self = ProblemError(.unprocessableContent, kind: "sparse-index-out-of-range", detail: error.description)
            case .headerTooLarge:
                self = ProblemError(.contentTooLarge, kind: "safetensors-header-too-large", detail: error.description)
            case .limitExceeded:
                self = ProblemError(.badRequest, kind: "safetensors-limit-exceeded", detail: error.description)
            default:
                self = ProblemError(.badRequest, kind: "malformed-safetensors", detail: error.description)
            }
        case let refusal as MemoryBudgetExceeded where refusal.isTransient:
            self = ProblemError(
                .serviceUnavailable, kind: "memory-busy",
                detail: "\(refusal), which the requests being served hold for now; nothing was changed, retry shortly")
            headers[.retryAfter] = "1"
        case let refusal as MemoryBudgetExceeded:
            self = ProblemError(
                HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), kind: Self.memoryBudgetExceeded,
                detail: "\(refusal); nothing was changed (delete sessions or raise --max-memory)")
        case let error as StepRequestError:
            switch error.code {
            case .stepMismatch:
                self = ProblemError(.conflict, kind: "step-mismatch", detail: error.description)
            default:
                self = ProblemError(.badRequest, kind: "invalid-metadata", detail: error.description)
            }
        case let error as StoreError:
            switch error.code {
            case .noSpace:
                self = ProblemError(
                    HTTPResponse.Status(code: 507, reasonPhrase: "Insufficient Storage"), kind: "insufficient-storage",
                    detail: "the data directory is full, nothing was changed; retry when space is freed (\(error.message))")
            case .unavailable:
                self = ProblemError(
                    .serviceUnavailable, kind: "storage-unavailable",
                    detail: "the data directory cannot be written, nothing was changed (\(error.message))")
            case .corrupt:
                self = ProblemError(.unprocessableContent, kind: "invalid-checkpoint", detail: error.message)
            default:
                self = ProblemError(.internalServerError, kind: "storage-error", detail: "storage error, nothing was changed")
            }
        case let error as JSONBodyError:
            self = ProblemError.badRequest(error.kind == .duplicateKey ? "duplicate-key" : "invalid-json", error.description)
        case let error as DecodingError:
            self = ProblemError.badRequest("invalid-json", Self.describe(error))
        case let error as HTTPError:
            self = ProblemError(error.status, kind: Self.kebab(error.status.reasonPhrase), detail: error.body ?? error.status.reasonPhrase)
        case is NIOTooManyBytesError:
            self = ProblemError(.contentTooLarge, kind: "body-too-large", detail: "the request body is too large")
        case is NIOThreadPoolError.ThreadPoolInactive:
            self = ProblemError(.serviceUnavailable, kind: "shutting-down", detail: "the daemon is shutting down")
        default:
            self = ProblemError(.internalServerError, kind: "internal", detail: "internal error")
        }
    }

    /// The kind of a memory-budget refusal (507).
    static let memoryBudgetExceeded = "memory-budget-exceeded"

    /// `unknownHyperparameter` / `Not Found` → `unknown-hyperparameter` / `not-found`.
    private static func kebab(_ text: String) -> String {
        var result = ""
        for character in text {
            if character.isUppercase, !result.isEmpty, result.last != "-" { result.append("-") }
            result.append(character == " " ? "-" : Character(character.lowercased()))
        }
        return result.replacingOccurrences(of: "--", with: "-")
    }

    /// A decoding error as "field: what is wrong". Member names come from the client (an unknown
    /// member is named), and so may Foundation's descriptions (an invalid enum value, a number
    /// out of range): both are abbreviated.
    private static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue {
                    text += "[\(index)]"
                } else {
                    text += text.isEmpty ? key.stringValue.abbreviated : ".\(key.stringValue.abbreviated)"
                }
            }
            return text.isEmpty ? "body" : text
        }
        switch error {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])): required"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(Self.jsonType(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)): expected \(Self.jsonType(type)), got null"
        case .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription.abbreviated(to: 200))"
        @unknown default:
            return "the body is not valid JSON for this route"
        }
    }

    private static func jsonType(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Double.Type, is Int.Type: return "a number"
        case is Bool.Type: return "true or false"
        default:
            let name = String(describing: type)
            return name.hasPrefix("Array") ? "a list" : name.hasPrefix("Dictionary") ? "an object" : "a \(name)"
        }
    }
}
