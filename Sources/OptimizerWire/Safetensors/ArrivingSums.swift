import OptimizerKit

/// The sums of squares of a step body's float32 tensors, computed while the body arrives.
///
/// A step reads every gradient once before it changes anything, for its norm and to find NaN or
/// infinity (a refused step must change nothing): at 4 bytes per parameter, a seventh of what an
/// Adam step moves. Summed here instead, chunk by chunk right after the receiver copied the bytes
/// in, the gradients are read while they are still in the cache, and the step is told the sums
/// (``StepInput/knownSumsOfSquares``). The sums are bit-identical to the step's own
/// (``Reduction/ArrivingSumOfSquares``), so nothing the step computes changes. Only 4-aligned `F32`
/// tensors are summed: `BF16`, `F16` and unaligned `F32`, which the step converts into float32
/// first, were also tried converted a chunk at a time here (2026-12-07, a 64M bf16 step): the
/// receive grew by about what `validate` saved, so the step converts and sums them as before.
///
/// Fed the body so far after each chunk (``received(_:)``), at one address: the body's buffer is
/// allocated at its declared length. Anything unexpected — a header that does not parse here, a
/// body that moved or is not its declared length — gives up, and the step sums as before.
public struct ArrivingSums {
    /// The body's declared length.
    private let length: Int
    /// What a header may be (the limits the body is parsed with afterwards).
    private let limits: SafetensorsHeader.Limits
    /// The aligned float32 tensors, in the order of their bytes (once the header is in).
    private var tensors: [(name: String, start: Int, sum: Reduction.ArrivingSumOfSquares)] = []
    private var headerRead = false
    /// The first tensor not summed in full yet.
    private var next = 0
    private var base: UInt = 0
    private var gaveUp = false

    /// Sums for a body of `length` declared bytes whose header is read with `limits`.
    public init(length: Int, limits: SafetensorsHeader.Limits = .init()) {
        self.length = length
        self.limits = limits
    }

    /// Sums what `body` (the bytes received so far, from the body's start) completes.
    public mutating func received(_ body: UnsafeRawBufferPointer) {
        guard !gaveUp, let address = body.baseAddress, body.count <= length else { return giveUp() }
        if base == 0 { base = UInt(bitPattern: address) }
        guard base == UInt(bitPattern: address) else { return giveUp() }
        if !headerRead {
            guard body.count >= 8 else { return }
            let declared = UInt64(littleEndian: body.loadUnaligned(as: UInt64.self))
            guard declared <= UInt64(limits.maxHeaderBytes), 8 + Int(declared) <= length else { return giveUp() }
            guard body.count >= 8 + Int(declared) else { return }
            // The header is parsed against the declared length: it reads the header's bytes only.
            let whole = UnsafeRawBufferPointer(start: address, count: length)
            guard let header = try? SafetensorsHeader(parsing: whole, limits: limits) else { return giveUp() }
            tensors = header.tensors
                // Exactly the tensors the step reads in place (the others it converts, then sums).
                .filter { $0.dtype == .F32 && !header.needsConversion($0, in: whole) }
                .sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
                .map { ($0.name, $0.byteRange.lowerBound, Reduction.ArrivingSumOfSquares(count: $0.elementCount)) }
            headerRead = true
        }
        while next < tensors.count, tensors[next].start <= body.count {
            let start = tensors[next].start
            tensors[next].sum.advance(address + start, available: (body.count - start) / MemoryLayout<Float>.size)
            guard tensors[next].sum.isComplete else { break }
            next += 1
        }
    }

    /// The sums by tensor name, once `body` is the whole body; empty if this gave up.
    public mutating func finish(_ body: UnsafeRawBufferPointer) -> [String: Double] {
        received(body)
        guard !gaveUp, headerRead, body.count == length else { return [:] }
        var sums: [String: Double] = [:]
        for tensor in tensors {
            if let total = tensor.sum.total { sums[tensor.name] = total }
        }
        return sums
    }

    private mutating func giveUp() {
        gaveUp = true
        tensors = []
    }
}
