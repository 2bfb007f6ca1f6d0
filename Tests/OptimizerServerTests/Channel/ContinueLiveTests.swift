import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import NIOPosix
import OptimizerWire
import Testing

/// `Expect: 100-continue` is answered at once (Hummingbird alone never answers it, so curl would
/// wait a second before every upload over 1 MiB).
struct ContinueLiveTests {
    @Test func interimContinueArrivesBeforeTheBodyIsSent() async throws {
        try await makeApp().test(.live) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":1}}"#)
            let port = try #require(client.port)
            let body = Array(try Body.tensors([("w", [3], [1, 2, 3])]).readableBytesView)
            let (interim, final) = try await NIOThreadPool.singleton.runIfActive {
                let socket = try RawSocket(port: port)
                try socket.send(
                    "PUT \(session.path)/parameters HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer \(session.token)\r\n"
                        + "Content-Type: application/octet-stream\r\nContent-Length: \(body.count)\r\nExpect: 100-continue\r\n\r\n")
                let interim = try socket.receive(until: "\r\n\r\n", seconds: 5)  // a bound, not a timing: the answer comes at once
                try socket.send(body)
                let final = try socket.receive(until: "\"step\"", seconds: 5)
                return (interim, final)
            }
            #expect(interim.hasPrefix("HTTP/1.1 100 Continue\r\n"), "\(interim)")
            #expect(final.contains("HTTP/1.1 200 OK"), "\(final)")
            let values = try safetensors(try await client.parameterBytes(session)).floats(named: "w")
            #expect(values == [1, 2, 3])
        }
    }

    @Test func requestsWithoutExpectGetNoInterimResponse() async throws {
        try await makeApp().test(.live) { client in
            let port = try #require(client.port)
            let response = try await NIOThreadPool.singleton.runIfActive {
                let socket = try RawSocket(port: port)
                try socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                return try socket.receive(until: "}", seconds: 5)
            }
            #expect(response.hasPrefix("HTTP/1.1 200 OK"), "\(response)")
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/curl")))
    func curlUploadsTwoMebibytesAfterAHundredContinue() async throws {
        try await makeApp().test(.live) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd"}"#)
            let port = try #require(client.port)
            let count = 600_000  // 2.4 MB: curl sends Expect: 100-continue above 1 MiB
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("optimizerd-continue-\(UUID()).safetensors")
            try Data(try Body.tensors([("w", [count], [Float](repeating: 0.5, count: count))]).readableBytesView).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let output = try await NIOThreadPool.singleton.runIfActive {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
                process.arguments = [
                    "-sS", "-v", "-o", "/dev/null", "-w", "%{http_code}", "--expect100-timeout", "5", "-X", "PUT",
                    "--data-binary", "@\(file.path)",
                    "-H", "Authorization: Bearer \(session.token)", "http://127.0.0.1:\(port)\(session.path)/parameters",
                ]
                let pipe = Pipe()
                let trace = Pipe()
                process.standardOutput = pipe
                process.standardError = trace
                try process.run()
                // curl -v writes the exchange to standard error; read it before waiting so a full pipe never blocks curl.
                let verbose = String(decoding: trace.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self), verbose)
            }
            #expect(output.0 == "200", "\(output.0)")
            // Without the handler curl waits out its expect timeout and sends the body unasked: no interim response.
            #expect(output.1.contains("Expect: 100-continue"), "curl did not ask: \(output.1)")
            #expect(output.1.contains("< HTTP/1.1 100 Continue"), "the daemon never answered Expect: 100-continue: \(output.1)")
        }
    }
}
