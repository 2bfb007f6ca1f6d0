import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import OptimizerWire
import Testing

/// `--tls-cert`/`--tls-key`: the daemon serves HTTPS (AsyncHTTPClient over TLS, certificate not
/// verified by the test client).
struct TLSLiveTests {
    /// A self-signed P-256 certificate for localhost/127.0.0.1, valid until 2126 (test fixture only).
    static let certificate = """
        -----BEGIN CERTIFICATE-----
        MIIBnDCCAUGgAwIBAgIUbqIwmANO//tqIWdvDxeQcL4pRB4wCgYIKoZIzj0EAwIw
        FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTEyMjA0MDAzNloYDzIxMjYxMDI5
        MDQwMDM2WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
        PQMBBwNCAASWi2nJVWpLHoDpXHWlmO1NouBGbIN4rRXjA3B8cjh+BkLaG38NztDJ
        WXBBVKnFe+QVYFcM7Ernxr43XB5BBbu1o28wbTAdBgNVHQ4EFgQUDNmRgtOW1tJQ
        IjPumixYRKItVOUwHwYDVR0jBBgwFoAUDNmRgtOW1tJQIjPumixYRKItVOUwDwYD
        VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
        zj0EAwIDSQAwRgIhAKIDUkJx18/4PzqSYZbZX94kyx58U/QddXpfS026Dip2AiEA
        zlQrlPAV85WNsTbtVwquQB3IaZNRfQ5Jo4WPfoWgKdo=
        -----END CERTIFICATE-----

        """

    /// The certificate's private key (test fixture only).
    static let key = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXhQN6y4wNjqWXedX
        HCJKcE7QbzEYZwHKxFgekk6DVVWhRANCAASWi2nJVWpLHoDpXHWlmO1NouBGbIN4
        rRXjA3B8cjh+BkLaG38NztDJWXBBVKnFe+QVYFcM7Ernxr43XB5BBbu1
        -----END PRIVATE KEY-----

        """

    @Test func servesSessionsOverHTTPS() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("optimizerd-tls-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let certificate = directory.appendingPathComponent("cert.pem")
        let key = directory.appendingPathComponent("key.pem")
        try Data(Self.certificate.utf8).write(to: certificate)
        try Data(Self.key.utf8).write(to: key)

        try await makeApp(tls: (certificate.path, key.path)).test(.ahc(.https)) { client in
            let session = try await client.createSession(#"{"optimizer":"sgd","hyperparameters":{"lr":1}}"#)
            try await client.putParameters(session, try Body.tensors([("w", [2], [1, 2])]))
            let response = try await client.execute(
                uri: session.path + "/step", method: .post, headers: session.auth, body: try Body.tensors([("w", [2], [1, 1])]))
            #expect(try safetensors(response.body).floats(named: "w") == [0, 1])
        }
    }

    @Test func unreadableCertificateFailsAtStartup() {
        #expect(throws: (any Error).self) {
            _ = try makeApp(tls: ("/nonexistent/cert.pem", "/nonexistent/key.pem"))
        }
    }
}
