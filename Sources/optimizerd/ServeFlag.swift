import ArgumentParser
import Foundation

/// The flags of `optimizerd serve`: name, environment variable, default and explanation, in one place
/// so that `--help` of both commands and the environment lookup agree.
enum ServeFlag: String, CaseIterable {
    case host, port
    case dataDir = "data-dir"
    case fsync
    case fsyncInterval = "fsync-interval"
    case snapshotEvery = "snapshot-every"
    case snapshotInterval = "snapshot-interval"
    case durability
    case logDirectIO = "log-direct-io"
    case snapshotCopy = "snapshot-copy"
    case maxBodyBytes = "max-body-bytes"
    case maxMemory = "max-memory"
    case idleTimeout = "idle-timeout"
    case stagedStepTTL = "staged-step-ttl"
    case adminTokenFile = "admin-token-file"
    case tlsCert = "tls-cert"
    case tlsKey = "tls-key"
    case computeThreads = "compute-threads"
    case logLevel = "log-level"

    /// `OPTIMIZERD_<NAME>`, e.g. `OPTIMIZERD_MAX_BODY_BYTES`.
    var environmentVariable: String { "OPTIMIZERD_" + rawValue.uppercased().replacingOccurrences(of: "-", with: "_") }

    var explanation: String {
        switch self {
        case .host:
            return "Address to bind. Without an admin token, keep the default loopback address unless the network is trusted (a warning is logged otherwise)."
        case .port: return "TCP port to listen on (0 picks a free port)."
        case .dataDir: return "Directory for durable session state (snapshots and write-ahead logs), created if missing."
        case .fsync:
            return
                "always | periodic | never: when the write-ahead log is flushed to disk. always: before every response (nothing acknowledged is lost); periodic: every --fsync-interval; never: left to the OS (survives a crash of the daemon, not of the machine)."
        case .fsyncInterval: return "Flush interval for --fsync periodic, e.g. 1s or 500ms: at most this much of acknowledged work can be lost on power loss."
        case .snapshotEvery: return "A snapshot at least every this many steps (snapshots are also written by --snapshot-interval, and on graceful shutdown)."
        case .snapshotInterval:
            return
                "e.g. 30s or 500ms. With --durability log: the least time between two background snapshots while the log stays under 8 times the state (then one starts whatever the time). With --durability snapshot: how often a snapshot is written while steps arrive, so at most this much (plus one snapshot's write) of steps is lost on a crash."
        case .durability:
            return
                "log | snapshot: the default for sessions that do not choose (create body \"durability\"). log: every step's gradients go to the write-ahead log before they are applied (nothing acknowledged is lost, within --fsync). snapshot: steps are not logged; background snapshots every --snapshot-interval carry durability, and a restarted session resumes at its durable_step (the newest complete snapshot)."
        case .logDirectIO:
            return
                "Write-ahead log records of at least this size (e.g. 1MiB, 256KiB, plain bytes; off: none) are written with O_DIRECT, around the page cache, padded to 4 KiB. Large buffered appends are throttled to the disk's write-back speed once dirty pages pile up; direct writes keep going at the device's speed. File systems without O_DIRECT get plain writes. Step bodies of this size are written to disk while they arrive, and the log names their file."
        case .snapshotCopy:
            return
                "The most a background snapshot copies into memory (e.g. 2GiB, 0, plain bytes; all: as much as --max-memory has room for) to write it while the session steps on. The rest of the snapshot is written to disk from the session itself, under its lock: its steps wait for that write. 0 keeps snapshots from needing memory (peak memory stays at the session and one step) at the price of that wait."
        case .maxBodyBytes:
            return "Largest request body, before and after decompression (e.g. 1GiB, 512MiB, 1048576). Larger bodies get 413."
        case .maxMemory:
            return
                "Memory budget (e.g. 8GiB, 512MiB, plain bytes): sessions' parameters and optimizer state (counted at upload, also the state later steps create), request bodies and transient copies are admitted against it; a request that would pass it gets 507 and changes nothing. The default leaves 20 % for what is not counted (the binary, thread stacks, allocator slack, page cache of the logs); the source is logged at start."
        case .idleTimeout:
            return
                "Close a connection on which nothing moves for this long (e.g. 60s, 500ms): no request part arrives and no byte of an answer leaves. That closes an unfinished request head, a stalled upload, an idle keep-alive connection, and a download whose client stopped reading (1 to 1.25 timeouts after its last byte left). An answer that the client reads slowly but steadily is never cut, however long it takes, nor is a request whose answer is being computed."
        case .stagedStepTTL:
            return
                "How long the parts of a step sent in parts (PUT …/steps/{n}/parts/{part}) stay staged without a new part or the commit (e.g. 10m, 90s). Then they are dropped and their memory is given back."
        case .adminTokenFile:
            return
                "File holding the admin token. When set (or OPTIMIZERD_ADMIN_TOKEN holds the token itself), the admin token is required to create and list sessions and may act on every session."
        case .tlsCert: return "PEM certificate chain; with --tls-key, serve HTTPS."
        case .tlsKey: return "PEM private key for --tls-cert."
        case .computeThreads: return "Threads that decompress, decode, step and encode (default: one per core)."
        case .logLevel: return "trace | debug | info | notice | warning | error | critical."
        }
    }

    var defaultDescription: String {
        switch self {
        case .host: return "127.0.0.1"
        case .port: return "8080"
        case .dataDir: return "./optimizerd-data"
        case .fsync: return "periodic"
        case .fsyncInterval: return "1s"
        case .snapshotEvery: return "1000"
        case .snapshotInterval: return "30s"
        case .durability: return "log"
        case .logDirectIO: return "1MiB"
        case .snapshotCopy: return "all"
        case .maxBodyBytes: return "1GiB"
        case .maxMemory: return "80 % of the smallest of the machine's memory, the cgroup's limit and the address-space limit (ulimit -v, less 1 GiB)"
        case .idleTimeout: return "60s"
        case .stagedStepTTL: return "10m"
        case .adminTokenFile: return "none: no admin token"
        case .tlsCert, .tlsKey: return "none: plain HTTP"
        case .computeThreads: return "number of cores"
        case .logLevel: return "info"
        }
    }

    /// The `--help` text of the flag.
    var help: ArgumentHelp {
        ArgumentHelp("\(explanation) (env: \(environmentVariable); default: \(defaultDescription))")
    }

    /// All flags as lines for the root command's help.
    static var table: String {
        allCases.map { "--\($0.rawValue) <value>  (env \($0.environmentVariable); default \($0.defaultDescription))\n    \($0.explanation)" }
            .joined(separator: "\n") + "\nOPTIMIZERD_ADMIN_TOKEN\n    The admin token itself, instead of a file."
    }
}
