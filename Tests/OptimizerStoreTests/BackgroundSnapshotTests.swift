import Foundation
import OptimizerKit
import Testing

@testable import OptimizerStore

/// Snapshots taken under the session's lock and written without it (`beginSnapshot`, `SnapshotWrite`,
/// `finishSnapshot`), the durability modes, and the snapshot policy.
struct BackgroundSnapshotTests {
    static func store(_ directory: TemporaryDirectory, durability: DurabilityMode = .log) throws -> DataDirectory {
        try DataDirectory(configuration: StoreConfiguration(directory: directory.path, fsync: .always, durability: durability, snapshotEvery: 0))
    }

    static func snapshot(_ session: OptimizerSession, _ durability: DurabilityMode = .log) -> SessionSnapshot {
        SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: "h", durability: durability)
    }

    static func files(_ directory: TemporaryDirectory) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory.path + "/sessions/s1"))?.sorted() ?? []
    }

    /// Steps `count` times without logging (durability snapshot).
    static func stepUnlogged(_ count: Int, _ session: OptimizerSession) throws {
        for _ in 0..<count {
            let next = session.step + 1
            try StoreFixtures.replay(LogRecord(kind: .step, step: UInt64(next), contentEncoding: nil, body: try StoreFixtures.stepBody(next)), session)
        }
    }

    @Test func stepsGoOnWhileASnapshotIsWrittenAndRecoveryIsExactBeforeAndAfterIt() throws {
        let directory = TemporaryDirectory()
        let session = try StoreFixtures.session()
        let journal = try Self.store(directory).create(Self.snapshot(session))
        try StoreFixtures.run(3, session: session, journal: journal)
        let write = try journal.beginSnapshot(Self.snapshot(session))
        // The session moves on before the snapshot is on disk: its steps land in the new log.
        try StoreFixtures.run(2, session: session, journal: journal)
        #expect(Self.files(directory).contains("wal-0000000000000003.log"))
        #expect(!Self.files(directory).contains("snapshot-0000000000000003.safetensors"))
        // A crash now: the previous snapshot and both logs give every step.
        let (before, _) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(StoreFixtures.fingerprint(before[0].session) == StoreFixtures.fingerprint(session))

        try write.write()
        journal.finishSnapshot(write, error: nil)
        #expect(journal.snapshotStep == 3 && journal.durableStep == 5)
        try StoreFixtures.run(1, session: session, journal: journal)
        let (after, failures) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty && after[0].notes.isEmpty)
        #expect(StoreFixtures.fingerprint(after[0].session) == StoreFixtures.fingerprint(session))
    }

    @Test func aFailedSnapshotLosesNothingAndTheLogsStillChain() throws {
        let directory = TemporaryDirectory()
        let session = try StoreFixtures.session()
        let journal = try Self.store(directory).create(Self.snapshot(session))
        try StoreFixtures.run(2, session: session, journal: journal)
        let write = try journal.beginSnapshot(Self.snapshot(session))
        journal.finishSnapshot(write, error: StoreError(code: .io, message: "disk went away"))
        try StoreFixtures.run(2, session: session, journal: journal)
        #expect(journal.snapshotStep == 0 && journal.wantsSnapshot(atStep: session.step) == false)
        let second = try journal.beginSnapshot(Self.snapshot(session))
        try second.write()
        journal.finishSnapshot(second, error: nil)
        let (sessions, _) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(StoreFixtures.fingerprint(sessions[0].session) == StoreFixtures.fingerprint(session))
        #expect(sessions[0].session.step == 4)
    }

    /// The shutdown snapshot (or a checkpoint restore) cancels a write under way: its file never
    /// appears afterwards under its final name.
    @Test func aCancelledWriteNeverPublishesItsFile() throws {
        let directory = TemporaryDirectory()
        let session = try StoreFixtures.session()
        let journal = try Self.store(directory).create(Self.snapshot(session))
        try StoreFixtures.run(2, session: session, journal: journal)
        let write = try journal.beginSnapshot(Self.snapshot(session))
        try StoreFixtures.run(1, session: session, journal: journal)
        try journal.writeSnapshot(Self.snapshot(session))
        #expect(throws: StoreError.self) { try write.write() }
        journal.finishSnapshot(write, error: nil)
        #expect(journal.snapshotStep == 3)
        #expect(!Self.files(directory).contains { $0.hasPrefix("snapshot-0000000000000002") })
    }

    @Test func snapshotModeLogsNoStepsAndRecoversTheNewestCompleteSnapshot() throws {
        let directory = TemporaryDirectory()
        let session = try StoreFixtures.session()
        let journal = try Self.store(directory, durability: .snapshot).create(Self.snapshot(session, .snapshot))
        #expect(!journal.logsSteps)
        try Self.stepUnlogged(3, session)
        let atThree = StoreFixtures.fingerprint(session)
        let write = try journal.beginSnapshot(Self.snapshot(session, .snapshot))
        try write.write()
        journal.finishSnapshot(write, error: nil)
        #expect(journal.durableStep == 3)
        try Self.stepUnlogged(2, session)
        // An upload after the unlogged steps 4 and 5 is logged, but cannot be replayed onto step 3.
        try journal.append(LogRecord(kind: .parameters, step: 5, contentEncoding: nil, body: [1, 2, 3]))
        // A snapshot begun but never completed: its log follows steps that were not logged.
        _ = try journal.beginSnapshot(Self.snapshot(session, .snapshot))
        #expect(journal.durableStep == 3)

        let (sessions, failures) = try Self.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty)
        let recovered = try #require(sessions.first)
        #expect(StoreFixtures.fingerprint(recovered.session) == atThree)
        #expect(recovered.journal.durability == .snapshot && recovered.journal.durableStep == 3)
        #expect(recovered.notes.contains { $0.contains("not logged") }, "\(recovered.notes)")
        #expect(!Self.files(directory).contains { $0.hasSuffix(".corrupt") })
    }

    @Test func logModePolicyWaitsForTheIntervalUnlessTheLogOutgrowsTheStateEightTimes() {
        let policy = SnapshotPolicy(configuration: StoreConfiguration(directory: "", snapshotEvery: 0), mode: .log)
        let state = 100 << 20
        #expect(!policy.isDue(steps: 0, logBytes: 100 * state, stateBytes: state, elapsed: .seconds(100)))
        #expect(!policy.isDue(steps: 5, logBytes: 5 * state, stateBytes: state, elapsed: .seconds(10)))
        #expect(policy.isDue(steps: 5, logBytes: 5 * state, stateBytes: state, elapsed: .seconds(30)))
        #expect(!policy.isDue(steps: 5, logBytes: state / 2, stateBytes: state, elapsed: .seconds(300)))
        #expect(policy.isDue(steps: 8, logBytes: 8 * state, stateBytes: state, elapsed: .zero))
    }

    @Test func snapshotModePolicyFollowsTheIntervalAndTheStepCount() {
        let policy = SnapshotPolicy(
            configuration: StoreConfiguration(directory: "", snapshotEvery: 50, snapshotInterval: .seconds(5)), mode: .snapshot)
        #expect(!policy.isDue(steps: 0, logBytes: 0, stateBytes: 1, elapsed: .seconds(60)))
        #expect(!policy.isDue(steps: 10, logBytes: 0, stateBytes: 1, elapsed: .seconds(4)))
        #expect(policy.isDue(steps: 1, logBytes: 0, stateBytes: 1, elapsed: .seconds(5)))
        #expect(policy.isDue(steps: 50, logBytes: 0, stateBytes: 1, elapsed: .zero))
    }
}
