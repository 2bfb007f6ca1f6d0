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
}
