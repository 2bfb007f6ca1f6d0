import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InMemoryLogging
import Logging
import NIOCore
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
}
