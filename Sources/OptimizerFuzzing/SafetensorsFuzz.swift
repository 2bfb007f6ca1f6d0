import OptimizerKit
import OptimizerWire

/// Fuzz target `safetensors`: OptimizerWire's strict decoder on arbitrary bytes.
///
/// The input is a whole safetensors buffer. If the header parses, every tensor is read every way
/// the library offers (which must agree with each other), sparse pairs are scattered, the request
/// decoding of ``SafetensorsHeader/withFloatTensors(in:sparseShape:scratch:parallelism:_:)`` runs in both modes, and
/// float and index tensors are written back with ``SafetensorsWriter`` and parsed again: the writer's
/// output must read back to the same names, shapes, metadata and values.
public enum SafetensorsFuzz {
    /// Runs one input. Errors are recorded in the report; broken invariants stop the process.
    @discardableResult
    public static func fuzzOne(_ data: UnsafeRawBufferPointer) -> FuzzReport {
        var report = FuzzReport()
        // An exact-size copy: the sanitizer then catches any read past the end of the body.
        let body = FuzzBytes(data)
        defer { body.release() }
        let buffer = body.buffer
        let parsed = report.run("parse", expecting: isSafetensorsError, { try SafetensorsHeader(parsing: buffer) })
        checkArrivingSums(parsed, buffer)
        guard let header = parsed else { return report }

        for entry in header.tensors {
            report.run("read \(entry.name)", expecting: isSafetensorsError) { try readEveryWay(entry, header, buffer) }
        }
        report.run("sparse", expecting: isSafetensorsError) { try scatterEveryPair(header, buffer) }
        report.run("dense tensors", expecting: isSafetensorsError) {
            try header.withFloatTensors(in: buffer, sparseShape: nil) { checkCounts($0) }
        }
        report.run("step tensors", expecting: isSafetensorsError) {
            // A dense size past every index is as valid as one that makes some of them out of range.
            try header.withFloatTensors(in: buffer, sparseShape: { [2 * $0.count + 1] }) { checkCounts($0) }
        }
        report.run("write back", expecting: isSafetensorsError) { try checkRoundTrip(header, buffer) }
        return report
    }

    static func isSafetensorsError(_ error: any Error) -> Bool { error is SafetensorsError }

    // MARK: Reading

    private static func readEveryWay(_ entry: TensorEntry, _ header: SafetensorsHeader, _ buffer: UnsafeRawBufferPointer) throws {
        let raw = header.bytes(of: entry, in: buffer)
        fuzzCheck(raw.count == entry.byteCount, "\(entry.name): \(raw.count) bytes, entry says \(entry.byteCount)")
        if entry.dtype.isInteger {
            let integers = try? header.integers(entry, in: buffer)
            fuzzCheck(integers == nil || integers!.count == entry.elementCount, "\(entry.name): integer count")
        }
        guard entry.dtype.isWireFloat else {
            if entry.dtype == .F64 {
                let doubles = try header.doubles(entry, in: buffer)
                fuzzCheck(doubles.count == entry.elementCount, "\(entry.name): \(doubles.count) doubles")
            }
            return
        }
        let copied = try header.floats(entry, in: buffer)
        fuzzCheck(copied.count == entry.elementCount, "\(entry.name): \(copied.count) floats for \(entry.elementCount) elements")
        try header.withFloats(entry, in: buffer) { viewed in
            fuzzCheck(sameBits(viewed, copied), "\(entry.name): withFloats and floats disagree")
        }
        let decoded = UnsafeMutableBufferPointer<Float>.allocate(capacity: entry.elementCount)
        defer { decoded.deallocate() }
        try header.decodeFloats(entry, in: buffer, into: decoded)
        fuzzCheck(sameBits(UnsafeBufferPointer(decoded), copied), "\(entry.name): decodeFloats and floats disagree")
        let widened = try header.doubles(entry, in: buffer)
        fuzzCheck(zip(widened, copied).allSatisfy { $0.isNaN ? $1.isNaN : $0 == Double($1) }, "\(entry.name): doubles")
    }

    private static func scatterEveryPair(_ header: SafetensorsHeader, _ buffer: UnsafeRawBufferPointer) throws {
        for entry in header.tensors {
            for suffix in [SparseTensor.indicesSuffix, SparseTensor.valuesSuffix] where entry.name.hasSuffix(suffix) {
                _ = try header.sparseTensor(named: String(entry.name.dropLast(suffix.count)))
            }
        }
        for pair in try header.sparseTensors() {
            for denseCount in [pair.count, 2 * pair.count + 1] {
                let dense = UnsafeMutableBufferPointer<Float>.allocate(capacity: denseCount)
                defer { dense.deallocate() }
                guard (try? header.scatter(pair, in: buffer, into: dense)) != nil else { continue }
                // Each value lands at its index; everything else is +0.
                let indices = try header.integers(pair.indices, in: buffer)
                let values = try header.floats(pair.values, in: buffer)
                for (index, value) in zip(indices, values) {
                    fuzzCheck(dense[index].bitPattern == value.bitPattern, "\(pair.name)[\(index)] is not \(value)")
                }
                let written = dense.filter { $0.bitPattern != 0 }.count
                fuzzCheck(written <= values.count, "\(pair.name): \(written) non-zero elements from \(values.count) values")
            }
        }
    }

    private static func checkCounts(_ tensors: [TensorView]) {
        for tensor in tensors {
            let count = tensor.shape.elementCount
            fuzzCheck(tensor.values.count == count, "\(tensor.name): \(tensor.values.count) values for shape \(tensor.shape)")
        }
    }

    // MARK: Summing while it arrives

    /// ``ArrivingSums`` fed the buffer in pieces, as a request body arrives: for a buffer that
    /// parses, a sum for every aligned float32 tensor, each the bits of what a step would compute;
    /// for one that does not, nothing.
    private static func checkArrivingSums(_ header: SafetensorsHeader?, _ buffer: UnsafeRawBufferPointer) {
        for piece in [7, max(1, buffer.count / 3)] {
            var sums = ArrivingSums(length: buffer.count)
            var received = 0
            while received < buffer.count {
                received = min(buffer.count, received + piece)
                sums.received(UnsafeRawBufferPointer(rebasing: buffer[..<received]))
            }
            let result = sums.finish(buffer)
            guard let header else {
                fuzzCheck(result.isEmpty, "sums of a buffer that does not parse: \(result.keys.sorted())")
                continue
            }
            let floats = header.tensors.filter { entry in
                entry.dtype == .F32 && Int(bitPattern: buffer.baseAddress! + entry.byteRange.lowerBound) % MemoryLayout<Float>.alignment == 0
            }
            fuzzCheck(Set(result.keys) == Set(floats.map(\.name)), "summed \(result.keys.sorted()), float tensors \(floats.map(\.name))")
            for entry in floats {
                guard let values = try? header.floats(entry, in: buffer), let sum = result[entry.name] else { continue }
                let expected = values.withUnsafeBufferPointer { Reduction.sumOfSquares($0) }
                fuzzCheck(sum.isNaN ? expected.isNaN : sum.bitPattern == expected.bitPattern, "\(entry.name): summed \(sum), expected \(expected)")
            }
        }
    }

    // MARK: Writing back

    /// Writes the float and index tensors with ``SafetensorsWriter`` and checks they read back the same.
    private static func checkRoundTrip(_ header: SafetensorsHeader, _ buffer: UnsafeRawBufferPointer) throws {
        guard header.tensors.allSatisfy({ $0.dtype.isWireFloat || $0.dtype == .I64 || $0.dtype == .I32 }) else { return }
        var writer = SafetensorsWriter(metadata: header.metadata)
        var floats: [String: [Float]] = [:]
        for entry in header.tensors {
            switch entry.dtype {
            case .I64: try writer.add(entry.name, shape: entry.shape, integers: try header.integers(entry, in: buffer).map(Int64.init))
            case .I32: try writer.add(entry.name, shape: entry.shape, integers: try header.integers(entry, in: buffer).map(Int32.init))
            default:
                floats[entry.name] = try header.floats(entry, in: buffer)
                try writer.add(entry.name, shape: entry.shape, floats: floats[entry.name]!, as: entry.dtype)
            }
        }
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(bytes: writer.bytes())
        } catch {
            fuzzFailure("the writer's output does not parse: \(error)")
        }
        fuzzCheck(file.metadata == header.metadata, "metadata changed in the round trip")
        fuzzCheck(file.tensors.map(\.name) == header.tensors.map(\.name), "names changed in the round trip")
        for (original, written) in zip(header.tensors, file.tensors) {
            fuzzCheck(original.shape == written.shape && original.dtype == written.dtype, "\(original.name) changed")
            if let values = floats[original.name] {
                // Decoded F16/BF16 values are exactly representable, so encoding them again is exact
                // (NaN payloads may be quieted; NaN stays NaN).
                let again = try file.floats(named: original.name)
                fuzzCheck(zip(values, again).allSatisfy { $0.isNaN ? $1.isNaN : $0.bitPattern == $1.bitPattern }, "\(original.name) values changed")
            } else {
                let again = try file.integers(named: original.name)
                fuzzCheck(again == (try header.integers(original, in: buffer)), "\(original.name) indices changed")
            }
        }
    }

    /// Bitwise equality (so NaN equals itself and -0 differs from +0).
    static func sameBits(_ a: UnsafeBufferPointer<Float>, _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }
}
