import Foundation
import NIOPosix
import OptimizerKit
import Testing

/// `OPTIMIZERD_KERNELS` on the real binary: a forced variant is used, logged and reported; a bad
/// value stops the daemon before it serves, saying why.
struct KernelSelectionProcessTests {
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: DaemonProcessTests.binary.path)), .timeLimit(.minutes(1)))
    func aForcedVariantIsLoggedAndReportedInLimits() async throws {
        let (process, _, port, log) = try await DaemonProcessTests.start(
            environment: ["OPTIMIZERD_KERNELS": "baseline", "OPTIMIZERD_LOG_LEVEL": "info", "OPTIMIZERD_COMPUTE_THREADS": "1"])
        defer {
            process.terminate()
            process.waitUntilExit()
        }
        #expect(log.contains("compute.kernels=baseline"), "\(log)")
        let limits = try await DaemonProcessTests.get("/v1/limits", port: port)
        #expect(limits.contains(#""kernels":"baseline""#), "\(limits)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: DaemonProcessTests.binary.path)), .timeLimit(.minutes(1)))
    func anUnknownVariantStopsTheDaemonWithAMessage() async throws {
        let process = Process()
        process.executableURL = DaemonProcessTests.binary
        process.arguments = ["serve"]
        process.environment = [
            "OPTIMIZERD_PORT": "0", "OPTIMIZERD_KERNELS": "sse9", "OPTIMIZERD_DATA_DIR": DaemonProcessTests.freshDataDirectory(),
        ]
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let log = try await NIOThreadPool.singleton.runIfActive {
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return text
        }
        #expect(process.terminationStatus != 0)
        #expect(log.contains("OPTIMIZERD_KERNELS=sse9 is not a kernel variant (one of baseline, avx2, avx512)"), "\(log)")
        #expect(!log.contains("listening on"))
    }
}
