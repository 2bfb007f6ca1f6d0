import Foundation
import OptimizerFuzzing

#if FUZZING
import CLibFuzzer
#endif

/// `optimizerd-fuzz <target> [arguments...]`, target one of `safetensors`, `request`, `json`.
///
/// `scripts/fuzz.sh` builds this with `-sanitize=fuzzer,address -DFUZZING`: it is then a libFuzzer
/// binary and the arguments are libFuzzer's (`-max_total_time=60 corpus/`...). A plain build, as in
/// `swift build`, replays files and folders through the target instead and prints each report:
/// the way to look at a reproducer without the sanitizer.
@main
enum FuzzMain {
    static func main() {
        var arguments = CommandLine.arguments
        // libFuzzer starts child processes (for -merge) with its own arguments only, so the
        // target also travels in the environment, which they inherit.
        let environmentKey = "OPTIMIZERD_FUZZ_TARGET"
        if arguments.count > 1, FuzzTarget(rawValue: arguments[1]) != nil {
            setenv(environmentKey, arguments.remove(at: 1), 1)
        }
        guard let name = ProcessInfo.processInfo.environment[environmentKey], let target = FuzzTarget(rawValue: name) else {
            let names = FuzzTarget.allCases.map(\.rawValue).joined(separator: "|")
            FileHandle.standardError.write(Data("usage: optimizerd-fuzz \(names) [arguments...]\n".utf8))
            exit(2)
        }
        #if FUZZING
        selectedTarget = target
        exit(runLibFuzzer(arguments))
        #else
        replay(target, paths: Array(arguments.dropFirst()))
        #endif
    }

    /// Runs every file (folders: every file in them) through `target` and prints what it did.
    static func replay(_ target: FuzzTarget, paths: [String]) {
        let files = paths.flatMap { path -> [String] in
            let contents = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            return contents.isEmpty ? [path] : contents.sorted().map { path + "/" + $0 }
        }
        for file in files {
            guard let data = FileManager.default.contents(atPath: file) else {
                print("\(file): cannot read")
                continue
            }
            let report = data.withUnsafeBytes { target.fuzzOne($0) }
            print("== \(file)\n\(report)")
        }
    }
}

#if FUZZING
/// The target libFuzzer's callback runs (a C callback cannot capture it).
nonisolated(unsafe) var selectedTarget = FuzzTarget.safetensors

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selectedTarget.fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// Hands control to libFuzzer with `arguments` as its command line.
func runLibFuzzer(_ arguments: [String]) -> CInt {
    // libFuzzer keeps pointers into argv for the whole run, so these are never freed.
    let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: arguments.count + 1)
    for (index, argument) in arguments.enumerated() { argv[index] = strdup(argument) }
    argv[arguments.count] = nil
    var argc = CInt(arguments.count)
    var argvPointer: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argvPointer) { data, size in testOneInput(data, size) }
}
#endif
