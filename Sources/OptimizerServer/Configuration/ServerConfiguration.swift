import NIOCore
public import OptimizerStore

/// Everything the daemon needs to start, as one value.
///
/// Built by the `optimizerd` executable from flags and `OPTIMIZERD_*` environment variables, then
/// passed to ``buildApplication(configuration:logger:)``. Nothing below the executable reads the
/// environment. Every property has a working default, so `ServerConfiguration()` serves on
/// 127.0.0.1:8080.
public struct ServerConfiguration: Sendable {
    /// When the write-ahead log is flushed to disk.
    public enum FsyncPolicy: String, Sendable, CaseIterable {
        /// Before every step response.
        case always
        /// Every ``ServerConfiguration/fsyncInterval``.
        case periodic
        /// Never explicitly; the operating system decides.
        case never
    }

    /// The address to bind. Defaults to loopback: without an admin token the daemon should not be
    /// reachable from other machines unless the operator says so.
    public var host: String
    /// The TCP port; 0 picks a free one.
    public var port: Int
    /// The largest request body accepted, in bytes, before and after decompression.
    public var maxBodyBytes: Int
    /// The admin token, if one is configured: it can do everything and is then required to create
    /// and list sessions. The executable reads it from `--admin-token-file` or `OPTIMIZERD_ADMIN_TOKEN`.
    public var adminToken: String?
    /// PEM certificate chain for TLS; TLS is on when both this and ``tlsKeyPath`` are set.
    public var tlsCertificatePath: String?
    /// PEM private key for TLS.
    public var tlsKeyPath: String?
    /// Threads of the compute pool that decompresses, decodes, steps and encodes (at least 1).
    public var computeThreads: Int
    /// Where the daemon keeps durable sessions (snapshots and write-ahead logs); nil keeps sessions
    /// in memory only (tests). The executable defaults to `./optimizerd-data`.
    public var dataDirectory: String?
    /// Write-ahead log flush policy.
    public var fsync: FsyncPolicy
    /// Flush interval for ``FsyncPolicy/periodic``.
    public var fsyncInterval: Duration
    /// A snapshot at least every this many steps (nil: 1000); see ``snapshotInterval`` and `SnapshotPolicy`.
    public var snapshotEvery: Int?
    /// ``DurabilityMode/log``: the least time between background snapshots while the log stays under
    /// 8 times the state. ``DurabilityMode/snapshot``: how often a snapshot is written while steps arrive.
    public var snapshotInterval: Duration
    /// The durability mode of sessions that do not choose one in their create body.
    public var durability: DurabilityMode
    /// Write-ahead log records of at least this many bytes are written with `O_DIRECT` (where the
    /// file system allows it); nil: all through the page cache.
    public var logDirectMinimum: Int?
    /// The most bytes a background snapshot copies into memory (nil: as much as the memory budget
    /// allows); the rest is written under the session's lock.
    public var snapshotCopyLimit: Int?
    /// The OpenAPI document served at `GET /openapi.yaml`. Nil (the default) serves the document
    /// embedded in the binary: the repository's `openapi.yaml` at build time, so the daemon serves
    /// it from any working directory. A path serves that file instead, read once at startup; the
    /// route then answers 404 when the file is absent.
    public var openAPIPath: String?
    /// Telemetry records kept per session for `GET …/history`.
    public var historyCapacity: Int
    /// How long a connection may go without sending anything the server can act on: a request head
    /// still incomplete, a request body that stalled, or a keep-alive connection between requests.
    /// The connection is then closed. It never cuts a request whose answer is being computed.
    public var idleTimeout: Duration
    /// The memory budget (`--max-memory`) that sessions' parameters and state, request bodies and
    /// transient copies are admitted against; nil: ``MemoryLimit/defaultBudget(cgroupRoot:physicalMemory:)``,
    /// 80 % of the smallest of the machine's memory, the cgroup's limit and the address-space limit (ulimit -v) less 1 GiB.
    public var maxMemory: MemoryLimit?
    /// How long the parts of a step in parts stay staged without a new part or the commit.
    public var stagedStepTTL: Duration

    /// Creates a configuration; every parameter has the daemon's default.
    public init(
        host: String = "127.0.0.1",
        port: Int = 8080,
        maxBodyBytes: Int = 1 << 30,
        adminToken: String? = nil,
        tlsCertificatePath: String? = nil,
        tlsKeyPath: String? = nil,
        computeThreads: Int = ServerConfiguration.defaultComputeThreads,
        dataDirectory: String? = nil,
        fsync: FsyncPolicy = .periodic,
        fsyncInterval: Duration = .seconds(1),
        snapshotEvery: Int? = nil,
        snapshotInterval: Duration = .seconds(30),
        durability: DurabilityMode = .log,
        logDirectMinimum: Int? = StoreConfiguration.defaultLogDirectMinimum,
        openAPIPath: String? = nil,
        historyCapacity: Int = 10_000,
        idleTimeout: Duration = .seconds(60),
        maxMemory: MemoryLimit? = nil,
        stagedStepTTL: Duration = .seconds(600)
    ) {
        self.host = host
        self.port = port
        self.maxBodyBytes = min(max(1, maxBodyBytes), Self.maxBodyBytesLimit)
        self.adminToken = adminToken
        self.tlsCertificatePath = tlsCertificatePath
        self.tlsKeyPath = tlsKeyPath
        self.computeThreads = max(1, computeThreads)
        self.dataDirectory = dataDirectory
        self.fsync = fsync
        self.fsyncInterval = fsyncInterval
        self.snapshotEvery = snapshotEvery
        self.snapshotInterval = snapshotInterval
        self.durability = durability
        self.logDirectMinimum = logDirectMinimum
        self.openAPIPath = openAPIPath
        self.historyCapacity = max(1, historyCapacity)
        self.idleTimeout = max(.milliseconds(1), idleTimeout)
        self.maxMemory = maxMemory
        self.stagedStepTTL = max(.milliseconds(1), stagedStepTTL)
    }

    /// The largest body limit possible: NIO's `ByteBuffer` holds at most 4 GiB − 1 bytes, and a
    /// compressed body is inflated into one byte more than the limit (to notice one too large).
    public static let maxBodyBytesLimit = Int(UInt32.max) - 1

    /// One compute thread per core.
    public static var defaultComputeThreads: Int { System.coreCount }

    /// The durable store's settings, when a data directory is configured.
    public var storeConfiguration: StoreConfiguration? {
        guard let dataDirectory else { return nil }
        let policy: OptimizerStore.FsyncPolicy
        switch fsync {
        case .always: policy = .always
        case .periodic: policy = .periodic(fsyncInterval)
        case .never: policy = .never
        }
        var configuration = StoreConfiguration(
            directory: dataDirectory, fsync: policy, durability: durability, snapshotEvery: snapshotEvery ?? 1000,
            snapshotInterval: snapshotInterval, logDirectMinimum: logDirectMinimum)
        configuration.snapshotCopyLimit = snapshotCopyLimit
        return configuration
    }

    /// Whether TLS is configured (both certificate and key paths are set).
    public var isTLSEnabled: Bool { tlsCertificatePath != nil && tlsKeyPath != nil }

    /// Whether the bind address is a loopback address.
    public var bindsLoopbackOnly: Bool {
        host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.")
    }
}
