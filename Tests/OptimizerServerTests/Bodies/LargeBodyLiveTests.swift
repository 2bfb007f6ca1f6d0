import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import OptimizerWire
import Testing

/// Bodies of several MiB over a real socket: they are received into, and answered from, pooled
/// buffers reused from one request to the next (``BufferPool``), whatever their framing —
/// `Content-Length`, chunked, gzip — and also after a client vanished mid-body.
struct LargeBodyLiveTests {
    /// 6 MB of float32: well above the pool's 1 MiB threshold.
    private let count = 1_500_000

    private var initial: [Float] { (0..<count).map { Float($0 % 1000) } }

    /// An SGD session (lr 0.5: a step is w − 0.5·g) holding ``initial``.
    private func session(_ client: some TestClientProtocol) async throws -> CreatedSession {
        let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":0.5}}"#)
        try await client.putParameters(session, try Body.tensors([("w", [count], initial)]))
        return session
    }

    private func gradient(_ value: Float) throws -> ByteBuffer {
        try Body.tensors([("w", [count], [Float](repeating: value, count: count))])
    }

    /// Whether every parameter is `initial − offset`.
    private func isShifted(_ values: [Float], by offset: Float) -> Bool {
        values.count == count && zip(values, initial).allSatisfy { $0 == $1 - offset }
    }

    @Test func consecutiveLargeStepsAnswerExactlyFromReusedBuffers() async throws {
        try await makeApp().test(.live) { client in
            let session = try await session(client)
            var offset: Float = 0
            for step in 1...4 {
                let response = try await client.execute(
                    uri: session.path + "/step", method: .post, headers: session.auth, body: try gradient(Float(step)))
                #expect(response.status == .ok)
                offset += 0.5 * Float(step)
                #expect(isShifted(try safetensors(response.body).floats(named: "w"), by: offset), "step \(step)")
            }
            #expect(isShifted(try safetensors(try await client.parameterBytes(session)).floats(named: "w"), by: offset))
        }
    }

    @Test func aLargeGzipBodyIsInflatedIntoAPooledBuffer() async throws {
        try await makeApp().test(.live) { client in
            let session = try await session(client)
            let response = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth.merging([.contentEncoding: "gzip"]),
                body: try compressed(try gradient(2)))
            #expect(response.status == .ok)
            #expect(isShifted(try safetensors(response.body).floats(named: "w"), by: 1))
        }
    }

    @Test func aLargeChunkedBodyWithoutContentLengthIsReceivedWhole() async throws {
        try await makeApp().test(.live) { client in
            let session = try await session(client)
            let port = try #require(client.port)
            let body = Array(try gradient(4).readableBytesView)
            let answer = try await NIOThreadPool.singleton.runIfActive {
                let socket = try RawSocket(port: port)
                try socket.send(
                    "POST \(session.path)/step?return=none HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(session.token)\r\n"
                        + "Transfer-Encoding: chunked\r\n\r\n")
                for start in stride(from: 0, to: body.count, by: 700_000) {
                    let chunk = body[start..<min(start + 700_000, body.count)]
                    try socket.send(String(chunk.count, radix: 16) + "\r\n")
                    try socket.send(Array(chunk) + Array("\r\n".utf8))
                }
                try socket.send("0\r\n\r\n")
                return try socket.receive(until: "durable_step", seconds: 30)
            }
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer.prefix(200))")
            #expect(isShifted(try safetensors(try await client.parameterBytes(session)).floats(named: "w"), by: 2))
        }
    }

    @Test func aClientVanishingMidBodyChangesNothingAndLaterLargeBodiesStillWork() async throws {
        try await makeApp().test(.live) { client in
            let session = try await session(client)
            let port = try #require(client.port)
            let body = Array(try gradient(8).readableBytesView)
            try await NIOThreadPool.singleton.runIfActive {
                let socket = try RawSocket(port: port)
                try socket.send(
                    "POST \(session.path)/step HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(session.token)\r\n"
                        + "Content-Length: \(body.count)\r\n\r\n")
                try socket.send(Array(body[..<(body.count / 3)]))
            }  // the socket closes here, two thirds of the body unsent
            #expect(isShifted(try safetensors(try await client.parameterBytes(session)).floats(named: "w"), by: 0))
            let response = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth, body: try gradient(2))
            #expect(response.status == .ok)
            #expect(isShifted(try safetensors(response.body).floats(named: "w"), by: 1))
        }
    }
}
