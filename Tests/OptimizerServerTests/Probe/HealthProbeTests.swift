import Foundation
import HummingbirdTesting
import NIOCore
import NIOPosix
import OptimizerServer
import Testing

@testable import optimizerd

/// `optimizerd probe` (the container's health check): the status of a live daemon's `/healthz`, and
/// the URL it derives from the daemon's environment.
struct HealthProbeTests {
    @Test func readsTheStatusOfALiveDaemon() async throws {
        try await makeApp().test(.live) { client in
            let port = try #require(client.port)
            #expect(try await HealthProbe(url: "http://127.0.0.1:\(port)/healthz").status() == 200)
            #expect(try await HealthProbe(url: "http://localhost:\(port)/nothing-here").status() == 404)
        }
    }

    @Test func failsWhenNothingListens() async throws {
        // A port that was free a moment ago.
        let socket = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(socket.localAddress?.port)
        try await socket.close()
        await #expect(throws: (any Error).self) {
            try await HealthProbe(url: "http://127.0.0.1:\(port)/healthz", timeout: .seconds(2)).status()
        }
    }

    @Test func rejectsURLsThatAreNotHTTP() {
        #expect(throws: HealthProbe.Failure.self) { try HealthProbe(url: "ftp://example/healthz") }
        #expect(throws: HealthProbe.Failure.self) { try HealthProbe(url: "not a url") }
    }

    @Test(arguments: [
        ([:], "http://127.0.0.1:8080/healthz"),
        (["OPTIMIZERD_HOST": "0.0.0.0", "OPTIMIZERD_PORT": "9000"], "http://127.0.0.1:9000/healthz"),
        (["OPTIMIZERD_HOST": "::"], "http://127.0.0.1:8080/healthz"),
        (["OPTIMIZERD_HOST": "10.1.2.3"], "http://10.1.2.3:8080/healthz"),
        (["OPTIMIZERD_HOST": "::1"], "http://[::1]:8080/healthz"),
        (["OPTIMIZERD_TLS_CERT": "/etc/cert.pem"], "https://127.0.0.1:8080/healthz"),
    ])
    func defaultURLFollowsTheDaemonsEnvironment(environment: [String: String], url: String) {
        #expect(Probe.defaultURL(environment: environment) == url)
    }
}
