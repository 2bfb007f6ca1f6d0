import CChecksum
import Foundation
import OptimizerKit
import OptimizerWire

extension SessionSnapshot {
    /// Encodes the snapshot as one safetensors buffer with its checksum.
    public func encoded() throws -> [UInt8] {
        try encoder().bytes()
    }

    /// A writer of the snapshot's file, checksum included, that reads the session's tensors when
    /// it writes (``SafetensorsWriter/write(into:)``: one copy, into memory the caller provides).
    /// The session must not change until then.
    public func encoder() throws -> SafetensorsWriter {
        var metadata = try metadataWithoutChecksum()
        var writer = SafetensorsWriter()
        var index: [(name: String, dtype: String, shape: [Int])] = []
        var dataCRC: UInt32 = 0
        for (tensorName, value) in dataEntries() {
            switch value {
            case .scalar(let scalar):
                try writer.add(tensorName, shape: [], doubles: [scalar])
                index.append((tensorName, "F64", []))
                dataCRC = withUnsafeBytes(of: scalar.bitPattern.littleEndian) { optimizerd_crc32c(dataCRC, $0.baseAddress, 8) }
            case .tensor(let tensor):
                try writer.add(tensorName, shape: tensor.shape.dimensions, floats: tensor.readOnly)
                index.append((tensorName, "F32", tensor.shape.dimensions))
                dataCRC = optimizerd_crc32c(dataCRC, tensor.pointer, tensor.count * 4)
            case .packed(let tensor):
                let dtype = tensor.dtype
                try writer.add(tensorName, shape: tensor.shape.dimensions, bytes: tensor.bytes, as: dtype)
                index.append((tensorName, dtype.rawValue, tensor.shape.dimensions))
                dataCRC = optimizerd_crc32c(dataCRC, tensor.pointer, tensor.byteCount)
            }
        }
        metadata["checksum"] = Self.checksum(metadata: metadata, index: index, dataCRC: dataCRC)
        writer.metadata = metadata
        return writer
    }

    /// Every metadata entry of the file except `checksum`, which covers them.
    func metadataWithoutChecksum() throws -> [String: String] {
        var metadata: [String: String] = [
            "format": Self.format,
            "format_version": stateDType == .f32 ? Self.formatVersion : Self.compactFormatVersion,
            "optimizer": optimizer,
            "hyperparameters": try json(hyperparameters),
            "groups": try json(groups),
            "step": String(step),
            "parameters": try json(parameterNames),
            "slots": try json(Dictionary(uniqueKeysWithValues: zip(parameterNames, states.map { $0.map(\.name) }))),
            "global_slots": try json(global.map(\.name)),
        ]
        if let lastTelemetry { metadata["last_telemetry"] = try json(lastTelemetry) }
        if let lastStepParameters { metadata["last_step_parameters"] = try json(lastStepParameters) }
        if let id { metadata["id"] = id }
        if let name { metadata["name"] = name }
        if let tokenHash { metadata["token_sha256"] = tokenHash }
        if let createdAt { metadata["created_at"] = String(createdAt) }
        if let durability { metadata["durability"] = durability.rawValue }
        if stateDType != .f32 { metadata["state_dtype"] = stateDType.rawValue }
        return metadata
    }

    /// The file's tensors in data-section order: scalars (8-byte) first so every tensor stays
    /// naturally aligned for readers, then the parameters, then the tensor state slots by element
    /// width (float32, then bfloat16, then 8-bit codes).
    func dataEntries() -> [(name: String, value: StateSlot.Value)] {
        var entries = global.map { ("global/\($0.name)", $0.value) }
        for (name, slots) in zip(parameterNames, states) {
            entries += slots.filter { !$0.isTensor }.map { ("state/\(name)/\($0.name)", $0.value) }
        }
        entries += zip(parameterNames, parameters).map { ("param/\($0)", StateSlot.Value.tensor($1)) }
        for width in [4, 2, 1] {
            for (name, slots) in zip(parameterNames, states) {
                entries += slots.filter { $0.elementWidth == width }.map { ("state/\(name)/\($0.name)", $0.value) }
            }
        }
        return entries
    }

    /// Decodes and verifies a snapshot or checkpoint.
    ///
    /// - Parameters:
    ///   - bytes: The whole file.
    ///   - origin: A name for messages (a path, or "checkpoint").
    /// - Throws: ``StoreError`` with code `corrupt` for a bad checksum or missing pieces, or the
    ///   codec's ``SafetensorsError`` for a malformed file.
    public init(decoding bytes: [UInt8], origin: String) throws {
        let file = try SafetensorsFile(bytes: bytes)
        var metadata = file.metadata
        guard metadata["format"] == Self.format else {
            throw StoreError.corrupt(origin, "not an optimizerd checkpoint (format \((metadata["format"] ?? "missing").abbreviated))")
        }
        let version = metadata["format_version"]
        guard version == Self.formatVersion || version == Self.compactFormatVersion else {
            throw StoreError.corrupt(origin, "unsupported format_version \((metadata["format_version"] ?? "missing").abbreviated)")
        }
        guard let stored = metadata.removeValue(forKey: "checksum") else { throw StoreError.corrupt(origin, "no checksum") }
        let dataRange = file.header.dataRange
        let dataCRC = bytes.withUnsafeBytes { raw in
            optimizerd_crc32c(0, raw.baseAddress! + dataRange.lowerBound, dataRange.count)
        }
        let index = file.tensors.map { ($0.name, $0.dtype.rawValue, $0.shape) }
        guard Self.checksum(metadata: metadata, index: index, dataCRC: dataCRC) == stored else {
            throw StoreError.corrupt(origin, "checksum mismatch")
        }
        func field(_ key: String) throws -> String {
            guard let value = metadata[key] else { throw StoreError.corrupt(origin, "metadata lacks \(key)") }
            return value
        }
        func decode<T: Decodable>(_ type: T.Type, _ key: String) throws -> T {
            do { return try JSONDecoder().decode(type, from: Data(try field(key).utf8)) } catch let error as StoreError { throw error } catch {
                throw StoreError.corrupt(origin, "metadata \(key) is not valid: \(String(describing: error).abbreviated(to: 200))")
            }
        }
        optimizer = try field("optimizer")
        hyperparameters = try decode(Hyperparameters.self, "hyperparameters")
        groups = try decode([ParameterGroup].self, "groups")
        guard let step = Int(try field("step")), (0...Self.maxStep).contains(step) else {
            throw StoreError.corrupt(origin, "step \((metadata["step"] ?? "").abbreviated) is not a whole number in 0…\(Self.maxStep)")
        }
        self.step = step
        parameterNames = try decode([String].self, "parameters")
        let slotNames = try decode([String: [String]].self, "slots")
        let globalNames = try decode([String].self, "global_slots")
        lastTelemetry = metadata["last_telemetry"] == nil ? nil : try decode(StepTelemetry.self, "last_telemetry")
        lastStepParameters = metadata["last_step_parameters"] == nil ? nil : try decode([String].self, "last_step_parameters")
        id = metadata["id"]
        name = metadata["name"]
        tokenHash = metadata["token_sha256"]
        createdAt = metadata["created_at"].flatMap(Double.init)
        if let dtype = metadata["state_dtype"] {
            guard version == Self.compactFormatVersion, let stateDType = StateDType(rawValue: dtype) else {
                throw StoreError.corrupt(origin, "unknown state_dtype \(dtype.abbreviated) for format_version \(version ?? "")")
            }
            self.stateDType = stateDType
        }
        if let mode = metadata["durability"] {
            guard let durability = DurabilityMode(rawValue: mode) else { throw StoreError.corrupt(origin, "unknown durability \(mode.abbreviated)") }
            self.durability = durability
        }

        func value(_ tensorName: String) throws -> StateSlot.Value {
            guard let entry = file.entry(named: tensorName) else { throw StoreError.corrupt(origin, "missing tensor \(tensorName)") }
            if entry.dtype == .F64 {
                let values = try file.doubles(named: tensorName)
                guard entry.shape.isEmpty, values.count == 1 else { throw StoreError.corrupt(origin, "scalar \(tensorName) is not rank 0") }
                return .scalar(values[0])
            }
            if entry.dtype == .U8 || entry.dtype == .BF16, version == Self.compactFormatVersion, tensorName.hasPrefix("state/") {
                let bytes = bytes.withUnsafeBytes {
                    PackedTensor(
                        shape: TensorShape(entry.shape), element: entry.dtype == .U8 ? .code8 : .bfloat16, copying: file.header.bytes(of: entry, in: $0))
                }
                return .packed(bytes)
            }
            return .tensor(TensorBuffer(shape: TensorShape(entry.shape), values: try file.floats(named: tensorName)))
        }
        parameters = try parameterNames.map { name in
            guard case .tensor(let tensor) = try value("param/\(name)") else { throw StoreError.corrupt(origin, "parameter \(name) is not a tensor") }
            return tensor
        }
        guard Set(parameterNames).count == parameterNames.count else { throw StoreError.corrupt(origin, "duplicate parameter names") }
        states = try parameterNames.map { name in
            try (slotNames[name] ?? []).map { StateSlot(name: $0, value: try value("state/\(name)/\($0)")) }
        }
        global = try globalNames.map { StateSlot(name: $0, value: try value("global/\($0)")) }
    }

    /// CRC-32C over the data section's CRC, the tensor index and the sorted metadata, as hex.
    static func checksum(metadata: [String: String], index: [(name: String, dtype: String, shape: [Int])], dataCRC: UInt32) -> String {
        var text = "data:\(dataCRC)\n"
        for entry in index { text += "tensor:\(entry.name)\u{0}\(entry.dtype)\u{0}\(entry.shape)\n" }
        for key in metadata.keys.sorted() { text += "meta:\(key)\u{0}\(metadata[key]!)\n" }
        let crc = Array(text.utf8).withUnsafeBytes { optimizerd_crc32c(0, $0.baseAddress, $0.count) }
        return String(format: "%08x", crc)
    }

    private func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

extension PackedTensor {
    /// The safetensors dtype of the elements: `U8` codes or `BF16` bits.
    var dtype: DType { element == .code8 ? .U8 : .BF16 }
}

extension StateSlot {
    /// Bytes per element of a tensor slot (0 for a scalar).
    var elementWidth: Int {
        switch value {
        case .scalar: 0
        case .tensor: 4
        case .packed(let tensor): tensor.element.size
        }
    }

    var isTensor: Bool { elementWidth > 0 }
}
