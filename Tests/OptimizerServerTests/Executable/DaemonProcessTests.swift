import Foundation
import NIOPosix
import Testing

/// The real `optimizerd` binary: starts from environment variables, serves, and stops cleanly on SIGTERM.
struct DaemonProcessTests {
    /// `optimizerd`, built next to the test bundle by `swift build --build-tests`.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("optimizerd")
    }

    /// Starts `optimizerd serve` on a free port with `environment` and returns it with its port and
    /// the log up to "listening on".
    static func start(environment: [String: String]) async throws -> (Process, Pipe, Int, String) {
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["serve"]
        process.environment = environment.merging(["OPTIMIZERD_PORT": "0", "OPTIMIZERD_DATA_DIR": Self.freshDataDirectory()]) { $1 }
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
        let port = log.split(separator: "listening on 127.0.0.1:").last.flatMap { Int($0.prefix { $0.isNumber }) }
        guard let port else {
            process.terminate()
            process.waitUntilExit()
            throw DaemonDidNotStart(log: log)
        }
        return (process, errors, port, log)
    }

    /// A data directory of the process's own (one daemon per data directory: the tests' daemons
    /// run side by side, and the default `./optimizerd-data` would be the same for all of them).
    static func freshDataDirectory() -> String {
        NSTemporaryDirectory() + "optimizerd-process-test-" + UUID().uuidString
    }

    struct DaemonDidNotStart: Error, CustomStringConvertible {
        var log: String
        var description: String { "optimizerd did not start: \(log)" }
    }

    /// Sends one GET and returns the raw response up to the end of its JSON object.
    static func get(_ path: String, port: Int) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive {
            let socket = try RawSocket(port: port)
            try socket.send("GET \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return try socket.receive(until: "}", seconds: 5)
        }
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: binary.path)), .timeLimit(.minutes(1)))
    func servesAndShutsDownGracefullyOnSIGTERM() async throws {
        let (process, errors, port, _) = try await Self.start(
            environment: ["OPTIMIZERD_LOG_LEVEL": "info", "OPTIMIZERD_COMPUTE_THREADS": "1"])
        let health = try await Self.get("/healthz", port: port)
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
