import ArgumentParser
import Foundation
import Hummingbird
import Logging
import OptimizerKit
import OptimizerServer

/// `optimizerd serve`: flags and environment → ``ServerConfiguration`` → `buildApplication` →
/// `runService()` (until SIGTERM or SIGINT, then a graceful shutdown).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the daemon (the default command).",
        discussion: """
            Each flag can also be set with its OPTIMIZERD_* environment variable (shown with the flag); \
            the command line wins. OPTIMIZERD_ADMIN_TOKEN may hold the admin token itself. \
            Every session is kept in --data-dir: a snapshot plus a write-ahead log of the requests \
            that changed it. A restarted daemon continues every session exactly where it was; with \
            --fsync always, no step whose response was sent is ever lost, even to kill -9 or power loss. \
            Every optimizer's element loops use the widest instruction set this CPU runs (avx512, avx2 or \
            baseline; logged at start, and `kernels` in GET /v1/limits); OPTIMIZERD_KERNELS=avx2 \
            forces one (the results are the same bits, only the speed differs).
            """
    )

    @Option(help: ServeFlag.host.help) var host: String?
    @Option(help: ServeFlag.port.help) var port: Int?
    @Option(name: .customLong(ServeFlag.dataDir.rawValue), help: ServeFlag.dataDir.help) var dataDir: String?
    @Option(help: ServeFlag.fsync.help) var fsync: String?
    @Option(name: .customLong(ServeFlag.fsyncInterval.rawValue), help: ServeFlag.fsyncInterval.help) var fsyncInterval: String?
    @Option(name: .customLong(ServeFlag.snapshotEvery.rawValue), help: ServeFlag.snapshotEvery.help) var snapshotEvery: Int?
    @Option(name: .customLong(ServeFlag.snapshotInterval.rawValue), help: ServeFlag.snapshotInterval.help) var snapshotInterval: String?
    @Option(help: ServeFlag.durability.help) var durability: String?
    @Option(name: .customLong(ServeFlag.logDirectIO.rawValue), help: ServeFlag.logDirectIO.help) var logDirectIO: String?
    @Option(name: .customLong(ServeFlag.snapshotCopy.rawValue), help: ServeFlag.snapshotCopy.help) var snapshotCopy: String?
    @Option(name: .customLong(ServeFlag.maxBodyBytes.rawValue), help: ServeFlag.maxBodyBytes.help) var maxBodyBytes: String?
    @Option(name: .customLong(ServeFlag.maxMemory.rawValue), help: ServeFlag.maxMemory.help) var maxMemory: String?
    @Option(name: .customLong(ServeFlag.idleTimeout.rawValue), help: ServeFlag.idleTimeout.help) var idleTimeout: String?
    @Option(name: .customLong(ServeFlag.stagedStepTTL.rawValue), help: ServeFlag.stagedStepTTL.help) var stagedStepTTL: String?
    @Option(name: .customLong(ServeFlag.adminTokenFile.rawValue), help: ServeFlag.adminTokenFile.help) var adminTokenFile: String?
    @Option(name: .customLong(ServeFlag.tlsCert.rawValue), help: ServeFlag.tlsCert.help) var tlsCert: String?
    @Option(name: .customLong(ServeFlag.tlsKey.rawValue), help: ServeFlag.tlsKey.help) var tlsKey: String?
    @Option(name: .customLong(ServeFlag.computeThreads.rawValue), help: ServeFlag.computeThreads.help) var computeThreads: Int?
    @Option(name: .customLong(ServeFlag.logLevel.rawValue), help: ServeFlag.logLevel.help) var logLevel: String?

    func run() async throws {
        guard KernelTarget.isSupportedByThisCPU else {
            throw ValidationError(
                "this build's optimizer kernels need a CPU with \(KernelTarget.requiredInstructionSet ?? "?") (x86-64-v3), "
                    + "and this one lacks it; build a portable daemon with OPTIMIZERD_PORTABLE=1 swift build -c release"
            )
        }
        do {
            _ = try KernelVariant.select(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw ValidationError(error.description)
        }
        let settings = Settings(command: self, environment: ProcessInfo.processInfo.environment)
        let configuration = try settings.configuration()
        let level = try settings.logLevel()
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "optimizerd")
        logger.logLevel = level
        let app = try buildApplication(configuration: configuration, logger: logger)
        try await app.runService()
        logger.info("optimizerd stopped")
    }
}
