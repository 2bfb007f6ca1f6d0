import OptimizerKit

extension SafetensorsHeader {
    /// Calls `body` with every tensor of a request body as float32: the decoding a server does for
    /// gradient and parameter uploads, kept here (free of any HTTP types) so that it can be tested
    /// and fuzzed on its own.
    ///
    /// Dense `F32` is handed over in place when aligned (zero-copy); `F16`, `BF16` and unaligned
    /// `F32` are converted into memory from `scratch` (one block for all of them, converted on up to
    /// `parallelism.threads` threads); sparse pairs are scattered into zero-filled dense tensors.
    /// Any other dtype throws ``SafetensorsError/Code/unsupportedDType``.
    ///
    /// - Parameters:
    ///   - buffer: The buffer this header was parsed from.
    ///   - sparseShape: `nil` takes every tensor as dense (parameter uploads). Otherwise every complete
    ///     `P.indices` + `P.values` pair is expanded to the dense shape this returns for it; throw
    ///     from it to refuse a pair (say, for a `P` that is not a parameter). In this mode a
    ///     `P.indices` of an integer dtype without its `P.values` is an incomplete pair: it could
    ///     never be a float gradient, so the error names the missing half rather than the dtype.
    ///   - isDense: Names that are dense tensors in their own right although they end in `.indices`
    ///     or `.values` (a session's parameters called so): never taken as a member of a pair.
    ///   - scratch: Where the float32 copies come from (given back before this returns).
    ///   - parallelism: Threads a large conversion may use.
    ///   - body: Receives the tensors, dense ones in header order, then the sparse ones (named `P`);
    ///     their memory is valid only during the call.
    /// - Throws: ``SafetensorsError`` for wrong dtypes and bad or incomplete sparse pairs, what
    ///   `sparseShape` throws, or what `body` throws.
    public func withFloatTensors<Result>(
        in buffer: UnsafeRawBufferPointer,
        sparseShape: ((SparseTensor) throws -> [Int])?,
        denseNames isDense: (String) -> Bool = { _ in false },
        scratch allocator: FloatScratchAllocator = .system,
        parallelism: Parallelism = .serial,
        _ body: ([TensorView]) throws -> Result
    ) throws -> Result {
        let sparse = sparseShape == nil ? [] : try completeSparsePairs(denseNames: isDense)
        let sparseMembers = Set(sparse.flatMap { [$0.indices.name, $0.values.name] })
        let converted = tensors.reduce(0) { total, entry in
            sparseMembers.contains(entry.name) || !needsConversion(entry, in: buffer) ? total : total + entry.elementCount
        }
        var scratch = FloatScratch(allocator: allocator, denseCapacity: converted)
        defer { scratch.release() }

        var result: [TensorView] = []
        result.reserveCapacity(tensors.count)
        for entry in tensors where !sparseMembers.contains(entry.name) {
            let values = try floatValues(of: entry, in: buffer, scratch: &scratch, parallelism: parallelism)
            result.append(TensorView(name: entry.name, shape: TensorShape(entry.shape), values: values))
        }
        if let sparseShape {
            for pair in sparse {
                let shape = try sparseShape(pair)
                let dense = scratch.separate(Self.elementCount(of: shape))
                try scatter(pair, in: buffer, into: dense)
                result.append(TensorView(name: pair.name, shape: TensorShape(shape), values: UnsafeBufferPointer(dense)))
            }
        }
        return try body(result)
    }

    /// Every `P.indices` + `P.values` pair; throws for an integer `P.indices` without its values.
    private func completeSparsePairs(denseNames isDense: (String) -> Bool) throws -> [SparseTensor] {
        for entry in tensors where entry.dtype.isInteger && entry.name.hasSuffix(SparseTensor.indicesSuffix) && !isDense(entry.name) {
            // Throws "'P.indices' has no matching 'P.values'" when the values are missing.
            _ = try sparseTensor(named: String(entry.name.dropLast(SparseTensor.indicesSuffix.count)))
        }
        return try sparseTensors(denseNames: isDense)
    }

    /// Whether a dense float entry is converted rather than handed over in place (all but aligned
    /// `F32` on a little-endian host). Other dtypes are not: they throw before any memory is taken.
    func needsConversion(_ entry: TensorEntry, in buffer: UnsafeRawBufferPointer) -> Bool {
        guard entry.dtype.isWireFloat else { return false }
        #if _endian(little)
        if entry.dtype == .F32, let base = bytes(of: entry, in: buffer).baseAddress {
            return Int(bitPattern: base) % MemoryLayout<Float>.alignment != 0
        }
        #endif
        return true
    }

    /// Float32 values of a dense entry: in place for aligned `F32`, else converted into scratch memory.
    private func floatValues(
        of entry: TensorEntry,
        in buffer: UnsafeRawBufferPointer,
        scratch: inout FloatScratch,
        parallelism: Parallelism
    ) throws -> UnsafeBufferPointer<Float> {
        let bytes = try floatBytes(of: entry, in: buffer)
        if !needsConversion(entry, in: buffer), let base = bytes.baseAddress {
            // A request body's memory is untyped (a byte buffer's storage), so binding it to Float
            // for the duration of the call is sound; nothing else reads it typed meanwhile.
            let floats = base.bindMemory(to: Float.self, capacity: entry.elementCount)
            return UnsafeBufferPointer(start: floats, count: entry.elementCount)
        }
        let destination = scratch.dense(entry.elementCount)
        FloatConversion.decode(bytes, from: entry.dtype, into: destination, parallelism: parallelism)
        return UnsafeBufferPointer(destination)
    }

    /// The element count of a caller-given dense shape (a parameter's, validated when it was uploaded).
    private static func elementCount(of shape: [Int]) -> Int {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in the dense shape \(shape)")
        if shape.contains(0) { return 0 }
        return shape.reduce(1) { count, dim in
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            precondition(!overflow, "the dense shape \(shape) has more elements than fit in an Int")
            return product
        }
    }
}
