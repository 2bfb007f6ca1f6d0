import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import OptimizerWire
import Testing

@testable import OptimizerServer

/// What only a socket shows: stalled connections are closed after the idle timeout, oversized and
/// malformed request heads get a problem+json before the connection closes, and the daemon goes on
/// serving everyone else.
struct ConnectionLimitsLiveTests {
    /// A short idle timeout for these tests.
    static let idle = Duration.seconds(1)

    /// Runs `body` with a raw socket to a live daemon, off the cooperative pool.
    private func withSocket<T: Sendable>(
        _ body: @escaping @Sendable (_ port: Int, _ session: CreatedSession) throws -> T,
        then check: @Sendable (T) async throws -> Void
    ) async throws {
        try await makeApp().test(.live) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":1}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let port = try #require(client.port)
            let result = try await NIOThreadPool.singleton.runIfActive { try body(port, session) }
            try await check(result)
            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
        }
    }

    // MARK: Idle timeout

    /// A live daemon with a short idle timeout and a session. Every request goes over a fresh raw
    /// connection that sends at once: the test client's own connection would be closed whenever the
    /// test is slower than the idle timeout (a busy machine).
    private func withIdleDaemon(_ body: @escaping @Sendable (_ port: Int, _ session: CreatedSession) throws -> Void) async throws {
        try await makeApp(idleTimeout: Self.idle).test(.live) { client in
            let port = try #require(client.port)
            try await NIOThreadPool.singleton.runIfActive {
                let created = try Self.request(port, "POST /v1/sessions", body: Array(#"{"optimizer":"sgd","hyperparameters":{"lr":1}}"#.utf8))
                let object = try #require(try JSONSerialization.jsonObject(with: Self.body(of: created)) as? [String: Any])
                let session = CreatedSession(id: try #require(object["id"] as? String), token: try #require(object["token"] as? String))
                let parameters = Array(try Body.tensors([("w", [2], [1, 2])]).readableBytesView)
                let uploaded = try Self.request(port, "PUT \(session.path)/parameters", token: session.token, body: parameters)
                try #require(uploaded.hasPrefix("HTTP/1.1 200 OK"), "\(uploaded)")
                try body(port, session)
                #expect(try Self.request(port, "GET /healthz").hasPrefix("HTTP/1.1 200 OK"))
            }
        }
    }

    /// One request on its own connection (`Connection: close`): the whole answer.
    private static func request(_ port: Int, _ line: String, token: String? = nil, body: [UInt8] = []) throws -> String {
        let socket = try RawSocket(port: port)
        let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        try socket.send(Array("\(line) HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body)
        return try socket.receiveUntilClosed(seconds: 10)
    }

    private static func body(of answer: String) -> Data {
        answer.split(separator: "\r\n\r\n", maxSplits: 1).last.map { Data($0.utf8) } ?? Data()
    }

    /// The session's step, read over a fresh connection.
    private static func step(_ port: Int, _ session: CreatedSession) throws -> Int? {
        let answer = try request(port, "GET \(session.path)", token: session.token)
        return (try JSONSerialization.jsonObject(with: body(of: answer)) as? [String: Any])?["step"] as? Int
    }

    @Test func unfinishedRequestHeadIsClosedAfterTheIdleTimeout() async throws {
        try await withIdleDaemon { port, _ in
            let socket = try RawSocket(port: port)
            let started = ContinuousClock.now
            try socket.send("POST /v1/sessions HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            for _ in 0..<5 {  // a byte every 200 ms is no progress: the head never completes
                try socket.send("a")
                Thread.sleep(forTimeInterval: 0.2)
            }
            let answer = try socket.receiveUntilClosed(seconds: 10)
            #expect(answer.isEmpty, "\(answer)")
            #expect(ContinuousClock.now - started >= Self.idle)
        }
    }

    @Test func stalledBodyIsClosedAndTheSessionUnchanged() async throws {
        try await withIdleDaemon { port, session in
            let body = Array(try Body.tensors([("w", [2], [1, 1])]).readableBytesView)
            let socket = try RawSocket(port: port)
            try socket.send(
                "POST \(session.path)/step HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(session.token)\r\nContent-Length: \(body.count)\r\n\r\n")
            try socket.send(Array(body.prefix(10)))
            let answer = try socket.receiveUntilClosed(seconds: 10)
            #expect(!answer.contains("200 OK"), "\(answer)")
            #expect(try Self.step(port, session) == 0)
        }
    }

    @Test func idleKeepAliveConnectionIsClosedAfterItsAnswer() async throws {
        try await withIdleDaemon { port, _ in
            let socket = try RawSocket(port: port)
            try socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            let answer = try socket.receiveUntilClosed(seconds: 10)
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
        }
    }

    @Test func bodyArrivingSlowlyButSteadilyIsServed() async throws {
        try await withIdleDaemon { port, session in
            let body = Array(try Body.tensors([("w", [2], [1, 1])], metadata: ["step": "1"]).readableBytesView)
            let socket = try RawSocket(port: port)
            try socket.send(
                "POST \(session.path)/step?return=none HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(session.token)\r\n"
                    + "Content-Length: \(body.count)\r\n\r\n")
            // Twice the idle timeout in all, but never idle for long.
            let piece = max(1, body.count / 10)
            for start in stride(from: 0, to: body.count, by: piece) {
                try socket.send(Array(body[start..<min(body.count, start + piece)]))
                Thread.sleep(forTimeInterval: 0.2)
            }
            let answer = try socket.receive(until: "\r\n\r\n", seconds: 10)
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
            #expect(try Self.step(port, session) == 1)
        }
    }

    // MARK: Request heads

    @Test func headerFieldsOverTheLimitAre431ProblemJSON() async throws {
        try await withSocket { port, session in
            let socket = try RawSocket(port: port)
            let padding = String(repeating: "p", count: RequestLimits.maxHeaderBytes)
            try socket.send("GET \(session.path) HTTP/1.1\r\nHost: x\r\nX-Padding: \(padding)\r\n\r\n")
            return try socket.receiveUntilClosed(seconds: 10)
        } then: { answer in
            #expect(answer.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(answer)")
            #expect(answer.contains("application/problem+json"))
            #expect(answer.contains("\"status\":431"))
            #expect(answer.contains("\(RequestLimits.maxHeaderBytes) bytes"))
        }
    }

    @Test func tooManyHeaderFieldsAre431() async throws {
        try await withSocket { port, _ in
            let socket = try RawSocket(port: port)
            let fields = (0...RequestLimits.maxHeaderFields).map { "X-Field-\($0): x\r\n" }.joined()
            try socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\(fields)\r\n")
            return try socket.receiveUntilClosed(seconds: 10)
        } then: { answer in
            #expect(answer.hasPrefix("HTTP/1.1 431 "), "\(answer)")
        }
    }

    @Test func headerFieldsJustUnderTheLimitAreServed() async throws {
        try await withSocket { port, _ in
            let socket = try RawSocket(port: port)
            let padding = String(repeating: "p", count: RequestLimits.maxHeaderBytes - 200)
            try socket.send("GET /healthz HTTP/1.1\r\nHost: x\r\nCookie: \(padding)\r\n\r\n")
            return try socket.receive(until: "}", seconds: 10)
        } then: { answer in
            #expect(answer.hasPrefix("HTTP/1.1 200 OK"), "\(answer)")
        }
    }

    @Test(arguments: ["GET / HTTP/9.9\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost x\r\n\r\n", "\u{16}\u{03}\u{01}\u{02}\u{00}\r\n\r\n"])
    func malformedRequestIs400ProblemJSON(request: String) async throws {
        try await withSocket { port, _ in
            let socket = try RawSocket(port: port)
            try socket.send(request)
            return try socket.receiveUntilClosed(seconds: 10)
        } then: { answer in
            #expect(answer.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(answer)")
            #expect(answer.contains("urn:optimizerd:problem:invalid-http"))
        }
    }
}
