import Foundation
import NIOPosix
import Testing

/// The real `optimizerd` binary: starts from environment variables, serves, and stops cleanly on SIGTERM.
struct DaemonProcessTests {
    /// `optimizerd`, built next to the test bundle by `swift build --build-tests`.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("optimizerd")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary.path)), .timeLimit(.minutes(1)))
    func servesAndShutsDownGracefullyOnSIGTERM() async throws {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["serve"]
        process.environment = ["OPTIMIZERD_PORT": "0", "OPTIMIZERD_LOG_LEVEL": "info", "OPTIMIZERD_COMPUTE_THREADS": "1"]
        let errors = Pipe()
        process.standardError = errors
        try process.run()

        let log = try await NIOThreadPool.singleton.runIfActive { () throws -> String in
            var text = ""
            let handle = errors.fileHandleForReading
            let deadline = Date().addingTimeInterval(20)
            while !text.contains("listening on"), Date() < deadline {
                let data = handle.availableData
                if data.isEmpty { break }
                text += String(decoding: data, as: UTF8.self)
            }
            return text
        }
        let port = try #require(log.split(separator: "listening on 127.0.0.1:").last.flatMap { Int($0.prefix { $0.isNumber }) }, "\(log)")
        let health = try await NIOThreadPool.singleton.runIfActive {
            let socket = try RawSocket(port: port)
            try socket.send("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return try socket.receive(until: "}", seconds: 5)
        }
        #expect(health.hasPrefix("HTTP/1.1 200 OK"))

        process.terminate()  // SIGTERM
        let rest = try await NIOThreadPool.singleton.runIfActive {
            process.waitUntilExit()
            return String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        }
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(rest)")
        #expect(rest.contains("optimizerd stopped"), "\(rest)")
    }
}
