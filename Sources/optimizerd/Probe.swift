import ArgumentParser
import Foundation
import OptimizerServer

/// `optimizerd probe`: `GET /healthz` of a running daemon; exit 0 when it answers 200, 1 otherwise.
///
/// For container health checks (`HEALTHCHECK CMD ["optimizerd", "probe"]`): the slim runtime image
/// has no curl. Without `--url` it asks the daemon this environment configures: the port of
/// `OPTIMIZERD_PORT`, the host of `OPTIMIZERD_HOST` (loopback when that is a wildcard address), and
/// https when `OPTIMIZERD_TLS_CERT` is set.
struct Probe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that a daemon answers GET /healthz with 200 (exit 0), else exit 1. For container health checks.",
        discussion: """
            Without --url, the URL comes from the daemon's own environment: http(s)://HOST:PORT/healthz with \
            OPTIMIZERD_HOST (127.0.0.1 when unset or a wildcard address such as 0.0.0.0), OPTIMIZERD_PORT \
            (8080) and https when OPTIMIZERD_TLS_CERT is set (the certificate is not verified).
            """
    )

    @Option(help: "The URL to get (default: from the environment, see above).") var url: String?
    @Option(help: "Seconds to wait for the answer.") var timeout: Double = 3

    func run() async throws {
        let target = url ?? Self.defaultURL(environment: ProcessInfo.processInfo.environment)
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
        do {
            let status = try await HealthProbe(url: target, timeout: .milliseconds(Int64(timeout * 1000))).status()
            guard status == 200 else {
                Self.report("unhealthy: \(target) answered \(status)")
                throw ExitCode(1)
            }
            print("healthy: \(target) answered 200")
        } catch let exit as ExitCode {
            throw exit
        } catch {
            Self.report("unhealthy: \(target): \(error)")
            throw ExitCode(1)
        }
    }

    /// `http(s)://HOST:PORT/healthz` for the daemon configured by `environment`.
    static func defaultURL(environment: [String: String]) -> String {
        var host = environment["OPTIMIZERD_HOST"].flatMap { $0.isEmpty ? nil : $0 } ?? "127.0.0.1"
        if ["0.0.0.0", "::", "[::]", "*"].contains(host) { host = "127.0.0.1" }
        if host.contains(":"), !host.hasPrefix("[") { host = "[\(host)]" }
        let port = environment["OPTIMIZERD_PORT"].flatMap { Int($0) } ?? 8080
        let scheme = environment["OPTIMIZERD_TLS_CERT"].map { $0.isEmpty ? "http" : "https" } ?? "http"
        return "\(scheme)://\(host):\(port)/healthz"
    }

    private static func report(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }
}
