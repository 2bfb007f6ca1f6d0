import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import OptimizerWire
import Testing

/// Answers several times larger than what the kernel's socket buffers hold (about 4 MB here), read
/// over a real socket at the client's own pace with a short idle timeout (``IdleTimeoutHandler``): a
/// client reading slowly but steadily gets every byte however many timeouts that takes, and one that
/// stops reading is disconnected.
struct SlowDownloadLiveTests {
    /// A short idle timeout for these tests. It also applies to the setup's 16–24 MB parameter
    /// upload: at 1 s, a CI run of the whole suite on 2 busy cores once stalled that upload long
    /// enough for the daemon to close it as idle (the send failed); 2 s leaves room for that.
    static let idle = Duration.seconds(2)

    /// A live daemon with the short idle timeout and a session holding `count` float32 parameters
    /// (`i % 1000`); `body` runs with its port and the session and returns what the test checks.
    /// Everything goes over raw connections (the test client's own would be closed whenever the test
    /// is slower than the idle timeout), on a thread of the test's own: the clients block for
    /// seconds, which would hold up other tests on the shared thread pool.
    private func withLargeSession<T: Sendable>(
        count: Int, _ body: @escaping @Sendable (_ port: Int, _ session: CreatedSession) throws -> T
    ) async throws -> T {
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        do {
            let result = try await makeApp(idleTimeout: Self.idle).test(.live) { client in
                let port = try #require(client.port)
                let upload = try Body.tensors([("w", [count], Self.parameters(count))])
                return try await thread.runIfActive {
                    let created = try Self.request(
                        port, "POST /v1/sessions", body: Array(#"{"optimizer":"sgd","hyperparameters":{"lr":1}}"#.utf8))
                    let object = try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any]
                    guard let id = object?["id"] as? String, let token = object?["token"] as? String else { throw Failure.setup(created.head) }
                    let session = CreatedSession(id: id, token: token)
                    let uploaded = try Self.request(port, "PUT \(session.path)/parameters", token: token, body: Array(upload.readableBytesView))
                    guard uploaded.head.hasPrefix("HTTP/1.1 200 OK") else { throw Failure.setup(uploaded.head) }
                    return try body(port, session)
                }
            }
            try await thread.shutdownGracefully()
            return result
        } catch {
            try? await thread.shutdownGracefully()
            throw error
        }
    }

    private enum Failure: Error { case setup(String) }

    /// `i % 1000` for i in 0..<count (a multiple of 1000), a thousand values at a time: a million
    /// elements one by one take a second in a debug build.
    private static func parameters(_ count: Int) -> [Float] {
        let thousand = (0..<1000).map(Float.init)
        var values: [Float] = []
        values.reserveCapacity(count)
        for _ in 0..<count / 1000 { values.append(contentsOf: thousand) }
        return values
    }

    /// One request on its own connection (`Connection: close`): the whole answer.
    private static func request(_ port: Int, _ line: String, token: String? = nil, body: [UInt8] = []) throws -> Download {
        let socket = try RawSocket(port: port)
        let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
        try socket.send(Array("\(line) HTTP/1.1\r\nHost: x\r\n\(auth)Content-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8) + body)
        var answer = Download()
        while let chunk = try socket.receive(atMost: 1 << 20, seconds: 10) { answer.append(chunk) }
        return answer
    }

    /// Asks for the session's parameters on a keep-alive connection with a small receive buffer: the
    /// kernel takes in little of the answer, the rest waits in the daemon until the client reads.
    private static func askForParameters(_ port: Int, _ session: CreatedSession) throws -> RawSocket {
        let socket = try RawSocket(port: port, receiveBufferBytes: 64 * 1024)
        try socket.send("GET \(session.path)/parameters HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(session.token)\r\n\r\n")
        return socket
    }

    @Test func largeAnswerReadSlowlyButSteadilyArrivesWhole() async throws {
        let count = 4_000_000  // 16 MB
        let (download, afterwards) = try await withLargeSession(count: count) { port, session in
            let socket = try Self.askForParameters(port, session)
            var download = Download()
            // At most 64 KiB every 20 ms: the 16 MB take several idle timeouts.
            while !download.isComplete, let chunk = try socket.receive(atMost: 64 * 1024, seconds: 10) {
                download.append(chunk)
                Thread.sleep(forTimeInterval: 0.02)
            }
            // Delivered, the keep-alive connection is idle: it is closed after the timeout.
            return (download, download.isComplete ? try socket.receiveUntilClosed(seconds: 10) : "")
        }
        #expect(download.head.hasPrefix("HTTP/1.1 200 OK"), "\(download.head)")
        try #require(download.isComplete, "then closed")
        #expect(try SafetensorsFile(bytes: download.body).floats(named: "w") == Self.parameters(count))
        #expect(afterwards.isEmpty)
    }

    @Test func clientThatStopsReadingIsDisconnectedAfterTheIdleTimeout() async throws {
        let (closedWhileReading, readSteadily, download) = try await withLargeSession(count: 6_000_000) { port, session in
            let socket = try Self.askForParameters(port, session)
            var download = Download()
            // Reads steadily for 2.5 idle timeouts (at most 64 KiB every 20 ms, some 10 of the 24 MB):
            // the connection stays open…
            let steadyUntil = ContinuousClock.now + Self.idle * 2.5
            while ContinuousClock.now < steadyUntil {
                guard let chunk = try socket.receive(atMost: 64 * 1024, seconds: 10) else { return (true, download.body.count, download) }
                download.append(chunk)
                Thread.sleep(forTimeInterval: 0.02)
            }
            let readSteadily = download.body.count
            // …then reads nothing for 2.5 idle timeouts: the daemon gives up on it and closes the
            // connection (what the kernel still held arrives, then the end; the answer stays short).
            Thread.sleep(forTimeInterval: 2.5 * Double(Self.idle.components.seconds))
            while let chunk = try socket.receive(atMost: 1 << 20, seconds: 10) { download.append(chunk) }
            return (false, readSteadily, download)
        }
        #expect(download.head.hasPrefix("HTTP/1.1 200 OK"), "\(download.head)")
        #expect(!closedWhileReading, "closed while the client was reading, after \(readSteadily) body bytes")
        #expect(!download.isComplete, "the whole answer arrived: the stalled connection was kept open")
    }
}

/// An HTTP/1.1 answer with a `Content-Length`, as it arrives.
private struct Download: CustomStringConvertible {
    private var headBytes: [UInt8] = []
    private(set) var head = ""
    private(set) var body: [UInt8] = []
    private(set) var contentLength: Int?

    var isComplete: Bool { contentLength.map { body.count >= $0 } ?? false }

    /// Short, for test failures: the body is megabytes.
    var description: String { "\(body.count) of \(contentLength.map(String.init) ?? "?") body bytes" }

    mutating func append(_ chunk: [UInt8]) {
        guard head.isEmpty else {
            body += chunk
            return
        }
        headBytes += chunk
        guard let end = headBytes.firstRange(of: Array("\r\n\r\n".utf8)) else { return }
        head = String(decoding: headBytes[..<end.upperBound], as: UTF8.self)
        body = Array(headBytes[end.upperBound...])
        headBytes = []
        let lengthLine = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
        contentLength = lengthLine.flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) }
    }
}
