import Foundation
import OptimizerFuzzing

/// The kept fuzz corpus, `Tests/FuzzCorpus/<target>/` (inputs libFuzzer found interesting, merged by
/// `scripts/fuzz.sh`) and `Tests/FuzzCorpus/regressions/` (inputs that once crashed).
enum FuzzCorpus {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("FuzzCorpus")

    /// Every file of `folder`, sorted by name.
    static func files(in folder: String) -> [URL] {
        let directory = root.appendingPathComponent(folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { directory.appendingPathComponent($0) }
    }

    /// Runs the file through the target.
    static func run(_ target: FuzzTarget, _ file: URL) throws -> FuzzReport {
        try Data(contentsOf: file).withUnsafeBytes { target.fuzzOne($0) }
    }

    /// Runs the regression input `regressions/<name>` through the target.
    static func regression(_ target: FuzzTarget, _ name: String) throws -> FuzzReport {
        try run(target, root.appendingPathComponent("regressions").appendingPathComponent(name))
    }
}
