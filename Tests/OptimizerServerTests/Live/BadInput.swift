import Foundation
import HTTPTypes
import NIOCore

/// One row of the bad-input table: how to build the request, what must come back.
struct BadInput: Sendable, CustomStringConvertible {
    struct Request {
        var uri: String
        var method: HTTPRequest.Method
        var headers: HTTPFields
        var body: ByteBuffer?
    }

    var name: String
    /// The session's create body (Adam by default).
    var createBody = #"{"optimizer":"adam"}"#
    var status: Int
    /// A piece of the problem detail (the field, tensor or problem it must name).
    var detailContains: String
    /// Steps the request legitimately advances (1 for a reported skipped step).
    var stepAdvance = 0
    /// Builds the request for a session.
    var make: @Sendable (CreatedSession) throws -> Request

    var description: String { name }

    func request(_ session: CreatedSession) throws -> Request { try make(session) }

    /// A valid step for this row's optimizer.
    func validStep(_ step: Int) throws -> ByteBuffer {
        var metadata = ["step": String(step), "loss": "1.0"]
        if createBody.contains("mtadam") {
            metadata["loss"] = "[1.0, 2.0]"
            return try Body.tensors(
                [("0/w", [2, 2], [0.1, 0.2, 0.3, 0.4]), ("0/b", [2], [0.1, 0.1]), ("1/w", [2, 2], [0.4, 0.3, 0.2, 0.1]), ("1/b", [2], [0, 1])],
                metadata: metadata)
        }
        return try Body.tensors([("w", [2, 2], [0.1, 0.2, 0.3, 0.4]), ("b", [2], [0.1, 0.1])], metadata: metadata)
    }

    // MARK: Building requests

    static func step(
        _ body: @escaping @Sendable () throws -> ByteBuffer, headers: HTTPFields = [:], query: String = ""
    )
        -> @Sendable (CreatedSession) throws -> Request
    {
        { session in
            var all = session.auth
            for field in headers { all[field.name] = field.value }
            return Request(uri: session.path + "/step" + query, method: .post, headers: all, body: try body())
        }
    }

    /// A safetensors buffer with a hand-written header (for malformed ones).
    static func raw(_ header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(declaredLength ?? UInt64(header.utf8.count), endianness: .little)
        buffer.writeString(header)
        buffer.writeBytes(data)
        return buffer
    }

    static let sixteenBytes = [UInt8](repeating: 0, count: 16)

    /// 200 bytes of garbage (a fixed seed): read as a length, the first 8 are far past the body.
    static let randomBytes: [UInt8] = {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return (0..<200).map { _ in
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }()

    static let rows: [BadInput] = [
        BadInput(name: "body over --max-body-bytes", status: 413, detailContains: "limit") { session in
            try step({ try Body.tensors([("w", [80_000], [Float](repeating: 0.1, count: 80_000))]) })(session)
        },
        BadInput(name: "gzip body inflating past the limit", status: 413, detailContains: "decompression") { session in
            try step({ try compressed(ByteBuffer(repeating: 0, count: 8 << 20)) }, headers: [.contentEncoding: "gzip"])(session)
        },
        BadInput(name: "short header", status: 400, detailContains: "8-byte", make: step({ ByteBuffer(bytes: [1, 2, 3]) })),
        BadInput(
            name: "header length past the body", status: 400, detailContains: "header length",
            make: step({ raw("{}", declaredLength: 4096) })),
        BadInput(
            name: "200 random bytes as a step", status: 400, detailContains: "header length",
            make: step({ ByteBuffer(bytes: randomBytes) })),
        BadInput(name: "200 random bytes as parameters", status: 400, detailContains: "header length") { session in
            Request(uri: session.path + "/parameters", method: .put, headers: session.auth, body: ByteBuffer(bytes: randomBytes))
        },
        BadInput(name: "invalid JSON header", status: 400, detailContains: "JSON", make: step({ raw("{\"w\": nope}") })),
        BadInput(
            name: "offsets out of range", status: 400, detailContains: "w",
            make: step({ raw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,64]}}"#, data: sixteenBytes) })),
        BadInput(
            name: "overlapping offsets", status: 400, detailContains: "overlap",
            make: step({
                raw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, data: sixteenBytes)
            })),
        BadInput(
            name: "gap between tensors", status: 400, detailContains: "belong to no tensor",
            make: step({
                raw(#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}"#, data: sixteenBytes)
            })),
        BadInput(
            name: "bytes differ from shape × dtype", status: 400, detailContains: "w",
            make: step({ raw(#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}}"#, data: [UInt8](repeating: 0, count: 12)) })),
        BadInput(
            name: "unknown dtype", status: 400, detailContains: "F99",
            make: step({ raw(#"{"w":{"dtype":"F99","shape":[2,2],"data_offsets":[0,16]}}"#, data: sixteenBytes) })),
        BadInput(
            name: "unsupported dtype for a gradient", status: 400, detailContains: "w",
            make: step({ raw(#"{"w":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#, data: sixteenBytes) })),
        BadInput(
            name: "unknown tensor name", status: 422, detailContains: "\"x\"",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1]), ("x", [2], [1, 1])]) })),
        BadInput(name: "wrong shape", status: 422, detailContains: "\"w\"", make: step({ try Body.tensors([("w", [4], [1, 1, 1, 1])]) })),
        BadInput(
            name: "missing term (mtadam)", createBody: #"{"optimizer":"mtadam","hyperparameters":{"terms":2}}"#, status: 422,
            detailContains: "1/w", make: step({ try Body.tensors([("0/w", [2, 2], [1, 1, 1, 1]), ("0/b", [2], [1, 1])]) })),
        BadInput(
            name: "missing tensor (momo)", createBody: #"{"optimizer":"momo"}"#, status: 422, detailContains: "\"b\"",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], metadata: ["loss": "1"]) })),
        BadInput(
            name: "duplicate: dense and sparse", status: 422, detailContains: "\"w\"",
            make: step({ try Body().float("w", [2, 2], [1, 1, 1, 1]).int64("w.indices", [0]).float("w.values", [1], [1]).buffer })),
        BadInput(
            name: "sparse index out of range", status: 422, detailContains: "w.indices",
            make: step({ try Body().int64("w.indices", [4]).float("w.values", [1], [1]).buffer })),
        BadInput(
            name: "sparse indices without values", status: 400, detailContains: "no matching 'w.values'",
            make: step({ try Body().int64("w.indices", [1]).buffer })),
        BadInput(name: "NaN gradient (reject)", status: 422, detailContains: "\"w\"", make: step({ try Body.tensors([("w", [2, 2], [1, .nan, 1, 1])]) })),
        BadInput(
            name: "Inf gradient (skip)", createBody: #"{"optimizer":"adam","hyperparameters":{"nonfinite":"skip"}}"#, status: 200,
            detailContains: "", stepAdvance: 1, make: step({ try Body.tensors([("w", [2, 2], [1, .infinity, 1, 1])]) })),
        BadInput(
            name: "unknown Content-Encoding", status: 415, detailContains: "br",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1])]) }, headers: [.contentEncoding: "br"])),
        BadInput(
            name: "wrong step", status: 409, detailContains: "at step 1",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], metadata: ["step": "5"]) })),
        BadInput(
            name: "bad metadata", status: 400, detailContains: "__metadata__.grad_scale",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], metadata: ["grad_scale": "huge"]) })),
        BadInput(
            name: "bad grad_scale value", status: 422, detailContains: "grad_scale",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1])], metadata: ["grad_scale": "0"]) })),
        BadInput(
            name: "bad query", status: 400, detailContains: "return",
            make: step({ try Body.tensors([("w", [2, 2], [1, 1, 1, 1])]) }, query: "?return=all")),
        BadInput(name: "bad JSON (PATCH)", status: 400, detailContains: "body") { session in
            Request(uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: "{\"hyperparameters\":"))
        },
        BadInput(name: "bad hyperparameter (PATCH)", status: 400, detailContains: "hyperparameters.betas") { session in
            Request(uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: #"{"hyperparameters":{"betas":[1,2]}}"#))
        },
        BadInput(name: "unknown hyperparameter (PATCH)", status: 400, detailContains: "hyperparameters.momentum") { session in
            Request(uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: #"{"hyperparameters":{"momentum":0.9}}"#))
        },
        BadInput(name: "unknown optimizer (create)", status: 400, detailContains: "optimizer") { _ in
            Request(uri: "/v1/sessions", method: .post, headers: [:], body: ByteBuffer(string: #"{"optimizer":"lion"}"#))
        },
        BadInput(name: "missing token", status: 401, detailContains: "Bearer") { session in
            Request(uri: session.path + "/step", method: .post, headers: [:], body: try Body.tensors([("w", [2, 2], [1, 1, 1, 1])]))
        },
        BadInput(name: "another session's token", status: 403, detailContains: "not valid") { session in
            Request(
                uri: session.path + "/step", method: .post, headers: [.authorization: "Bearer ozt_someone_else"],
                body: try Body.tensors([("w", [2, 2], [1, 1, 1, 1])]))
        },
        BadInput(name: "unknown session", status: 404, detailContains: "no session") { session in
            Request(
                uri: "/v1/sessions/00000000-0000-0000-0000-000000000000/step", method: .post, headers: session.auth,
                body: try Body.tensors([("w", [2, 2], [1, 1, 1, 1])]))
        },
    ]
}
