import Foundation
import OptimizerKit
import Testing

@testable import OptimizerStore

struct SessionSnapshotTests {
    @Test func roundTripIsExact() throws {
        let session = try StoreFixtures.session()
        let directory = TemporaryDirectory()
        let store = try DataDirectory(configuration: StoreConfiguration(directory: directory.path, fsync: .always))
        let journal = try store.create(SessionSnapshot(session: session, id: "s1", name: "demo", tokenHash: "abc"))
        try StoreFixtures.run(3, session: session, journal: journal)
        let bytes = try SessionSnapshot(session: session, id: "s1", name: "demo", tokenHash: "abc").encoded()
        let decoded = try SessionSnapshot(decoding: bytes, origin: "test")
        #expect(decoded.id == "s1")
        #expect(decoded.name == "demo")
        #expect(decoded.tokenHash == "abc")
        #expect(decoded.step == 3)
        #expect(decoded.lastTelemetry == session.lastTelemetry)
        let rebuilt = try decoded.makeSession()
        #expect(StoreFixtures.fingerprint(rebuilt) == StoreFixtures.fingerprint(session))
        #expect(rebuilt.states[0].names == session.states[0].names)
    }

    @Test func everyFlippedByteIsDetected() throws {
        let session = try StoreFixtures.session()
        let directory = TemporaryDirectory()
        let store = try DataDirectory(configuration: StoreConfiguration(directory: directory.path, fsync: .always))
        let journal = try store.create(SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: nil))
        try StoreFixtures.run(2, session: session, journal: journal)
        let bytes = try SessionSnapshot(session: session, id: "s1", name: nil, tokenHash: nil).encoded()
        var undetected: [Int] = []
        for position in stride(from: 0, to: bytes.count, by: 7) {
            var corrupted = bytes
            corrupted[position] ^= 0x10
            if (try? SessionSnapshot(decoding: corrupted, origin: "test")) != nil { undetected.append(position) }
        }
        // Only padding spaces in the header may change without consequence... and even those move the
        // JSON, so nothing should go unnoticed except flips that keep the JSON equivalent.
        let headerLength = 8 + Int(bytes[0]) + Int(bytes[1]) << 8
        #expect(undetected.allSatisfy { $0 < headerLength && bytes[$0] == UInt8(ascii: " ") }, "undetected flips at \(undetected)")
    }

    /// A background snapshot is staged (copied under the session's lock) and checksummed later: its
    /// file is byte for byte the one `encoded()` makes, and it keeps the session as it was when staged.
    @Test func aStagedSnapshotIsTheEncodedFileAsOfItsStaging() throws {
        let session = try StoreFixtures.session()
        let directory = TemporaryDirectory()
        let store = try DataDirectory(configuration: StoreConfiguration(directory: directory.path, fsync: .always))
        let journal = try store.create(SessionSnapshot(session: session, id: "s1", name: "demo", tokenHash: "abc"))
        try StoreFixtures.run(2, session: session, journal: journal)
        let snapshot = SessionSnapshot(session: session, id: "s1", name: "demo", tokenHash: "abc", durability: .log)
        let expected = try snapshot.encoded()
        let staging = SnapshotStaging(byteCount: snapshot.dataByteCount)
        let staged = try snapshot.stage(into: staging)
        #expect(staged.data === staging)
        try StoreFixtures.run(1, session: session, journal: journal)
        #expect(try staged.header() + Array(staged.data.bytes) == expected)
        // A staging of another size (the session's shapes changed since it was made) is replaced.
        let resized = try snapshot.stage(into: SnapshotStaging(byteCount: 3))
        #expect(resized.data.byteCount == snapshot.dataByteCount)
    }
}
