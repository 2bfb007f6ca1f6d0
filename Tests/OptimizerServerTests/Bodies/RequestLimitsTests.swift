import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

@testable import OptimizerServer

/// The safetensors limits of request bodies (``RequestLimits/safetensors``): each refusal names the
/// limit, and the session is untouched.
struct RequestLimitsTests {
    /// A safetensors body whose header lists `count` empty tensors.
    private static func emptyTensors(_ count: Int, name: (Int) -> String = { "t\($0)" }) -> ByteBuffer {
        var header = "{"
        for index in 0..<count {
            if index > 0 { header += "," }
            header += #""\#(name(index))":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}"#
        }
        header += "}"
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt64(header.utf8.count), endianness: .little)
        buffer.writeString(header)
        return buffer
    }

    private func refused(
        _ body: ByteBuffer, route: String = "/step", method: HTTPRequest.Method = .post
    )
        async throws -> (status: HTTPResponse.Status, type: String, detail: String)
    {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let before = try await client.parameterBytes(session)
            let response = try await client.execute(uri: session.path + route, method: method, headers: session.auth, body: body)
            let answer = try problem(response)
            #expect(try await client.parameterBytes(session) == before)
            #expect(try await client.summary(session)["step"] as? Int == 0)
            return (response.status, answer.type, answer.detail)
        }
    }

    @Test func moreTensorsThanTheLimitAre400NamingTheCount() async throws {
        let limit = RequestLimits.safetensors.maxTensorCount
        let answer = try await refused(Self.emptyTensors(limit + 1))
        #expect(answer.status == .badRequest)
        #expect(answer.type == "urn:optimizerd:problem:safetensors-limit-exceeded")
        #expect(answer.detail.contains("more than \(limit) tensors"), "\(answer.detail)")
    }

    @Test(arguments: ["/step", "/parameters", "/checkpoint"])
    func overlongTensorNameIs400NamingTheTensor(route: String) async throws {
        let name = String(repeating: "n", count: RequestLimits.safetensors.maxNameBytes + 1)
        let answer = try await refused(Self.emptyTensors(1) { _ in name }, route: route, method: route == "/step" ? .post : .put)
        #expect(answer.status == .badRequest)
        #expect(answer.detail.contains("nnnnnnnn"), "\(answer.detail)")
        #expect(answer.detail.contains("limit of \(RequestLimits.safetensors.maxNameBytes)"), "\(answer.detail)")
    }

    @Test func headerOverItsLimitIs413() async throws {
        let length = RequestLimits.safetensors.maxHeaderBytes + 1
        var body = ByteBuffer()
        body.writeInteger(UInt64(length), endianness: .little)
        body.writeString("{}" + String(repeating: " ", count: length - 2))  // really in the body
        let answer = try await refused(body)
        #expect(answer.status == .contentTooLarge)
        #expect(answer.type == "urn:optimizerd:problem:safetensors-header-too-large")
        #expect(answer.detail.contains("\(RequestLimits.safetensors.maxHeaderBytes)"), "\(answer.detail)")
    }

    /// A length past the end of the body is malformed, however large: 400, not 413.
    @Test func headerLengthPastTheBodyIs400WhateverItsSize() async throws {
        var body = ByteBuffer()
        body.writeInteger(UInt64(RequestLimits.safetensors.maxHeaderBytes + 1), endianness: .little)
        body.writeString("{}")
        let answer = try await refused(body)
        #expect(answer.status == .badRequest)
        #expect(answer.type == "urn:optimizerd:problem:malformed-safetensors")
        #expect(answer.detail.contains("only 2 bytes follow"), "\(answer.detail)")
    }

    @Test func jsonBodyOverOneMebibyteIs413OnPatchToo() async throws {
        let huge = #"{"hyperparameters":{"lr":0.1},"groups":[{"parameters":[""# + String(repeating: "x", count: 1 << 20) + #""]}]}"#
        let answer = try await refused(ByteBuffer(string: huge), route: "", method: .patch)
        #expect(answer.status == .contentTooLarge)
        #expect(answer.detail.contains("\(RequestLimits.maxJSONBodyBytes)"))
    }

    @Test func writeAheadLogRecordsAreReadWithoutTheRequestLimits() throws {
        let body = Self.emptyTensors(3) { "tensor-\($0)" }
        let strict = SafetensorsHeader.Limits(maxTensorCount: 2)
        #expect(throws: SafetensorsError.self) { try TensorPayload(parsing: body, limits: strict) }
        #expect(try TensorPayload(parsing: body).header.tensors.count == 3)
    }
}
