import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// `state_dtype` over HTTP: create, refuse (400 naming the field), PATCH cannot switch it, the
/// summary shows it, the bitsandbytes golden case replays through the routes, and a checkpoint
/// restores into a session of another state dtype.
struct StateDTypeRoutesTests {
    static let fixtures = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/lowbit")

    @Test func createShowsTheStateDTypeAndItsBytes() async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(
                uri: "/v1/sessions", method: .post, body: ByteBuffer(string: #"{"optimizer":"adamw","state_dtype":"int8"}"#))
            let session = try CreatedSession(response)
            #expect(try jsonObject(response)["state_dtype"] as? String == "int8")
            let count = 8192
            try await client.putParameters(session, try Body.tensors([("w", [count], [Float](repeating: 1, count: count))]))
            _ = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth,
                body: try Body.tensors([("w", [count], (0..<count).map { Float($0 % 17) / 17 })]))
            let summary = try await client.summary(session)
            #expect(summary["state_dtype"] as? String == "int8")
            #expect(summary["state_bytes"] as? Int == 2 * count + 8 * 32)
            let slots = try #require((summary["parameters"] as? [[String: Any]])?.first?["state"] as? [[String: Any]])
            #expect(slots.map { $0["name"] as? String } == ["step", "exp_avg", "exp_avg_absmax", "exp_avg_sq", "exp_avg_sq_absmax"])
            #expect(slots.map { $0["dtype"] as? String } == [nil, "u8", "f32", "u8", "f32"])
            #expect((slots[1]["norm"] as? Double ?? 0) > 0)
            let metrics = try await client.metricsText()
            let id = #"session_id="\#(session.id)""#
            #expect(metrics.contains(#"optimizerd_session_state_bytes{\#(id)} \#(2 * count + 8 * 32)"#), "\(metrics)")
            #expect(metrics.contains(#"session_optimizer="adamw",session_state_dtype="int8"} 1"#))
        }
    }

    @Test(arguments: [
        #"{"optimizer":"sgd","state_dtype":"int8"}"#,
        #"{"optimizer":"momo","state_dtype":"bf16"}"#,
        #"{"optimizer":"adam","state_dtype":"fp8"}"#,
        #"{"optimizer":"adam","state_dtype":"int8","hyperparameters":{"amsgrad":true}}"#,
        #"{"optimizer":"adam","state_dtype":"int8","hyperparameters":{"weight_decay":0.1}}"#,
    ])
    func badStateDTypeIsRefusedNamingIt(_ body: String) async throws {
        try await makeApp().test(.router) { client in
            let response = try await client.execute(uri: "/v1/sessions", method: .post, body: ByteBuffer(string: body))
            let detail = try problem(response)
            #expect(detail.status == 400 && detail.detail.contains("state_dtype"), "\(detail.detail)")
            let list = try jsonObject(try await client.execute(uri: "/v1/sessions", method: .get))
            #expect((list["sessions"] as? [Any])?.isEmpty == true)
        }
    }

    @Test func patchCannotSwitchTheStateDType() async throws {
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(#"{"optimizer":"adam","state_dtype":"bf16"}"#)
            let refused = try await client.execute(
                uri: session.path, method: .patch, headers: session.auth, body: ByteBuffer(string: #"{"state_dtype":"int8"}"#))
            let detail = try problem(refused)
            #expect(detail.status == 400 && detail.detail.contains("state_dtype"))
            let same = try await client.execute(
                uri: session.path, method: .patch, headers: session.auth,
                body: ByteBuffer(string: #"{"state_dtype":"bf16","hyperparameters":{"lr":0.5}}"#))
            #expect(same.status == .ok)
            #expect(try jsonObject(same)["state_dtype"] as? String == "bf16")
        }
    }

    /// The bitsandbytes AdamW8bit case through the routes: parameters within tolerance every step,
    /// the checkpoint's 8-bit codes and absmax identical for the recorded steps.
    @Test func int8TrajectoryReplaysBitsandbytesOverHTTP() async throws {
        let file = try SafetensorsFile(data: Data(contentsOf: Self.fixtures.appendingPathComponent("adamw8bit.safetensors")))
        let names = try JSONDecoder().decode([String].self, from: Data(file.metadata["parameters"]!.utf8))
        let steps = Int(file.metadata["steps"]!)!, codeSteps = Int(file.metadata["code_steps"]!)!
        let atol = Double(file.metadata["atol"]!)!, rtol = Double(file.metadata["rtol"]!)!
        let shapes = names.map { file.entry(named: "init/\($0)")!.shape }
        let initial = try names.map { try file.floats(named: "init/\($0)") }
        try await makeApp().test(.router) { client in
            let session = try await client.createSession(
                #"{"optimizer":"adamw","state_dtype":"int8","hyperparameters":\#(file.metadata["hyperparameters"]!)}"#)
            try await client.putParameters(session, try Body.tensors(names.indices.map { (names[$0], shapes[$0], initial[$0]) }))
            for t in 1...steps {
                let gradients = try names.indices.map { (names[$0], shapes[$0], try file.floats(named: "grad/\(t)/\(names[$0])")) }
                let response = try await client.execute(
                    uri: session.path + "/step", method: .post, headers: session.auth, body: try Body.tensors(gradients))
                #expect(response.status == .ok)
                let got = try safetensors(response.body)
                for (index, name) in names.enumerated() {
                    let expect = try file.floats(named: "expect/\(t)/\(name)"), values = try got.floats(named: name)
                    let worst = expect.indices.map {
                        abs(Double(values[$0]) - Double(expect[$0])) / (atol + rtol * abs(Double(expect[$0]) - Double(initial[index][$0])))
                    }.max()!
                    #expect(worst <= 1, "step \(t) \(name): \(worst)× the tolerance")
                }
                guard t <= codeSteps else { continue }
                let checkpoint = try safetensors(
                    try await client.execute(uri: session.path + "/checkpoint", method: .get, headers: session.auth).body)
                for (slot, moment) in [(1, "exp_avg"), (2, "exp_avg_sq")] {
                    let entry = try #require(checkpoint.entry(named: "state/w/\(moment)"))
                    #expect(entry.dtype == .U8)
                    let codes = checkpoint.bytes.withUnsafeBytes { Array(checkpoint.header.bytes(of: entry, in: $0)) }
                    #expect(codes == (try file.floats(named: "codes\(slot)/\(t)/w")).map { UInt8($0) }, "step \(t) \(moment) codes")
                    #expect(
                        (try checkpoint.floats(named: "state/w/\(moment)_absmax")).map(\.bitPattern)
                            == (try file.floats(named: "absmax\(slot)/\(t)/w")).map(\.bitPattern))
                }
            }
        }
    }

    @Test func checkpointOfInt8RestoresIntoAFloat32Session() async throws {
        try await makeApp().test(.router) { client in
            let int8 = try await client.createSession(#"{"optimizer":"adamw","state_dtype":"int8"}"#)
            let count = 5000
            try await client.putParameters(int8, try Body.tensors([("w", [count], [Float](repeating: 1, count: count))]))
            _ = try await client.execute(
                uri: int8.path + "/step", method: .post, headers: int8.auth,
                body: try Body.tensors([("w", [count], (0..<count).map { Float($0 % 11) / 11 })]))
            let checkpoint = try await client.execute(uri: int8.path + "/checkpoint", method: .get, headers: int8.auth).body
            let f32 = try await client.createSession(#"{"optimizer":"adamw"}"#)
            let restored = try await client.execute(uri: f32.path + "/checkpoint", method: .put, headers: f32.auth, body: checkpoint)
            #expect(restored.status == .ok, "\(String(buffer: restored.body))")
            let summary = try await client.summary(f32)
            #expect(summary["state_dtype"] as? String == "f32")
            #expect(summary["step"] as? Int == 1)
            let slots = try #require((summary["parameters"] as? [[String: Any]])?.first?["state"] as? [[String: Any]])
            #expect(slots.map { $0["dtype"] as? String } == [nil, "f32", "f32"])
            let int8Summary = try await client.summary(int8)
            let int8Norms = try #require((int8Summary["state"] as? [String: Any])?["norms"] as? [String: Double])
            let f32Norms = try #require((summary["state"] as? [String: Any])?["norms"] as? [String: Double])
            // The summary dequantizes the codes: the same values as the restored float32 moments.
            let a = try #require(int8Norms["exp_avg"]), b = try #require(f32Norms["exp_avg"])
            #expect(a > 0 && abs(a - b) <= 1e-9 * a)
        }
    }
}
