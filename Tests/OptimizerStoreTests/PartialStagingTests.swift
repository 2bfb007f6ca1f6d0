import Foundation
import OptimizerKit
import Testing

@testable import OptimizerStore

/// A background snapshot whose copy has less memory than the session's data: the head of the data
/// section is written to the snapshot's file under the session's lock, the tail is copied, and the
/// file is the same snapshot as a whole copy would give, as of the moment it was staged.
struct PartialStagingTests {
    static func snapshot(_ session: OptimizerSession) -> SessionSnapshot {
        SessionSnapshot(session: session, id: "s1", name: "demo", tokenHash: "h", durability: .log)
    }

    /// A journal's background snapshot after `steps` logged steps, begun with no memory for a copy
    /// (all of it written under the lock).
    static func uncopiedSnapshot(after steps: Int) throws -> (TemporaryDirectory, OptimizerSession, SessionJournal, SnapshotWrite) {
        let directory = TemporaryDirectory()
        let session = try StoreFixtures.session()
        let journal = try BackgroundSnapshotTests.store(directory).create(Self.snapshot(session))
        try StoreFixtures.run(steps, session: session, journal: journal)
        return (directory, session, journal, try journal.beginSnapshot(Self.snapshot(session), staging: SnapshotStaging(byteCount: 0)))
    }

    /// Recovery of `directory` gives `session` bit for bit, with nothing to report.
    static func expectExactRecovery(_ directory: TemporaryDirectory, of session: OptimizerSession) throws {
        let (recovered, failures) = try BackgroundSnapshotTests.store(directory).recoverAll(replay: StoreFixtures.replay)
        #expect(failures.isEmpty && recovered[0].notes.isEmpty)
        #expect(StoreFixtures.fingerprint(recovered[0].session) == StoreFixtures.fingerprint(session))
    }

    /// The fixtures' session after `steps` logged steps, and its data directory.
    static func stepped(_ steps: Int) throws -> (OptimizerSession, TemporaryDirectory) {
        let session = try StoreFixtures.session()
        let directory = TemporaryDirectory()
        let store = try DataDirectory(configuration: StoreConfiguration(directory: directory.path, fsync: .always))
        try StoreFixtures.run(steps, session: session, journal: try store.create(Self.snapshot(session)))
        return (session, directory)
    }

    /// Every entry boundary of the data section, and sizes between them, from no room at all to a
    /// whole copy.
    static func stagingSizes(_ snapshot: SessionSnapshot) throws -> [Int] {
        let size = snapshot.dataByteCount
        let whole = try snapshot.stage(into: nil)
        let tails = whole.entries.map { size - $0.offset }
        return Array(Set([0, 1, 7, size - 1, size] + tails + tails.map { $0 + 3 }.filter { $0 < size })).sorted()
    }

    @Test func everyStagingSizeWritesTheSnapshotAsOfItsStaging() throws {
        let (session, directory) = try Self.stepped(2)
        let snapshot = Self.snapshot(session)
        let expected = try SessionSnapshot(decoding: try snapshot.encoded(), origin: "expected")
        let expectedFingerprint = StoreFixtures.fingerprint(try expected.makeSession())
        var heads: Set<Int> = []
        for size in try Self.stagingSizes(snapshot) {
            let path = directory.path + "/partial-\(size).safetensors"
            let staged = try Self.snapshot(session).stage(into: SnapshotStaging(byteCount: size), writingHeadTo: path + ".tmp")
            let head = staged.head?.byteCount ?? 0
            heads.insert(head)
            #expect(snapshot.dataByteCount - head <= size, "the copy stays within its staging (\(size) bytes)")
            #expect((head == 0) == (size >= snapshot.dataByteCount))
            #expect((staged.head?.headerByteCount ?? 0) % 4096 == 0, "a written head starts at a block boundary")
            // The session changes before the write: the snapshot keeps the staged moment.
            Self.scramble(session)
            try SnapshotWrite(staged: staged, path: path, directory: directory.path).write()
            Self.overwrite(session, with: try expected.makeSession())
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
            let decoded = try SessionSnapshot(decoding: bytes, origin: path)
            #expect(decoded.step == expected.step)
            #expect(StoreFixtures.fingerprint(try decoded.makeSession()) == expectedFingerprint, "staging of \(size) bytes")
            #expect(!FileManager.default.fileExists(atPath: path + ".tmp"))
        }
        #expect(heads.count > 3, "heads of several sizes were written: \(heads.sorted())")
    }

    /// A flipped byte in the written head, or in the staged tail, fails the snapshot's checksum.
    @Test func theChecksumCoversTheHeadAndTheTail() throws {
        let (session, directory) = try Self.stepped(1)
        let snapshot = Self.snapshot(session)
        let path = directory.path + "/half.safetensors"
        let staged = try snapshot.stage(into: SnapshotStaging(byteCount: snapshot.dataByteCount / 2), writingHeadTo: path + ".tmp")
        let head = try #require(staged.head)
        try SnapshotWrite(staged: staged, path: path, directory: directory.path).write()
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        #expect(bytes.count == head.headerByteCount + snapshot.dataByteCount, "no padding is left after the data")
        for position in [head.headerByteCount, head.headerByteCount + head.byteCount - 1, head.headerByteCount + head.byteCount, bytes.count - 1] {
            var corrupted = bytes
            corrupted[position] ^= 0x04
            #expect(throws: StoreError.self) { try SessionSnapshot(decoding: corrupted, origin: "flipped") }
        }
    }

    /// The journal's snapshot with a small staging: the head goes to the temporary file, recovery
    /// from the finished snapshot is exact, and a snapshot abandoned before its write leaves no file.
    @Test func aJournalSnapshotWithLittleMemoryRecoversExactly() throws {
        let (directory, session, journal, write) = try Self.uncopiedSnapshot(after: 3)
        #expect(write.writtenUnderLock == Self.snapshot(session).dataByteCount)
        #expect(BackgroundSnapshotTests.files(directory).contains("snapshot-0000000000000003.safetensors.background.tmp"))
        try StoreFixtures.run(2, session: session, journal: journal)
        try write.write()
        journal.finishSnapshot(write, error: nil)
        #expect(journal.snapshotStep == 3)
        try Self.expectExactRecovery(directory, of: session)
        #expect(!BackgroundSnapshotTests.files(directory).contains { $0.hasSuffix(".tmp") })
    }

    /// Every parameter and state tensor of `session` set to 42, as steps after a staging would change them.
    static func scramble(_ session: OptimizerSession) {
        overwrite(session, with: nil)
    }

    /// Copies `source`'s parameters and state tensors into `target`'s buffers (same shapes), or 42s without a source.
    static func overwrite(_ target: OptimizerSession, with source: OptimizerSession?) {
        for (position, into) in target.parameters.enumerated() {
            if let source {
                into.pointer.update(from: source.parameters[position].pointer, count: into.count)
            } else {
                into.pointer.update(repeating: 42, count: into.count)
            }
        }
        guard let source else {
            for state in target.states {
                for slot in state.all {
                    if case .tensor(let a) = slot.value { a.pointer.update(repeating: 42, count: a.count) }
                }
            }
            return
        }
        for (into, from) in zip(target.states, source.states) {
            for (slot, other) in zip(into.all, from.all) {
                if case .tensor(let a) = slot.value, case .tensor(let b) = other.value { a.pointer.update(from: b.pointer, count: a.count) }
            }
        }
    }
}

extension PartialStagingTests {
    /// Heads of several megabytes, written in many direct slices.
    @Test func aLargeHeadIsWrittenExactly() throws {
        let session = OptimizerSession(configuration: try SessionConfiguration(optimizer: "adam", hyperparameters: ["lr": .number(0.01)]))
        let count = 1 << 20
        let first = TensorBuffer(shape: TensorShape([count]), values: (0..<count).map { Float($0) * 0.5 })
        let second = TensorBuffer(shape: TensorShape([count + 3]), values: (0..<count + 3).map { Float($0) * -0.25 })
        try session.setParameters([
            TensorView(name: "a", shape: first.shape, values: first.readOnly),
            TensorView(name: "b", shape: second.shape, values: second.readOnly),
        ])
        let directory = TemporaryDirectory()
        let snapshot = Self.snapshot(session)
        let expected = StoreFixtures.fingerprint(session)
        for size in [0, count * 4 + 12, count * 4 + 13, snapshot.dataByteCount - 1] {
            let path = directory.path + "/large-\(size).safetensors"
            let staged = try snapshot.stage(into: SnapshotStaging(byteCount: size), writingHeadTo: path + ".tmp")
            #expect(staged.head != nil)
            try SnapshotWrite(staged: staged, path: path, directory: directory.path).write()
            let decoded = try SessionSnapshot(decoding: try [UInt8](Data(contentsOf: URL(fileURLWithPath: path))), origin: path)
            #expect(StoreFixtures.fingerprint(try decoded.makeSession()) == expected, "staging of \(size) bytes")
        }
    }
}

extension PartialStagingTests {
    /// A checkpoint restore to the step of a background snapshot still being written writes its own
    /// snapshot of that step: the two never share a temporary file (the cancelled background write
    /// could otherwise write into the restore's snapshot), and the restore's is what recovery reads.
    @Test func aRestoreToTheSameStepNeverSharesTheBackgroundSnapshotsFile() throws {
        let (directory, session, journal, write) = try Self.uncopiedSnapshot(after: 2)
        let background = "snapshot-0000000000000002.safetensors.background.tmp"
        #expect(BackgroundSnapshotTests.files(directory).contains(background))
        try journal.replaceAll(with: Self.snapshot(session))
        #expect(BackgroundSnapshotTests.files(directory).contains(background), "the restore left the background file alone")
        #expect(throws: StoreError.self) { try write.write() }
        journal.finishSnapshot(write, error: nil)
        #expect(!BackgroundSnapshotTests.files(directory).contains { $0.hasSuffix(".tmp") })
        try Self.expectExactRecovery(directory, of: session)
    }
}
