import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
import NIOPosix
import Testing

/// What the daemon logs: events with dotted metadata keys, problems with their detail, never tokens.
struct LoggingTests {
    @Test func logsEventsAndProblemsButNeverTokens() async throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "optimizerd-test") { _ in handler }
        logger.logLevel = .debug
        let token = try await makeApp(adminToken: "admin-secret", logger: logger).test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#, headers: [.authorization: "Bearer admin-secret"])
            _ = try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: ByteBuffer(string: "xx"))
            _ = try await client.execute(uri: session.path, method: .delete, headers: session.auth)
            return session.token
        }
        let entries = handler.entries
        let created = try #require(entries.first { $0.message.description == "session created" })
        #expect(created.metadata["session.id"] != nil)
        #expect(created.metadata["session.optimizer"] == "sgd")
        let refused = try #require(entries.first { $0.message.description == "request refused" })
        #expect(refused.metadata["http.response.status_code"]?.description == "400")
        #expect(refused.metadata["problem.detail"]?.description.contains("8-byte") == true)
        #expect(refused.metadata["session.id"] == created.metadata["session.id"])
        #expect(entries.contains { $0.message.description == "session deleted" })
        let everything = entries.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n")
        #expect(!everything.contains(token))
        #expect(!everything.contains("admin-secret"))
    }

    /// A client that vanishes mid-body is a refused request (400, `info`), not a server error: no
    /// `error` line, no 5xx in the metrics.
    @Test func clientVanishingMidBodyIsARefusalNotAnError() async throws {
        let handler = InMemoryLogHandler()
        var logger = Logger(label: "optimizerd-test") { _ in handler }
        logger.logLevel = .debug
        try await makeApp(logger: logger).test(.live) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            let port = try #require(client.port)
            try await NIOThreadPool.singleton.runIfActive {
                let socket = try RawSocket(port: port)
                try socket.send(
                    "POST \(session.path)/step HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(session.token)\r\nContent-Length: 1000\r\n\r\n")
                try socket.send([UInt8](repeating: 0, count: 10))
            }  // the socket closes here, 990 bytes short
            for _ in 0..<200 where !handler.entries.contains(where: { $0.message.description == "request refused" }) {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        let refused = try #require(handler.entries.first { $0.message.description == "request refused" })
        #expect(refused.metadata["http.response.status_code"]?.description == "400")
        #expect(refused.metadata["problem.type"]?.description == "incomplete-body")
        #expect(!handler.entries.contains { $0.level >= .error }, "\(handler.entries.filter { $0.level >= .error })")
    }
}
