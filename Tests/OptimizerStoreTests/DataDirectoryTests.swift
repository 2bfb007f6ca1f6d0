import Foundation
import OptimizerKit
import Testing

@testable import OptimizerStore

struct DataDirectoryTests {
    static func store(_ directory: TemporaryDirectory, snapshotEvery: Int = 1000) throws -> DataDirectory {
        try DataDirectory(configuration: StoreConfiguration(directory: directory.path, fsync: .always, snapshotEvery: snapshotEvery))
    }

    /// Runs `count` steps durably and returns the live session for comparison.
    static func runDurably(_ count: Int, store: DataDirectory, snapshotEvery: Int = 1000) throws -> OptimizerSession {
        let session = try StoreFixtures.session()
        let journal = try store.create(SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: "h"))
        for _ in 0..<count {
            try StoreFixtures.run(1, session: session, journal: journal)
            if journal.wantsSnapshot(atStep: session.step) {
                try journal.writeSnapshot(SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: "h"))
            }
        }
        return session
    }

    static func files(_ directory: TemporaryDirectory) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory.path + "/sessions/s1"))?.sorted() ?? []
    }

    @Test func recoveryReplaysTheLogBitIdentically() throws {
        let directory = TemporaryDirectory()
        let live = try Self.runDurably(7, store: try Self.store(directory))
        let (sessions, failures) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty)
        #expect(sessions.count == 1)
        let recovered = sessions[0]
        #expect(recovered.snapshot.tokenHash == "h")
        #expect(StoreFixtures.fingerprint(recovered.session) == StoreFixtures.fingerprint(live))
        #expect(recovered.journal.durableStep == 7)
        // The recovered session keeps stepping exactly like one that never stopped.
        try StoreFixtures.run(3, session: recovered.session, journal: recovered.journal)
        try StoreFixtures.run(
            3, session: live, journal: try Self.store(TemporaryDirectory()).create(SessionSnapshot(session: live, id: "s1", name: nil, tokenHash: nil)))
        #expect(StoreFixtures.fingerprint(recovered.session) == StoreFixtures.fingerprint(live))
    }

    @Test func snapshotsRotateAndKeepTwoGenerations() throws {
        let directory = TemporaryDirectory()
        let live = try Self.runDurably(10, store: try Self.store(directory, snapshotEvery: 3), snapshotEvery: 3)
        #expect(
            Self.files(directory) == [
                "snapshot-0000000000000006.safetensors", "snapshot-0000000000000009.safetensors",
                "wal-0000000000000006.log", "wal-0000000000000009.log",
            ]
        )
        let (sessions, _) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(StoreFixtures.fingerprint(sessions[0].session) == StoreFixtures.fingerprint(live))
    }

    @Test func corruptNewestSnapshotFallsBackToThePreviousGeneration() throws {
        let directory = TemporaryDirectory()
        let live = try Self.runDurably(10, store: try Self.store(directory, snapshotEvery: 3), snapshotEvery: 3)
        let newest = directory.path + "/sessions/s1/snapshot-0000000000000009.safetensors"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: newest))
        bytes[bytes.count - 5] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: newest))
        let (sessions, failures) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty)
        #expect(StoreFixtures.fingerprint(sessions[0].session) == StoreFixtures.fingerprint(live))
        #expect(sessions[0].notes.contains { $0.contains("snapshot-0000000000000009.safetensors") })
        #expect(Self.files(directory).contains("snapshot-0000000000000009.safetensors.corrupt"))
    }

    @Test func tornLogTailLosesOnlyTheUnfinishedRecord() throws {
        let directory = TemporaryDirectory()
        _ = try Self.runDurably(5, store: try Self.store(directory))
        let log = directory.path + "/sessions/s1/wal-0000000000000000.log"
        let size = try FileManager.default.attributesOfItem(atPath: log)[.size] as! Int
        truncate(log, off_t(size - 10))
        let (sessions, failures) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty)
        #expect(sessions[0].session.step == 4)
        #expect(sessions[0].notes.contains { $0.contains("torn tail") })
        // Appending continues cleanly after the cut.
        try StoreFixtures.run(2, session: sessions[0].session, journal: sessions[0].journal)
        let (again, _) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(again[0].session.step == 6)
        #expect(StoreFixtures.fingerprint(again[0].session) == StoreFixtures.fingerprint(sessions[0].session))
    }

    @Test func aBrokenSessionDoesNotStopTheOthers() throws {
        let directory = TemporaryDirectory()
        let live = try Self.runDurably(2, store: try Self.store(directory))
        let broken = directory.path + "/sessions/zz-broken"
        try FileManager.default.createDirectory(atPath: broken, withIntermediateDirectories: true)
        try Data("not a snapshot".utf8).write(to: URL(fileURLWithPath: broken + "/snapshot-0000000000000000.safetensors"))
        let (sessions, failures) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(sessions.count == 1)
        #expect(StoreFixtures.fingerprint(sessions[0].session) == StoreFixtures.fingerprint(live))
        #expect(failures.map(\.id) == ["zz-broken"])
    }

    @Test func deleteRemovesEverything() throws {
        let directory = TemporaryDirectory()
        let store = try Self.store(directory)
        _ = try Self.runDurably(2, store: store)
        try store.delete(id: "s1")
        #expect(Self.files(directory).isEmpty)
        #expect(try Self.store(directory).recoverAll(replay: StoreFixtures.replay).sessions.isEmpty)
    }
}
