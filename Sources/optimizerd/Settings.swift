import ArgumentParser
import Foundation
import Logging
import OptimizerServer
import OptimizerStore

/// Resolves each setting from its flag, else its `OPTIMIZERD_*` variable, else the default, and
/// checks it. Errors name the flag or variable.
struct Settings {
    let command: Serve
    let environment: [String: String]

    func configuration() throws -> ServerConfiguration {
        var configuration = ServerConfiguration()
        if let host = try string(command.host, .host) { configuration.host = host }
        if let port = try integer(command.port, .port, in: 0...65535) { configuration.port = port }
        configuration.dataDirectory = try string(command.dataDir, .dataDir) ?? "./optimizerd-data"
        if let text = try string(command.fsync, .fsync) {
            guard let policy = ServerConfiguration.FsyncPolicy(rawValue: text) else {
                throw invalid(.fsync, "expected always, periodic or never, got \"\(text)\"")
            }
            configuration.fsync = policy
        }
        if let text = try string(command.fsyncInterval, .fsyncInterval) {
            guard let interval = Self.duration(text), interval > .zero else {
                throw invalid(.fsyncInterval, "expected a positive duration up to 1e9s such as 1s or 500ms, got \"\(text)\"")
            }
            configuration.fsyncInterval = interval
        }
        configuration.snapshotEvery = try integer(command.snapshotEvery, .snapshotEvery, in: 1...Int.max)
        if let text = try string(command.snapshotInterval, .snapshotInterval) {
            guard let interval = Self.duration(text) else {
                throw invalid(.snapshotInterval, "expected a duration up to 1e9s such as 30s or 500ms, got \"\(text)\"")
            }
            configuration.snapshotInterval = interval
        }
        if let text = try string(command.durability, .durability) {
            guard let mode = DurabilityMode(rawValue: text) else {
                throw invalid(.durability, "expected log or snapshot, got \"\(text)\"")
            }
            configuration.durability = mode
        }
        if let text = try string(command.logDirectIO, .logDirectIO) {
            if text == "off" {
                configuration.logDirectMinimum = nil
            } else {
                guard let bytes = Self.byteCount(text), bytes > 0 else {
                    throw invalid(.logDirectIO, "expected a size such as 1MiB or 262144, or off, got \"\(text)\"")
                }
                configuration.logDirectMinimum = bytes
            }
        }
        if let text = try string(command.snapshotCopy, .snapshotCopy), text != "all" {
            guard let bytes = Self.byteCount(text) else {
                throw invalid(.snapshotCopy, "expected a size such as 2GiB, 0 or 1048576, or all, got \"\(text)\"")
            }
            configuration.snapshotCopyLimit = bytes
        }
        if let text = try string(command.maxBodyBytes, .maxBodyBytes) {
            guard let bytes = Self.byteCount(text), (1...ServerConfiguration.maxBodyBytesLimit).contains(bytes) else {
                throw invalid(.maxBodyBytes, "expected a size from 1 byte to 4294967294 (4GiB-2) such as 1GiB or 1048576, got \"\(text)\"")
            }
            configuration.maxBodyBytes = bytes
        }
        configuration.maxMemory = try memoryLimit()
        if let text = try string(command.idleTimeout, .idleTimeout) {
            guard let timeout = Self.duration(text), timeout > .zero else {
                throw invalid(.idleTimeout, "expected a positive duration up to 1e9s such as 60s or 500ms, got \"\(text)\"")
            }
            configuration.idleTimeout = timeout
        }
        if let text = try string(command.stagedStepTTL, .stagedStepTTL) {
            guard let ttl = Self.duration(text), ttl > .zero else {
                throw invalid(.stagedStepTTL, "expected a positive duration up to 1e9s such as 10m or 90s, got \"\(text)\"")
            }
            configuration.stagedStepTTL = ttl
        }
        configuration.adminToken = try adminToken()
        configuration.tlsCertificatePath = try string(command.tlsCert, .tlsCert)
        configuration.tlsKeyPath = try string(command.tlsKey, .tlsKey)
        if (configuration.tlsCertificatePath == nil) != (configuration.tlsKeyPath == nil) {
            throw ValidationError("--tls-cert and --tls-key must be given together")
        }
        if let threads = try integer(command.computeThreads, .computeThreads, in: 1...1024) {
            configuration.computeThreads = threads
        }
        return configuration
    }

    /// `--max-memory`, else `OPTIMIZERD_MAX_MEMORY`, else 80 % of the machine's, the cgroup's or the address space's
    /// memory. `OPTIMIZERD_CGROUP_ROOT` points the cgroup lookup elsewhere than `/sys/fs/cgroup` (tests).
    func memoryLimit() throws -> MemoryLimit {
        guard let text = try string(command.maxMemory, .maxMemory) else {
            return .defaultBudget(cgroupRoot: environment["OPTIMIZERD_CGROUP_ROOT"] ?? "/sys/fs/cgroup")
        }
        guard let bytes = Self.byteCount(text), bytes > 0 else {
            throw invalid(.maxMemory, "expected a size such as 8GiB, 512MiB or 1073741824, got \"\(text)\"")
        }
        return MemoryLimit(bytes: bytes, source: command.maxMemory != nil ? "--max-memory" : ServeFlag.maxMemory.environmentVariable)
    }

    func logLevel() throws -> Logger.Level {
        guard let text = try string(command.logLevel, .logLevel) else { return .info }
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw invalid(.logLevel, "expected trace, debug, info, notice, warning, error or critical, got \"\(text)\"")
        }
        return level
    }

    /// `--admin-token-file`, else `OPTIMIZERD_ADMIN_TOKEN` (the token), else `OPTIMIZERD_ADMIN_TOKEN_FILE`.
    private func adminToken() throws -> String? {
        var path = command.adminTokenFile
        if path == nil, let token = environment["OPTIMIZERD_ADMIN_TOKEN"] {
            let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !trimmed.isEmpty else { throw ValidationError("OPTIMIZERD_ADMIN_TOKEN is set but empty") }
            return trimmed
        }
        if path == nil { path = try string(nil, .adminTokenFile) }
        guard let path else { return nil }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw invalid(.adminTokenFile, "cannot read \(path)")
        }
        let token = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw invalid(.adminTokenFile, "\(path) is empty") }
        return token
    }

    // MARK: Lookup

    private func string(_ flag: String?, _ name: ServeFlag) throws -> String? {
        if let flag {
            guard !flag.isEmpty else { throw invalid(name, "is empty") }
            return flag
        }
        guard let value = environment[name.environmentVariable] else { return nil }
        guard !value.isEmpty else { throw ValidationError("\(name.environmentVariable) is set but empty") }
        return value
    }

    private func integer(_ flag: Int?, _ name: ServeFlag, in range: ClosedRange<Int>) throws -> Int? {
        let value: Int
        if let flag {
            value = flag
        } else if let text = try string(nil, name) {
            guard let parsed = Int(text) else { throw invalid(name, "expected an integer, got \"\(text)\"") }
            value = parsed
        } else {
            return nil
        }
        guard range.contains(value) else { throw invalid(name, "must be in \(range.lowerBound)...\(range.upperBound), got \(value)") }
        return value
    }

    private func invalid(_ name: ServeFlag, _ detail: String) -> ValidationError {
        ValidationError("--\(name.rawValue) (or \(name.environmentVariable)): \(detail)")
    }

    // MARK: Units

    /// `1048576`, `64KiB`, `512MiB`, `1GiB` (also K/M/G, KB/MB/GB: all binary).
    static func byteCount(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        guard let number = Int(digits) else { return nil }
        let units: [String: Int] = [
            "": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
            "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
        ]
        guard let unit = units[trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()] else { return nil }
        let (bytes, overflow) = number.multipliedReportingOverflow(by: unit)
        return overflow ? nil : bytes
    }

    /// The longest duration a flag takes (~31 years): longer ones do not fit the clocks' arithmetic.
    static let maxDurationSeconds = 1e9

    /// `1s`, `500ms`, `2m`, or plain seconds (`1.5`), at most ``maxDurationSeconds``.
    static func duration(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        for (suffix, scale) in [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("", 1.0)] where trimmed.hasSuffix(suffix) {
            guard let value = Double(trimmed.dropLast(suffix.count)), value.isFinite, value >= 0,
                value * scale <= maxDurationSeconds
            else { continue }
            return .milliseconds(Int64((value * scale * 1000).rounded()))
        }
        return nil
    }
}
