import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import OptimizerKit
import Prometheus

/// Builds the daemon: routes, middleware, the compute pool and the HTTP server, ready to
/// `runService()` (the executable) or `test(_:)` (tests).
///
/// ```swift
/// let app = try buildApplication(configuration: ServerConfiguration(port: 8080))
/// try await app.runService()  // until SIGTERM/SIGINT, then a graceful shutdown
/// ```
///
/// - Parameters:
///   - configuration: Address, limits, TLS, pool size; see ``ServerConfiguration``.
///   - logger: Where the daemon logs; a logger labelled `optimizerd` at `info` if nil.
/// - Returns: The application. Its metrics live in its own Prometheus registry (served at
///   `/metrics`); nothing global is bootstrapped.
/// - Throws: When the TLS certificate or key cannot be loaded.
public func buildApplication(
    configuration: ServerConfiguration,
    logger: Logger? = nil
) throws -> some ApplicationProtocol {
    let logger = logger ?? Logger(label: "optimizerd")
    let prometheus = PrometheusCollectorRegistry()
    let metrics = ServerMetrics(factory: PrometheusMetricsFactory(registry: prometheus))
    let pool = ComputePool(threads: configuration.computeThreads)
    let storage = try configuration.storeConfiguration.map { try SessionStorage(configuration: $0, logger: logger) } ?? .inMemory
    if let reason = storage.unavailableReason {
        logger.error("data directory unavailable: sessions cannot be created", metadata: ["store.reason": .string(reason)])
    }
    let limit = configuration.maxMemory ?? .defaultBudget()
    let memory = MemoryBudget(limit: limit.bytes, source: limit.source, pool: .shared)
    let sessions = SessionRegistry(pool: pool, historyCapacity: configuration.historyCapacity, storage: storage, memory: memory)
    sessions.recover(pool: pool, historyCapacity: configuration.historyCapacity, logger: logger)
    metrics.setSessionCount(sessions.count)
    let dependencies = RouteDependencies(
        sessions: sessions,
        pool: pool,
        bodies: BodyReader(maxBytes: configuration.maxBodyBytes, pool: pool, metrics: metrics, memory: memory),
        metrics: metrics,
        admin: configuration.adminToken.map { TokenDigest(of: $0) },
        stagedStepTTL: configuration.stagedStepTTL
    )

    let router = Router(context: OptimizerRequestContext.self)
    let routes = RecordingRouter(router: router, methods: RouteMethods())
    routes.add(middleware: MetricsMiddleware(metrics: metrics, sessions: sessions))
    routes.add(middleware: RequestLoggingMiddleware())
    routes.add(middleware: ProblemMiddleware(routes: routes.methods))
    ServiceRoutes(dependencies: dependencies, registry: prometheus, openAPI: loadOpenAPI(configuration, logger: logger))
        .add(to: routes)
    SessionRoutes(dependencies: dependencies).add(to: routes)
    TensorRoutes(dependencies: dependencies).add(to: routes)
    PartRoutes(dependencies: dependencies).add(to: routes)
    CheckpointRoutes(dependencies: dependencies).add(to: routes)
    DashboardRoutes().add(to: routes)

    let http1 = HTTPServerBuilder.http1(
        configuration: .init(
            // The idle timeout is IdleTimeoutHandler's, not Hummingbird's: Hummingbird's cuts an answer
            // that a slow client is still downloading.
            additionalChannelHandlers: [
                ContinueHandler(), ParseErrorHandler(), IdleTimeoutHandler(timeout: TimeAmount(configuration.idleTimeout)),
            ],
            idleTimeout: nil,
            httpDecoderConfiguration: RequestLimits.httpDecoder
        )
    )
    let server = configuration.isTLSEnabled ? try .tls(http1, tlsConfiguration: makeTLSConfiguration(configuration)) : http1

    if configuration.adminToken == nil, !configuration.bindsLoopbackOnly {
        logger.warning(
            "binding a non-loopback address without an admin token: anyone who can reach it can create sessions",
            metadata: ["server.host": .string(configuration.host)]
        )
    }
    logger.info(
        "optimizerd configured",
        metadata: [
            "server.host": .string(configuration.host), "server.port": .stringConvertible(configuration.port),
            "server.tls": .stringConvertible(configuration.isTLSEnabled),
            "server.admin_token": .stringConvertible(configuration.adminToken != nil),
            "limits.max_body_bytes": .stringConvertible(configuration.maxBodyBytes),
            "limits.idle_timeout": .stringConvertible(configuration.idleTimeout),
            "limits.max_memory": .stringConvertible(memory.limit),
            "limits.max_memory.source": .string(memory.source),
            "memory.used": .stringConvertible(memory.used),
            "compute.threads": .stringConvertible(pool.threads),
            "compute.kernels": .string(KernelVariant.active.rawValue),
            "store.directory": .string(configuration.dataDirectory ?? "(memory only)"),
            "store.fsync": .string(configuration.fsync.rawValue),
            "sessions.recovered": .stringConvertible(storage.recoveryReport.recovered),
        ]
    )
    return Application(
        router: router,
        server: server,
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "optimizerd"),
        services: [pool, JournalService(sessions: sessions, logger: logger), MemoryTrimService()],
        logger: logger
    )
}

/// The TLS configuration from the PEM certificate chain and key files.
private func makeTLSConfiguration(_ configuration: ServerConfiguration) throws -> TLSConfiguration {
    guard let certificatePath = configuration.tlsCertificatePath, let keyPath = configuration.tlsKeyPath else {
        preconditionFailure("TLS is enabled only when both paths are set")
    }
    let chain: [NIOSSLCertificateSource]
    do {
        chain = try NIOSSLCertificate.fromPEMFile(certificatePath).map { NIOSSLCertificateSource.certificate($0) }
    } catch {
        throw StartupError("--tls-cert \(certificatePath): not a readable PEM certificate chain (\(error))")
    }
    let key: NIOSSLPrivateKey
    do {
        key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
    } catch {
        throw StartupError("--tls-key \(keyPath): not a readable PEM private key (\(error))")
    }
    return TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
}

/// Why the daemon cannot start, said as the user's command line would put it.
struct StartupError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}

/// The OpenAPI document: the one embedded in the binary (``ServerConfiguration/openAPIPath`` nil),
/// or the configured file, read once; nil (the route answers 404) when that file is not there.
private func loadOpenAPI(_ configuration: ServerConfiguration, logger: Logger) -> ByteBuffer? {
    // PackageResources is generated by SwiftPM from the `embedInCode` resource, a symlink to the
    // repository's openapi.yaml (see Package.swift).
    guard let path = configuration.openAPIPath else { return ByteBuffer(bytes: PackageResources.openapi_yaml) }
    guard let data = FileManager.default.contents(atPath: path) else {
        logger.debug("no OpenAPI document to serve", metadata: ["openapi.path": .string(path)])
        return nil
    }
    return ByteBuffer(bytes: data)
}
