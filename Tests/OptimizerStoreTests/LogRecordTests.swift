import Foundation
import Testing

@testable import OptimizerStore

struct WriteAheadLogTests {
    static func records() -> [LogRecord] {
        [
            LogRecord(kind: .step, step: 1, contentEncoding: nil, body: Array("first".utf8)),
            LogRecord(kind: .parameters, step: 1, contentEncoding: "gzip", body: [0, 1, 2, 3]),
            LogRecord(kind: .step, step: 2, contentEncoding: nil, body: []),
        ]
    }

    @Test func recordsRoundTrip() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let log = try WriteAheadLog(path: path)
        for record in Self.records() { try log.append(record, sync: true) }
        var read: [LogRecord] = []
        let result = try WriteAheadLog.scan(path) {
            read.append($0)
            return true
        }
        #expect(read == Self.records())
        #expect(result.problem == nil)
        #expect(result.validLength == log.length)
    }

    @Test func tornTailIsDetectedAndCut() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let log = try WriteAheadLog(path: path)
        for record in Self.records() { try log.append(record, sync: true) }
        let full = log.length
        for cut in [full - 1, full - 3, full - 33, 40] {
            truncate(path, off_t(cut))
            var count = 0
            let result = try WriteAheadLog.scan(path) { _ in
                count += 1
                return true
            }
            #expect(result.isTornTail, "cut at \(cut)")
            #expect(result.validLength < cut)
            // Reopening for append cuts the tail; the next append lands right after the valid prefix.
            let reopened = try WriteAheadLog(path: path, validLength: result.validLength)
            try reopened.append(LogRecord(kind: .step, step: 9, contentEncoding: nil, body: [9]), sync: true)
            var after: [LogRecord] = []
            let rescanned = try WriteAheadLog.scan(path) {
                after.append($0)
                return true
            }
            #expect(rescanned.problem == nil)
            #expect(after.count == count + 1)
            #expect(after.last?.step == 9)
            // Restore the full log for the next cut.
            try? FileManager.default.removeItem(atPath: path)
            let fresh = try WriteAheadLog(path: path)
            for record in Self.records() { try fresh.append(record, sync: true) }
        }
    }

    @Test func flippedPayloadByteIsCorruption() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let log = try WriteAheadLog(path: path)
        for record in Self.records() { try log.append(record, sync: true) }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes[LogRecord.headerSize + 3] ^= 0x40  // inside the first record's payload
        try bytes.write(to: URL(fileURLWithPath: path))
        var count = 0
        let result = try WriteAheadLog.scan(path) { _ in
            count += 1
            return true
        }
        #expect(count == 0)
        #expect(result.validLength == 0)
        #expect(!result.isTornTail)
        #expect(result.problem?.contains("checksum") == true)
    }

    @Test func flippedHeaderByteIsCorruption() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let log = try WriteAheadLog(path: path)
        for record in Self.records() { try log.append(record, sync: true) }
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let second = LogRecord.headerSize + 2 + Array("first".utf8).count
        bytes[second + 9] ^= 0x01  // the second record's step field
        try bytes.write(to: URL(fileURLWithPath: path))
        var count = 0
        let result = try WriteAheadLog.scan(path) { _ in
            count += 1
            return true
        }
        #expect(count == 1)
        #expect(result.validLength == second)
        #expect(result.problem?.contains("header checksum") == true)
    }
}
