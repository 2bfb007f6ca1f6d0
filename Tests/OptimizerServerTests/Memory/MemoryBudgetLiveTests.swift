import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerKit
import Testing

@testable import OptimizerServer

/// The memory budget through the real application: what would pass it is refused with 507 and
/// changes nothing, on every route that adds memory (uploads, a PATCH that adds optimizer state,
/// checkpoint restores), while what fits goes through; deleting a session gives its bytes back.
struct MemoryBudgetLiveTests {
    static let mib = 1 << 20
    /// Two uploads of 1 MiB of parameters each (2 MiB, 6 MiB with Adam's moments, 4 MiB kept for a
    /// step), each with its 1 MiB body: 11 MiB at the most. amsgrad's third moment does not fit.
    static let budget = 11 * mib + mib / 2

    static func tensor(_ name: String, _ value: Float) throws -> ByteBuffer {
        try Body.tensors([(name, [256, 1024], [Float](repeating: value, count: 256 * 1024))])
    }

    static func expectRefused(_ response: TestResponse, needs purpose: String) throws {
        #expect(response.status.code == 507, "\(String(buffer: response.body))")
        let refusal = try problem(response)
        #expect(refusal.type == "urn:optimizerd:problem:memory-budget-exceeded")
        #expect(refusal.detail.hasPrefix("--max-memory 11.5 MiB: "), "\(refusal.detail)")
        #expect(refusal.detail.contains(" in use") && refusal.detail.contains(", \(purpose) needs "), "\(refusal.detail)")
    }

    static func metric(_ client: some TestClientProtocol, _ name: String) async throws -> Double {
        let text = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") })
        return try #require(Double(line.dropFirst(name.count + 1)))
    }

    /// A session counts before it has parameters: its own bookkeeping and every parameter group (a
    /// create body of thousands of groups took ~1.6 KB of memory per group, counted nowhere).
    @Test func aSessionAndItsGroupsAreCountedFromCreation() async throws {
        let app = try makeApp(maxMemory: Self.budget)
        try await app.test(.router) { client in
            let empty = try await client.createSession(#"{"optimizer":"adam"}"#)
            let counted = try #require(try await client.summary(empty)["memory_bytes"] as? Int)
            #expect(counted == OptimizerSession.sessionOverheadBytes)
            #expect(try await Self.metric(client, "optimizerd_memory_used_bytes") == Double(counted))
            let groups = (0..<8000).map { #"{"parameters":["layer\#($0).*"],"hyperparameters":{"lr":0.5}}"# }
            let body = #"{"optimizer":"adam","groups":["# + groups.joined(separator: ",") + "]}"
            let refused = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: body))
            try Self.expectRefused(refused, needs: "this session")
            #expect(try await Self.metric(client, "optimizerd_memory_used_bytes") == Double(counted))
        }
    }

    @Test func whatWouldPassTheBudgetIsRefusedAndChangesNothing() async throws {
        let app = try makeApp(maxMemory: Self.budget)
        try await app.test(.router) { client in
            #expect(try await Self.metric(client, "optimizerd_memory_budget_bytes") == Double(Self.budget))
            let session = try await client.createSession(#"{"optimizer":"adam"}"#)
            try await client.putParameters(session, try Self.tensor("a", 0.5))
            // A checkpoint now (3 MiB of session, two copies while it is encoded and sent) fits.
            let checkpoint = try await client.execute(uri: session.path + "/checkpoint", method: .get, headers: session.auth)
            #expect(checkpoint.status == .ok)
            try await client.putParameters(session, try Self.tensor("b", 0.25))
            let admitted = try #require(try await client.summary(session)["memory_bytes"] as? Int)
            #expect(admitted == 6 * Self.mib + 2 * OptimizerSession.tensorOverheadBytes + OptimizerSession.sessionOverheadBytes)
            #expect(try await Self.metric(client, "optimizerd_memory_used_bytes") == Double(admitted))

            // A third tensor: its body fits, its parameters and state do not.
            let upload = try await client.execute(
                uri: session.path + "/parameters", method: .put, headers: session.auth, body: try Self.tensor("c", 1))
            try Self.expectRefused(upload, needs: "this upload")
            // amsgrad would add a third moment for a and b.
            let patch = try await client.execute(
                uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: #"{"hyperparameters":{"amsgrad":true}}"#))
            try Self.expectRefused(patch, needs: "this change")
            // With b, a checkpoint's copies no longer fit; the parameters (a step's response) do.
            let download = try await client.execute(uri: session.path + "/checkpoint", method: .get, headers: session.auth)
            try Self.expectRefused(download, needs: "this download")
            #expect(try await client.execute(uri: session.path + "/parameters", method: .get, headers: session.auth).status == .ok)
            // A restore needs the checkpoint's decoded copies besides its body.
            let restore = try await client.execute(
                uri: session.path + "/checkpoint", method: .put, headers: session.auth, body: checkpoint.body)
            try Self.expectRefused(restore, needs: "this checkpoint restore")

            let summary = try await client.summary(session)
            #expect(summary["memory_bytes"] as? Int == admitted)
            #expect((summary["parameters"] as? [Any])?.count == 2)
            #expect((summary["hyperparameters"] as? [String: Any])?["amsgrad"] as? Bool == false)
            #expect(try await Self.metric(client, "optimizerd_memory_used_bytes") == Double(admitted))

            // The admitted session steps: its state was counted at upload, its step room kept.
            let gradients = try Body.tensors(
                [("a", [256, 1024], [Float](repeating: 0.1, count: 256 * 1024)), ("b", [256, 1024], [Float](repeating: 0.2, count: 256 * 1024))],
                metadata: ["step": "1"])
            let step = try await client.execute(uri: session.path + "/step", method: .post, headers: session.auth, body: gradients)
            #expect(step.status == .ok, "\(String(buffer: step.body))")
            #expect(try await client.summary(session)["memory_bytes"] as? Int == admitted)

            // Deleting the session gives everything back; the refused upload then fits.
            #expect(try await client.execute(uri: session.path, method: .delete, headers: session.auth).status == .noContent)
            #expect(try await Self.metric(client, "optimizerd_memory_used_bytes") == 0)
            let other = try await client.createSession(#"{"optimizer":"adam","hyperparameters":{"amsgrad":true}}"#)
            try await client.putParameters(other, try Self.tensor("c", 1))
        }
    }

    @Test func aRestoredCheckpointsBodyLeavesTheBudgetBeforeTheAnswer() async throws {
        let app = try makeApp(maxMemory: Self.budget)
        try await app.test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"adam"}"#)
            try await client.putParameters(session, try Self.tensor("a", 0.5))
            let checkpoint = try await client.execute(uri: session.path + "/checkpoint", method: .get, headers: session.auth)
            #expect(checkpoint.status == .ok)
            for _ in 0..<3 {
                let restore = try await client.execute(
                    uri: session.path + "/checkpoint", method: .put, headers: session.auth, body: checkpoint.body)
                #expect(restore.status == .ok, "\(String(buffer: restore.body))")
                // Right after the answer only the session is counted: neither the body nor its copies.
                let admitted = try #require(try await client.summary(session)["memory_bytes"] as? Int)
                #expect(try await Self.metric(client, "optimizerd_memory_used_bytes") == Double(admitted))
            }
        }
    }
}
