/// Builds a safetensors buffer from tensors and metadata.
///
/// Add tensors, then ask for ``byteCount`` and ``write(into:)`` to encode straight into memory you
/// own (a response buffer), or call ``bytes()``. The output is deterministic: `__metadata__` first
/// with keys in byte order, then the tensors in the order they were added, with ascending
/// `data_offsets`; the header is padded with spaces to a multiple of 8 bytes, so the data section
/// starts 8-byte aligned, as Python's writer does. Any safetensors reader can load it.
///
/// Tensors are laid out back to back with no padding (the format forbids gaps), so a tensor keeps
/// its natural alignment only if the ones before it do; adding 8-byte tensors first, then 4-byte,
/// then 2-byte ones keeps every tensor aligned for zero-copy readers.
///
/// ```swift
/// var writer = SafetensorsWriter(metadata: ["step": "3"])
/// try writer.add("w", shape: [2, 2], floats: [1, 2, 3, 4], as: .BF16)
/// let body: [UInt8] = writer.bytes()
/// ```
///
/// A writer given an `UnsafeBufferPointer` does not copy or own that memory: it must stay valid
/// and unchanged until the last ``write(into:)`` or ``bytes()``. For that reason the type is not
/// `Sendable`.
public struct SafetensorsWriter {
    private enum Source {
        case floats([Float])
        case floatPointer(UnsafeBufferPointer<Float>)
        case doubles([Double])
        case int64s([Int64])
        case int32s([Int32])
        case raw(UnsafeRawBufferPointer)
        /// Bytes the caller writes itself, after the header: ``write(into:)`` leaves them untouched.
        case external
    }

    private struct Tensor {
        var dtype: DType
        var source: Source
        var offset: Int
        var byteCount: Int
    }

    /// String metadata written as `__metadata__` (omitted when empty). May be changed at any time
    /// before writing.
    public var metadata: [String: String]
    private var tensors: [Tensor] = []
    private var names: Set<String> = []
    private var dataByteCount = 0
    /// The header members of the tensors so far, `"name":{...}` joined by commas.
    private var entriesJSON: [UInt8] = []

    /// Creates an empty writer.
    ///
    /// - Parameter metadata: String metadata for the `__metadata__` entry.
    public init(metadata: [String: String] = [:]) {
        self.metadata = metadata
    }

    /// The number of tensors added so far.
    public var tensorCount: Int { tensors.count }

    // MARK: Adding tensors

    /// Adds a float tensor, stored as `F32`, `F16` or `BF16` (rounded to nearest even).
    ///
    /// - Parameters:
    ///   - name: The tensor's name; unique within the writer, not `__metadata__`.
    ///   - shape: Non-negative dimensions whose product is `floats.count` (`[]` for a scalar).
    ///   - floats: The values, in row-major order. The array is kept (not copied) until written.
    ///   - dtype: `.F32` (default), `.F16` or `.BF16`.
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved, the shape does not match
    ///   the count, or the dtype is not a float dtype.
    public mutating func add(_ name: String, shape: [Int], floats: [Float], as dtype: DType = .F32) throws {
        try add(name, shape: shape, count: floats.count, dtype: dtype, floatsOnly: true, source: .floats(floats))
    }

    /// Adds a float tensor from memory the caller owns, stored as `F32`, `F16` or `BF16`.
    ///
    /// Nothing is copied now: `floats` must stay valid and unchanged until the last
    /// ``write(into:)`` or ``bytes()`` call.
    ///
    /// - Parameters:
    ///   - name: The tensor's name; unique within the writer, not `__metadata__`.
    ///   - shape: Non-negative dimensions whose product is `floats.count`.
    ///   - floats: The values, in row-major order.
    ///   - dtype: `.F32` (default), `.F16` or `.BF16`.
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved, the shape does not match
    ///   the count, or the dtype is not a float dtype.
    public mutating func add(
        _ name: String,
        shape: [Int],
        floats: UnsafeBufferPointer<Float>,
        as dtype: DType = .F32
    ) throws {
        try add(name, shape: shape, count: floats.count, dtype: dtype, floatsOnly: true, source: .floatPointer(floats))
    }

    /// Adds an `F64` tensor, stored exactly.
    ///
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved or the shape does not match.
    public mutating func add(_ name: String, shape: [Int], doubles: [Double]) throws {
        try add(name, shape: shape, count: doubles.count, dtype: .F64, floatsOnly: false, source: .doubles(doubles))
    }

    /// Adds an `I64` tensor, stored exactly.
    ///
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved or the shape does not match.
    public mutating func add(_ name: String, shape: [Int], integers: [Int64]) throws {
        try add(name, shape: shape, count: integers.count, dtype: .I64, floatsOnly: false, source: .int64s(integers))
    }

    /// Adds an `I32` tensor (such as sparse indices), stored exactly.
    ///
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved or the shape does not match.
    public mutating func add(_ name: String, shape: [Int], integers: [Int32]) throws {
        try add(name, shape: shape, count: integers.count, dtype: .I32, floatsOnly: false, source: .int32s(integers))
    }

    /// Adds a tensor from little-endian element bytes the caller owns, copied as they are (such as
    /// `U8` codes or `BF16` bit patterns). Nothing is copied now: `bytes` must stay valid and
    /// unchanged until the last ``write(into:)`` or ``bytes()`` call.
    ///
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved, or `bytes` does not hold
    ///   exactly the elements of `shape` in `dtype`.
    public mutating func add(_ name: String, shape: [Int], bytes: UnsafeRawBufferPointer, as dtype: DType) throws {
        guard let size = dtype.byteSize, bytes.count % size == 0 else {
            throw SafetensorsError(.sizeMismatch, tensor: name, "tensor '\(name)': \(bytes.count) bytes are not whole \(dtype.rawValue) elements")
        }
        try add(name, shape: shape, count: bytes.count / size, dtype: dtype, floatsOnly: false, source: .raw(bytes))
    }

    /// Adds a tensor to the header only: its bytes (in `dtype`) are the caller's to write after
    /// ``headerBytes(alignedTo:)``, at the data offset the tensors before it give. ``write(into:)``
    /// leaves them untouched.
    ///
    /// - Throws: ``SafetensorsError`` when the name is taken or reserved, or the dtype has no fixed size.
    public mutating func addExternal(_ name: String, shape: [Int], dtype: DType) throws {
        guard dtype.byteSize != nil else {
            throw SafetensorsError(.unsupportedDType, tensor: name, "tensor '\(name)': \(dtype.rawValue) has no fixed element size")
        }
        let count = try SafetensorsHeader.size(of: shape, dtype: dtype, tensor: name).elements
        try add(name, shape: shape, count: count, dtype: dtype, floatsOnly: false, source: .external)
    }

    private mutating func add(
        _ name: String,
        shape: [Int],
        count: Int,
        dtype: DType,
        floatsOnly: Bool,
        source: Source
    ) throws {
        guard !floatsOnly || dtype.isWireFloat else {
            throw SafetensorsError(
                .unsupportedDType,
                tensor: name,
                "tensor '\(name)': floats can be written as F32, F16 or BF16, not \(dtype.rawValue)"
            )
        }
        guard name != "__metadata__" else {
            throw SafetensorsError(.invalidTensorEntry, tensor: name, "the tensor name '__metadata__' is reserved")
        }
        guard !names.contains(name) else {
            throw SafetensorsError(.duplicateKey, tensor: name, "tensor '\(name)' was already added")
        }
        if let axis = shape.firstIndex(where: { $0 < 0 }) {
            throw SafetensorsError(
                .invalidShape,
                tensor: name,
                "tensor '\(name)': shape[\(axis)] is \(shape[axis]), which is negative"
            )
        }
        let (elements, byteCount) = try SafetensorsHeader.size(of: shape, dtype: dtype, tensor: name)
        guard elements == count else {
            throw SafetensorsError(
                .elementCountMismatch,
                tensor: name,
                "tensor '\(name)': shape \(shape.shapeDescription) has \(elements) elements but \(count) values were given"
            )
        }
        let (end, overflow) = dataByteCount.addingReportingOverflow(byteCount)
        guard !overflow else {
            throw SafetensorsError(.sizeOverflow, tensor: name, "tensor '\(name)': the output would exceed 64 bits")
        }

        if !entriesJSON.isEmpty { entriesJSON.append(UInt8(ascii: ",")) }
        JSONWriter.appendString(name, to: &entriesJSON)
        JSONWriter.appendRaw(":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":", to: &entriesJSON)
        JSONWriter.appendIntegers(shape, to: &entriesJSON)
        JSONWriter.appendRaw(",\"data_offsets\":", to: &entriesJSON)
        JSONWriter.appendIntegers([dataByteCount, end], to: &entriesJSON)
        JSONWriter.appendRaw("}", to: &entriesJSON)

        names.insert(name)
        tensors.append(Tensor(dtype: dtype, source: source, offset: dataByteCount, byteCount: byteCount))
        dataByteCount = end
    }

    // MARK: Writing

    /// The exact size of the output in bytes: 8 + padded header + data.
    public var byteCount: Int {
        8 + headerJSON().count + dataByteCount
    }

    /// Writes the safetensors buffer into memory the caller provides.
    ///
    /// - Parameter destination: At least ``byteCount`` bytes, any alignment (a smaller buffer is
    ///   a programmer error and traps). Bytes past ``byteCount`` are left untouched.
    /// - Returns: The number of bytes written, ``byteCount``.
    @discardableResult
    public func write(into destination: UnsafeMutableRawBufferPointer) -> Int {
        let header = headerJSON()
        let total = 8 + header.count + dataByteCount
        precondition(
            destination.count >= total,
            "SafetensorsWriter: the destination holds \(destination.count) of \(total) bytes"
        )
        let base = destination.baseAddress!
        base.storeBytes(of: UInt64(header.count).littleEndian, as: UInt64.self)
        header.withUnsafeBytes { (base + 8).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let data = base + 8 + header.count
        for tensor in tensors {
            let target = UnsafeMutableRawBufferPointer(start: data + tensor.offset, count: tensor.byteCount)
            switch tensor.source {
            case .floats(let values):
                values.withUnsafeBufferPointer { FloatConversion.encode($0, as: tensor.dtype, into: target) }
            case .floatPointer(let values):
                FloatConversion.encode(values, as: tensor.dtype, into: target)
            case .doubles(let values):
                #if _endian(little)
                values.withUnsafeBytes { target.copyMemory(from: $0) }
                #else
                Self.writeLittleEndian(values.map(\.bitPattern), into: target)
                #endif
            case .int64s(let values):
                Self.writeLittleEndian(values, into: target)
            case .int32s(let values):
                Self.writeLittleEndian(values, into: target)
            case .raw(let bytes):
                if let base = bytes.baseAddress, !bytes.isEmpty { target.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
            case .external:
                break
            }
        }
        return total
    }

    /// The bytes before the data section: the 8-byte little-endian header length, then the padded
    /// header. Written before data laid out as the tensors were added (back to back, in order), it
    /// makes the same file as ``write(into:)``, so data staged elsewhere can be written without
    /// copying it into one buffer first.
    ///
    /// - Parameter alignment: The multiple of bytes the header is padded to (with spaces, which
    ///   readers skip), so that the data section starts there: 8 by default, 4096 for data written
    ///   with `O_DIRECT`.
    public func headerBytes(alignedTo alignment: Int = 8) -> [UInt8] {
        var header = headerJSON()
        let padding = (alignment - (8 + header.count) % alignment) % alignment
        header.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        return withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) } + header
    }

    /// Returns the safetensors buffer as a new array.
    public func bytes() -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            initialized = write(into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// `{"__metadata__":{...},"name":{...},...}` padded with spaces to a multiple of 8 bytes.
    private func headerJSON() -> [UInt8] {
        var json: [UInt8] = [UInt8(ascii: "{")]
        json.reserveCapacity(entriesJSON.count + 64)
        if !metadata.isEmpty {
            JSONWriter.appendRaw("\"__metadata__\":{", to: &json)
            let keys = metadata.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            for (i, key) in keys.enumerated() {
                if i > 0 { json.append(UInt8(ascii: ",")) }
                JSONWriter.appendString(key, to: &json)
                json.append(UInt8(ascii: ":"))
                JSONWriter.appendString(metadata[key]!, to: &json)
            }
            json.append(UInt8(ascii: "}"))
            if !entriesJSON.isEmpty { json.append(UInt8(ascii: ",")) }
        }
        json.append(contentsOf: entriesJSON)
        json.append(UInt8(ascii: "}"))
        let padding = (8 - json.count % 8) % 8
        json.append(contentsOf: repeatElement(UInt8(ascii: " "), count: padding))
        return json
    }

    private static func writeLittleEndian<T: FixedWidthInteger>(
        _ values: [T],
        into target: UnsafeMutableRawBufferPointer
    ) {
        #if _endian(little)
        values.withUnsafeBytes { target.copyMemory(from: $0) }
        #else
        for (i, value) in values.enumerated() {
            target.storeBytes(of: value.littleEndian, toByteOffset: i * MemoryLayout<T>.size, as: T.self)
        }
        #endif
    }
}

/// A writer may hold `UnsafeBufferPointer`s to memory it does not own, so it must not cross
/// concurrency domains.
@available(*, unavailable)
extension SafetensorsWriter: Sendable {}
