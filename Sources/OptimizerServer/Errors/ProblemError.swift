import Foundation
import HTTPTypes
import Hummingbird
import OptimizerKit

/// An RFC 9457 problem: every error the daemon answers with is one of these.
///
/// The body is `application/problem+json`: `{"type","title","status","detail"}`. `detail` names the
/// offending field or tensor. Library errors (``OptimizerKit/OptimizerError``,
/// ``OptimizerWire/SafetensorsError``, decoding errors) are mapped to problems at the HTTP edge only,
/// in ``ProblemError/init(mapping:)``.
public struct ProblemError: HTTPResponseError, Sendable, CustomStringConvertible {
    /// The HTTP status.
    public let status: HTTPResponse.Status
    /// A short, stable slug for the kind of problem (`type` becomes `urn:optimizerd:problem:<slug>`).
    public let kind: String
    /// A sentence saying what is wrong and naming the field or tensor.
    public let detail: String
    /// Extra response headers (e.g. `WWW-Authenticate` on 401).
    public var headers: HTTPFields = [:]

    /// Creates a problem.
    public init(_ status: HTTPResponse.Status, kind: String, detail: String) {
        self.status = status
        self.kind = kind
        self.detail = detail
    }

    /// The `type` URI.
    public var type: String { "urn:optimizerd:problem:\(kind)" }

    /// The `title`: the status's reason phrase.
    public var title: String { status.reasonPhrase }

    public var description: String { "\(status.code) \(kind): \(detail)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/problem+json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// The JSON body.
    var body: Data {
        let object: [String: ProblemField] = [
            "type": .text(type), "title": .text(title), "status": .number(Int(status.code)), "detail": .text(detail),
        ]
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(object)) ?? Data("{}".utf8)
    }

    private enum ProblemField: Encodable {
        case text(String)
        case number(Int)

        func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .text(let value): try container.encode(value)
            case .number(let value): try container.encode(value)
            }
        }
    }
}

// MARK: Factories

extension ProblemError {
    static func badRequest(_ kind: String, _ detail: String) -> ProblemError { .init(.badRequest, kind: kind, detail: detail) }

    static func unprocessable(_ kind: String, _ detail: String) -> ProblemError {
        .init(.unprocessableContent, kind: kind, detail: detail)
    }

    static func notFound(_ detail: String) -> ProblemError { .init(.notFound, kind: "not-found", detail: detail) }

    static func conflict(_ kind: String, _ detail: String) -> ProblemError { .init(.conflict, kind: kind, detail: detail) }

    static func unauthorized(_ detail: String) -> ProblemError {
        var problem = ProblemError(.unauthorized, kind: "unauthorized", detail: detail)
        problem.headers[.wwwAuthenticate] = "Bearer"
        return problem
    }

    static func forbidden(_ detail: String) -> ProblemError { .init(.forbidden, kind: "forbidden", detail: detail) }

    static func methodNotAllowed(_ method: HTTPRequest.Method, path: String, allowed: [HTTPRequest.Method]) -> ProblemError {
        let list = allowed.map(\.rawValue).joined(separator: ", ")
        var problem = ProblemError(
            .methodNotAllowed, kind: "method-not-allowed", detail: "\(method.rawValue) is not allowed on \(path); allowed: \(list)")
        problem.headers[.allow] = list
        return problem
    }

    static func bodyTooLarge(limit: Int) -> ProblemError {
        .init(
            .contentTooLarge, kind: "body-too-large",
            detail: "the request body exceeds the limit of \(limit) bytes for this route, before or after decompression")
    }

    static func incompleteBody(_ error: any Error) -> ProblemError {
        .init(
            .badRequest, kind: "incomplete-body",
            detail: "the request body ended before it was complete: the connection was closed, reset or idle too long (\(error))")
    }

    static func unsupportedEncoding(_ encoding: String) -> ProblemError {
        var problem = ProblemError(
            .unsupportedMediaType, kind: "unsupported-content-encoding",
            detail: "Content-Encoding \"\(encoding.abbreviated)\" is not supported; use gzip, deflate or identity"
        )
        problem.headers[.acceptEncoding] = "gzip, deflate, identity"
        return problem
    }
}
