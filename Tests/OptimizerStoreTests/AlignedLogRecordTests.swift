import Foundation
import Testing

@testable import OptimizerStore

/// Large log records written around the page cache: each starts at a 4 KiB boundary and is padded
/// with zeros to the next one; small records between them stay unpadded; scans read them all back
/// and cut torn tails exactly as before.
struct AlignedLogRecordTests {
    static let block = AlignedAppend.blockSize

    /// Small and large records interleaved; the large ones cross several 1 MiB slices and end at
    /// every kind of offset within a block.
    static func records() -> [LogRecord] { cases }

    private static let cases: [LogRecord] = {
        // Non-zero bytes that differ from record to record (content only matters to the checksums).
        func bytes(_ count: Int, _ seed: UInt32) -> [UInt8] {
            (0..<count).map { UInt8(truncatingIfNeeded: (UInt32($0) &* 2_654_435_761 &+ seed) >> 24) | 1 }
        }
        return [
            LogRecord(kind: .parameters, step: 0, contentEncoding: nil, body: bytes(10_000, 1)),
            LogRecord(kind: .configure, step: 0, contentEncoding: nil, body: Array("{\"lr\":0.1}".utf8)),
            LogRecord(kind: .step, step: 1, contentEncoding: "gzip", body: bytes(AlignedAppend.sliceSize * 2 + 77, 2)),
            LogRecord(kind: .step, step: 2, contentEncoding: nil, body: bytes(4096 - 34, 3)),  // exactly one block
            LogRecord(kind: .step, step: 3, contentEncoding: nil, body: bytes(300, 4)),
            LogRecord(kind: .commit, step: 4, contentEncoding: nil, body: bytes(AlignedAppend.sliceSize - 34, 5)),
            LogRecord(kind: .step, step: 5, contentEncoding: nil, body: []),
        ]
    }()

    /// The start offset of each record as the log laid them out (minimum 4000 bytes for a direct write).
    static func write(_ records: [LogRecord], to path: String, directMinimum: Int? = 4000) throws -> (WriteAheadLog, [Int]) {
        let log = try WriteAheadLog(path: path, directMinimum: directMinimum)
        var starts: [Int] = []
        for record in records {
            let before = log.length
            let isDirect = directMinimum.map { Self.length(of: record) >= $0 } ?? false
            starts.append(isDirect ? AlignedAppend.padded(before) : before)
            try log.append(record, sync: false)
        }
        try log.sync()
        return (log, starts)
    }

    static func length(of record: LogRecord) -> Int {
        LogRecord.headerSize + 2 + (record.contentEncoding?.utf8.count ?? 0) + record.body.count
    }

    static func scanAll(_ path: String) throws -> ([LogRecord], WriteAheadLog.ScanResult) {
        var read: [LogRecord] = []
        let result = try WriteAheadLog.scan(path) {
            read.append($0)
            return true
        }
        return (read, result)
    }

    @Test func largeRecordsStartAndEndOnBlockBoundariesAndReadBack() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let records = Self.records()
        let (log, starts) = try Self.write(records, to: path)
        for (record, start) in zip(records, starts) where Self.length(of: record) >= 4000 {
            #expect(start % Self.block == 0, "step \(record.step) starts at \(start)")
        }
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(file.count == log.length)
        // The small record after the exactly-one-block record follows it directly, and the padding
        // after the large records is zeros up to a boundary.
        #expect(starts[4] == starts[3] + Self.block)
        let firstLargeEnd = starts[2] + Self.length(of: records[2])
        #expect(starts[3] == (firstLargeEnd + Self.block - 1) / Self.block * Self.block)
        #expect(file[firstLargeEnd..<starts[3]].allSatisfy { $0 == 0 })
        let (read, result) = try Self.scanAll(path)
        #expect(read == records)
        #expect(result.problem == nil)
        #expect(result.validLength == log.length)
    }

    @Test func withoutDirectWritesTheLayoutIsUnpadded() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let records = Self.records()
        let (log, _) = try Self.write(records, to: path, directMinimum: nil)
        #expect(log.length == records.map(Self.length(of:)).reduce(0, +))
        #expect(!log.writesDirect)
        #expect(try Self.scanAll(path).0 == records)
    }

    @Test func tornLargeRecordsAreCutAtTheirStartAndAppendsContinue() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let records = Self.records()
        let (_, starts) = try Self.write(records, to: path)
        // Cuts inside the large step 1 (header, body, last slice), inside the padding after it,
        // and inside the commit record.
        let cuts = [starts[2] + 10, starts[2] + 5000, starts[3] - Self.block - 1, starts[3] - 3, starts[5] + AlignedAppend.sliceSize / 2]
        for cut in cuts {
            try? FileManager.default.removeItem(atPath: path)
            _ = try Self.write(records, to: path)
            truncate(path, off_t(cut))
            let (read, result) = try Self.scanAll(path)
            // A cut in a record's padding leaves the record whole: it is read, and the tail is the padding.
            let whole = records.indices.filter { starts[$0] + Self.length(of: records[$0]) <= cut }
            #expect(read == whole.map { records[$0] }, "cut at \(cut)")
            #expect(result.isTornTail, "cut at \(cut)")
            let reopened = try WriteAheadLog(path: path, validLength: result.validLength, directMinimum: 4000)
            let next = LogRecord(kind: .step, step: 99, contentEncoding: nil, body: [UInt8](repeating: 7, count: 9000))
            try reopened.append(next, sync: true)
            let (after, rescanned) = try Self.scanAll(path)
            #expect(rescanned.problem == nil, "cut at \(cut)")
            #expect(after == read + [next], "cut at \(cut)")
        }
    }

    @Test func zerosAtABlockBoundaryAreNotPadding() throws {
        let directory = TemporaryDirectory()
        let path = directory.path + "/wal.log"
        let records = Array(Self.records().prefix(3))
        let (log, _) = try Self.write(records, to: path)
        #expect(log.length % Self.block == 0)
        // A whole zero block after an aligned end is what a torn append leaves: a tail to cut, not padding.
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(count: Self.block))
        handle.closeFile()
        let (read, result) = try Self.scanAll(path)
        #expect(read == records)
        #expect(result.validLength == log.length)
        #expect(result.isTornTail)
    }
}
