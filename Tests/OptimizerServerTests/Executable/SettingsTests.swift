import ArgumentParser
import Foundation
import Logging
import OptimizerServer
import OptimizerStore
import Testing

@testable import optimizerd

/// `optimizerd serve`: flags, `OPTIMIZERD_*` variables and defaults become one ServerConfiguration.
struct SettingsTests {
    private func configuration(_ arguments: [String], environment: [String: String] = [:]) throws -> ServerConfiguration {
        try Settings(command: try Serve.parse(arguments), environment: environment).configuration()
    }

    @Test func defaultsServeOnLoopback8080() throws {
        let configuration = try configuration([])
        #expect(configuration.host == "127.0.0.1")
        #expect(configuration.port == 8080)
        #expect(configuration.maxBodyBytes == 1 << 30)
        #expect(configuration.adminToken == nil)
        #expect(configuration.fsync == .periodic)
        #expect(configuration.fsyncInterval == .seconds(1))
        #expect(configuration.dataDirectory == "./optimizerd-data")
        #expect(configuration.idleTimeout == .seconds(60))
        #expect(!configuration.isTLSEnabled)
    }

    @Test func idleTimeoutFromFlagOrEnvironment() throws {
        #expect(try configuration(["--idle-timeout", "500ms"]).idleTimeout == .milliseconds(500))
        #expect(try configuration([], environment: ["OPTIMIZERD_IDLE_TIMEOUT": "2m"]).idleTimeout == .seconds(120))
        #expect(throws: (any Error).self) { try configuration(["--idle-timeout", "0s"]) }
        #expect(throws: (any Error).self) { try configuration(["--idle-timeout", "forever"]) }
    }

    @Test func environmentFillsInAndFlagsWin() throws {
        let environment = [
            "OPTIMIZERD_HOST": "0.0.0.0", "OPTIMIZERD_PORT": "9000", "OPTIMIZERD_MAX_BODY_BYTES": "512MiB",
            "OPTIMIZERD_FSYNC": "always", "OPTIMIZERD_FSYNC_INTERVAL": "250ms", "OPTIMIZERD_COMPUTE_THREADS": "3",
            "OPTIMIZERD_SNAPSHOT_EVERY": "100", "OPTIMIZERD_ADMIN_TOKEN": " secret\n",
        ]
        let fromEnvironment = try configuration([], environment: environment)
        #expect(fromEnvironment.host == "0.0.0.0")
        #expect(fromEnvironment.port == 9000)
        #expect(fromEnvironment.maxBodyBytes == 512 << 20)
        #expect(fromEnvironment.fsync == .always)
        #expect(fromEnvironment.fsyncInterval == .milliseconds(250))
        #expect(fromEnvironment.computeThreads == 3)
        #expect(fromEnvironment.snapshotEvery == 100)
        #expect(fromEnvironment.adminToken == "secret")

        let flagsWin = try configuration(["--port", "9100", "--max-body-bytes", "1048576"], environment: environment)
        #expect(flagsWin.port == 9100)
        #expect(flagsWin.maxBodyBytes == 1 << 20)
    }

    @Test func maxMemoryFromFlagOrEnvironmentElseTheCgroupDefault() throws {
        #expect(try configuration(["--max-memory", "512MiB"]).maxMemory == MemoryLimit(bytes: 512 << 20, source: "--max-memory"))
        #expect(
            try configuration([], environment: ["OPTIMIZERD_MAX_MEMORY": "8GiB"]).maxMemory
                == MemoryLimit(bytes: 8 << 30, source: "OPTIMIZERD_MAX_MEMORY"))
        #expect(try configuration(["--max-memory", "1048576"], environment: ["OPTIMIZERD_MAX_MEMORY": "8GiB"]).maxMemory?.bytes == 1 << 20)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("cgroup-\(UUID())")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("1073741824\n".utf8).write(to: root.appendingPathComponent("memory.max"))
        let fromCgroup = try configuration([], environment: ["OPTIMIZERD_CGROUP_ROOT": root.path]).maxMemory
        #expect(fromCgroup?.bytes == Int(Double(1 << 30) * 0.8))
        #expect(fromCgroup?.source.contains("cgroup v2 limit 1.0 GiB") == true)
    }

    @Test func logDirectIOTakesASizeOrOff() throws {
        #expect(try configuration([]).logDirectMinimum == 1 << 20)
        #expect(try configuration([]).storeConfiguration?.logDirectMinimum == 1 << 20)
        #expect(try configuration(["--log-direct-io", "256KiB"]).logDirectMinimum == 256 << 10)
        #expect(try configuration(["--log-direct-io", "off"]).logDirectMinimum == nil)
        #expect(try configuration(["--log-direct-io", "off"]).storeConfiguration?.logDirectMinimum == nil)
        #expect(try configuration([], environment: ["OPTIMIZERD_LOG_DIRECT_IO": "4096"]).logDirectMinimum == 4096)
    }

    @Test func snapshotCopyTakesASizeOrAll() throws {
        #expect(try configuration([]).snapshotCopyLimit == nil)
        #expect(try configuration(["--snapshot-copy", "all"]).storeConfiguration?.snapshotCopyLimit == nil)
        #expect(try configuration(["--snapshot-copy", "0"]).storeConfiguration?.snapshotCopyLimit == 0)
        #expect(try configuration(["--snapshot-copy", "2GiB"]).snapshotCopyLimit == 2 << 30)
        #expect(try configuration([], environment: ["OPTIMIZERD_SNAPSHOT_COPY": "1MiB"]).storeConfiguration?.snapshotCopyLimit == 1 << 20)
    }

    @Test func adminTokenFromAFile() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("admin-\(UUID())")
        try Data("file-token\n".utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        #expect(try configuration(["--admin-token-file", file.path]).adminToken == "file-token")
        #expect(try configuration([], environment: ["OPTIMIZERD_ADMIN_TOKEN_FILE": file.path]).adminToken == "file-token")
    }

    @Test(
        arguments: [
            (["--fsync", "sometimes"], [:]), (["--max-body-bytes", "lots"], [:]), (["--max-body-bytes", "8GiB"], [:]),
            (["--port", "70000"], [:]), (["--tls-cert", "cert.pem"], [:]), (["--compute-threads", "0"], [:]),
            ([], ["OPTIMIZERD_PORT": "eighty"]), ([], ["OPTIMIZERD_FSYNC_INTERVAL": "soon"]), (["--admin-token-file", "/nonexistent"], [:]),
            (["--max-memory", "0"], [:]), (["--max-memory", "plenty"], [:]), ([], ["OPTIMIZERD_MAX_MEMORY": "-1GiB"]),
            (["--log-direct-io", "0"], [:]), (["--log-direct-io", "never"], [:]),
            (["--snapshot-copy", "some"], [:]), ([], ["OPTIMIZERD_SNAPSHOT_COPY": "-1"]),
            // Durations beyond the clocks' arithmetic (a fatal error at start before), empty flag values.
            (["--idle-timeout", "1e16s"], [:]), (["--snapshot-interval", "1e300"], [:]), ([], ["OPTIMIZERD_FSYNC_INTERVAL": "2e9s"]),
            (["--staged-step-ttl", "1e12m"], [:]), (["--data-dir", ""], [:]), (["--host", ""], [:]),
        ] as [([String], [String: String])])
    func badValuesAreRejected(arguments: [String], environment: [String: String]) {
        #expect(throws: (any Error).self) { try configuration(arguments, environment: environment) }
    }

    @Test func logLevels() throws {
        #expect(try Settings(command: try Serve.parse(["--log-level", "debug"]), environment: [:]).logLevel() == .debug)
        #expect(try Settings(command: try Serve.parse([]), environment: ["OPTIMIZERD_LOG_LEVEL": "ERROR"]).logLevel() == .error)
        #expect(throws: (any Error).self) { try Settings(command: try Serve.parse(["--log-level", "loud"]), environment: [:]).logLevel() }
    }

    @Test func helpNamesEveryFlagAndItsVariable() {
        let rootHelp = Optimizerd.helpMessage()
        let serveHelp = Optimizerd.helpMessage(for: Serve.self)
        for flag in ServeFlag.allCases {
            #expect(rootHelp.contains("--\(flag.rawValue)") && rootHelp.contains(flag.environmentVariable), "\(flag)")
            #expect(serveHelp.contains("--\(flag.rawValue)") && serveHelp.contains(flag.environmentVariable), "\(flag)")
        }
    }
}
