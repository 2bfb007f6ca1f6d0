import Foundation
import OptimizerKit
import Testing

@testable import OptimizerStore

/// Bodies written to a spool file while they arrive and adopted by the write-ahead log: read back
/// exactly, from aligned and unaligned memory, in uneven chunks; a record whose body file is
/// missing or damaged ends the log like a torn tail; nothing is left behind by a spool that was
/// abandoned or not adopted; body files go with their log's generation, and recovery replays them.
struct SpooledBodyTests {
    /// `count` bytes at `offset` past a page boundary (0: aligned, so direct writes are possible).
    final class Body {
        let memory: UnsafeMutableRawBufferPointer
        let bytes: UnsafeMutableRawBufferPointer

        init(_ values: [UInt8], offset: Int = 0) {
            memory = UnsafeMutableRawBufferPointer.allocate(alignedTo: 4096, count: values.count + offset + 1)!
            bytes = UnsafeMutableRawBufferPointer(rebasing: memory[offset..<(offset + values.count)])
            bytes.copyBytes(from: values)
        }

        deinit { memory.deallocate() }

        /// The first `count` bytes, as a receiver has them after a chunk.
        func prefix(_ count: Int) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[..<count]) }
        var all: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
    }

    static func values(_ count: Int, seed: UInt32) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: (UInt32($0) &* 2_654_435_761 &+ seed) >> 24) }
    }

    /// Spools `body` as a receiver would, handing it over after chunks of `chunk` bytes.
    static func spool(_ body: Body, into directory: String, chunk: Int, minimum: Int = 1) async throws -> SpooledBody {
        let spool = try #require(BodySpool(target: SpoolTarget(directory: directory, minimumBytes: minimum), length: body.bytes.count))
        var received = 0
        while received < body.bytes.count {
            received = min(body.bytes.count, received + chunk)
            spool.received(body.prefix(received))
        }
        return try #require(await spool.finish(body.all))
    }

    static func spoolFiles(_ directory: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasPrefix("spool-") }
    }

    @Test(arguments: [0, 1, 100]) func aSpooledBodyIsReadBackFromTheLogExactly(memoryOffset: Int) async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal-0000000000000000.log"
        let log = try WriteAheadLog(path: path, directMinimum: 4096)
        let small = LogRecord(kind: .configure, step: 0, contentEncoding: nil, body: Array("{\"lr\":0.5}".utf8))
        try log.append(small, sync: false)
        // Crosses two background slices and ends mid-block; chunks do not line up with anything.
        let values = Self.values(BodySpool.sliceSize * 2 + 4096 * 3 + 77, seed: 7)
        let body = Body(values, offset: memoryOffset)
        let spooled = try await Self.spool(body, into: directory.path, chunk: 1_000_003)
        let offset = log.length
        try log.append(kind: .step, step: 1, spooled: spooled, sync: false, deferSync: true)
        let after = LogRecord(kind: .step, step: 2, contentEncoding: nil, body: Self.values(5000, seed: 9))
        try log.append(after, sync: false)
        try log.sync()

        let name = "wal-0000000000000000.\(offset).body"
        #expect(FileManager.default.fileExists(atPath: directory.path + "/" + name))
        #expect(Self.spoolFiles(directory.path).isEmpty)
        let (read, result) = try AlignedLogRecordTests.scanAll(path)
        #expect(result.problem == nil && result.validLength == log.length)
        #expect(read == [small, LogRecord(kind: .step, step: 1, contentEncoding: nil, body: values), after])
        // The log itself holds only a small record for the spooled body.
        #expect(log.length < 3 * 4096 + after.body.count + 200)
        #expect(SessionJournal.bodyFileLogStep(name) == 0)
    }

    @Test(arguments: ["missing", "short", "flipped"]) func aRecordWhoseBodyFileIsNotAllThereEndsTheLog(damage: String) async throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal-0000000000000003.log"
        let log = try WriteAheadLog(path: path, directMinimum: 4096)
        let first = LogRecord(kind: .step, step: 4, contentEncoding: nil, body: Self.values(300, seed: 1))
        try log.append(first, sync: false)
        let offset = log.length
        let spooled = try await Self.spool(Body(Self.values(50_000, seed: 2)), into: directory.path, chunk: 8192)
        try log.append(kind: .step, step: 5, spooled: spooled, sync: true, deferSync: false)
        try log.append(LogRecord(kind: .step, step: 6, contentEncoding: nil, body: Self.values(300, seed: 3)), sync: true)

        let bodyPath = directory.path + "/wal-0000000000000003.\(offset).body"
        switch damage {
        case "missing": unlink(bodyPath)
        case "short": truncate(bodyPath, 49_999)
        default:
            let handle = try #require(FileHandle(forUpdatingAtPath: bodyPath))
            try handle.seek(toOffset: 12_345)
            let byte = try #require(try handle.read(upToCount: 1)).first!
            try handle.seek(toOffset: 12_345)
            try handle.write(contentsOf: [byte ^ 0x10])
            try handle.close()
        }
        let (read, result) = try AlignedLogRecordTests.scanAll(path)
        #expect(read == [first])
        #expect(result.validLength == offset)
        #expect(result.isTornTail, "\(result.problem ?? "no problem")")
        #expect(result.problem?.contains("body file") == true)

        // Reopened at the cut (as recovery does), the log drops the body files of the cut records
        // and of a rename a crash kept from being logged, and leaves other logs' body files alone.
        let orphan = directory.path + "/wal-0000000000000003.\(offset + 8192).body"
        let otherLog = directory.path + "/wal-0000000000000009.\(offset).body"
        for path in [orphan, otherLog] { #expect(FileManager.default.createFile(atPath: path, contents: Data([1]))) }
        _ = try WriteAheadLog(path: path, validLength: result.validLength, directMinimum: 4096)
        #expect(!FileManager.default.fileExists(atPath: orphan))
        #expect(!FileManager.default.fileExists(atPath: bodyPath))
        #expect(FileManager.default.fileExists(atPath: otherLog))
    }

    @Test func aSpoolThatIsAbandonedNotAdoptedOrNotTheDeclaredBodyLeavesNoFile() async throws {
        let directory = TemporaryDirectory()
        let target = SpoolTarget(directory: directory.path, minimumBytes: 1)
        let body = Body(Self.values(9 << 20, seed: 4))

        let abandoned = try #require(BodySpool(target: target, length: body.bytes.count))
        abandoned.received(body.prefix(5 << 20))
        #expect(Self.spoolFiles(directory.path).count == 1)
        await abandoned.abandon()
        #expect(Self.spoolFiles(directory.path).isEmpty)

        // A body that ended up shorter than declared is not spooled.
        let short = try #require(BodySpool(target: target, length: body.bytes.count + 1))
        short.received(body.all)
        #expect(await short.finish(body.all) == nil)
        #expect(Self.spoolFiles(directory.path).isEmpty)

        // A complete spool that no log adopts (the step was refused, or was a retry) goes with it.
        var spooled: SpooledBody? = try await Self.spool(body, into: directory.path, chunk: 1 << 20)
        #expect(Self.spoolFiles(directory.path).count == 1)
        #expect(spooled?.length == body.bytes.count)
        spooled = nil
        #expect(Self.spoolFiles(directory.path).isEmpty)

        // Too small for the target: no spool at all.
        #expect(BodySpool(target: SpoolTarget(directory: directory.path, minimumBytes: 1 << 20), length: 1000) == nil)
    }

    @Test func spooledStepsRecoverBitIdenticallyAndTheirFilesGoWithTheirGeneration() async throws {
        let directory = TemporaryDirectory()
        let configuration = StoreConfiguration(directory: directory.path, fsync: .periodic(.seconds(60)), snapshotEvery: 3, logDirectMinimum: 64)
        let store = try DataDirectory(configuration: configuration)
        let session = try StoreFixtures.session()
        let journal = try store.create(SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: "h"))
        let target = try #require(journal.spoolTarget)
        for _ in 0..<10 {
            let next = session.step + 1
            let values = try StoreFixtures.stepBody(next)
            let body = Body(values)
            let spooled = try await Self.spool(body, into: target.directory, chunk: 40)
            try journal.append(kind: .step, step: next, contentEncoding: nil, body: body.all, spooled: spooled)
            try StoreFixtures.replay(LogRecord(kind: .step, step: UInt64(next), contentEncoding: nil, body: values), session)
            if journal.wantsSnapshot(atStep: session.step) {
                try journal.writeSnapshot(SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: "h"))
            }
        }
        try journal.sync()
        let files = DataDirectoryTests.files(directory)
        // Two generations kept (6 and 9): the bodies of steps 7–9 in log 6 and of step 10 in log 9;
        // those of the logs before went with them.
        #expect(files.filter { $0.hasSuffix(".body") }.map { SessionJournal.bodyFileLogStep($0) } == [6, 6, 6, 9])
        #expect(!files.contains { $0.hasPrefix("spool-") })
        let (sessions, failures) = try DataDirectory(configuration: configuration).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty)
        #expect(StoreFixtures.fingerprint(try #require(sessions.first).session) == StoreFixtures.fingerprint(session))
    }

    /// Spooling follows the direct-write minimum (uploads are logged in every mode; whether steps
    /// are is ``SessionJournal/logsSteps``).
    @Test func spoolingNeedsDirectWrites() throws {
        let directory = TemporaryDirectory()
        for (durability, minimum, expected) in [(DurabilityMode.log, 1 << 20, true), (.snapshot, 1 << 20, true), (.log, nil, false)] {
            let configuration = StoreConfiguration(
                directory: directory.path + "/\(durability)-\(minimum ?? 0)", fsync: .always, logDirectMinimum: minimum)
            let snapshot = SessionSnapshot(session: try StoreFixtures.session(), id: "s1", name: nil, tokenHash: nil, durability: durability)
            let journal = try DataDirectory(configuration: configuration).create(snapshot)
            #expect((journal.spoolTarget != nil) == expected, "\(durability) \(String(describing: minimum))")
            #expect(journal.spoolTarget?.minimumBytes == minimum)
            #expect(journal.logsSteps == (durability == .log))
        }
    }
}
