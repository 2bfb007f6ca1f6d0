import OptimizerKit

// MARK: Entries

extension SafetensorsHeader {
    /// Validates one `"name": {"dtype", "shape", "data_offsets"}` member.
    ///
    /// - Parameter data: The data section's range in the whole buffer.
    static func parseEntry(name: String, value: JSONValue, data: Range<Int>, limits: Limits) throws -> TensorEntry {
        guard name.utf8.count <= limits.maxNameBytes else {
            throw SafetensorsError(
                .limitExceeded,
                tensor: name,
                "tensor '\(name.abbreviated)': the name is \(name.utf8.count) bytes, more than the limit of \(limits.maxNameBytes)"
            )
        }
        guard case .object(let fields) = value else {
            throw SafetensorsError(
                .invalidTensorEntry,
                tensor: name,
                "tensor '\(name)': expected an object with dtype, shape and data_offsets, found \(value.kindDescription)"
            )
        }
        var dtypeValue: JSONValue?
        var shapeValue: JSONValue?
        var offsetsValue: JSONValue?
        for field in fields {
            switch field.key {
            case "dtype": dtypeValue = field.value
            case "shape": shapeValue = field.value
            case "data_offsets": offsetsValue = field.value
            default:
                throw SafetensorsError(
                    .invalidTensorEntry,
                    tensor: name,
                    "tensor '\(name)': unexpected field '\(field.key.abbreviated)'; an entry has only dtype, shape and data_offsets"
                )
            }
        }
        guard let dtypeValue, let shapeValue, let offsetsValue else {
            let missing = dtypeValue == nil ? "dtype" : shapeValue == nil ? "shape" : "data_offsets"
            throw SafetensorsError(.invalidTensorEntry, tensor: name, "tensor '\(name)': missing field '\(missing)'")
        }
        let dtype = try parseDType(dtypeValue, tensor: name)
        let shape = try parseShape(shapeValue, tensor: name, maxRank: limits.maxRank)
        let offsets = try parseOffsets(offsetsValue, tensor: name, dataSize: data.count)
        let (elementCount, byteCount) = try size(of: shape, dtype: dtype, tensor: name)
        guard byteCount == offsets.count else {
            throw SafetensorsError(
                .sizeMismatch,
                tensor: name,
                "tensor '\(name)': shape \(shape.shapeDescription) of \(dtype.rawValue) is \(byteCount) bytes but "
                    + "data_offsets [\(offsets.lowerBound), \(offsets.upperBound)] span \(offsets.count)"
            )
        }
        let byteRange = (data.lowerBound + offsets.lowerBound)..<(data.lowerBound + offsets.upperBound)
        return TensorEntry(name: name, dtype: dtype, shape: shape, byteRange: byteRange, elementCount: elementCount)
    }

    private static func parseDType(_ value: JSONValue, tensor name: String) throws -> DType {
        guard case .string(let string) = value else {
            throw SafetensorsError(
                .invalidTensorEntry,
                tensor: name,
                "tensor '\(name)': dtype must be a string, found \(value.kindDescription)"
            )
        }
        guard let dtype = DType(rawValue: string) else {
            throw SafetensorsError(
                .unknownDType,
                tensor: name,
                "tensor '\(name)': unknown dtype '\(string.abbreviated)'"
            )
        }
        return dtype
    }

    private static func parseShape(_ value: JSONValue, tensor name: String, maxRank: Int) throws -> [Int] {
        guard case .array(let dims) = value else {
            throw SafetensorsError(
                .invalidShape,
                tensor: name,
                "tensor '\(name)': shape must be an array of non-negative integers, found \(value.kindDescription)"
            )
        }
        guard dims.count <= maxRank else {
            throw SafetensorsError(
                .limitExceeded,
                tensor: name,
                "tensor '\(name)': shape has \(dims.count) dimensions, more than the limit of \(maxRank)"
            )
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (axis, dim) in dims.enumerated() {
            shape.append(try nonNegativeInteger(dim, code: .invalidShape, tensor: name, field: "shape[\(axis)]"))
        }
        return shape
    }

    private static func parseOffsets(_ value: JSONValue, tensor name: String, dataSize: Int) throws -> Range<Int> {
        guard case .array(let pair) = value, pair.count == 2 else {
            let found = if case .array(let a) = value { "an array of \(a.count) values" } else { value.kindDescription }
            throw SafetensorsError(
                .invalidOffsets,
                tensor: name,
                "tensor '\(name)': data_offsets must be two integers [begin, end], found \(found)"
            )
        }
        let begin = try nonNegativeInteger(pair[0], code: .invalidOffsets, tensor: name, field: "data_offsets[0]")
        let end = try nonNegativeInteger(pair[1], code: .invalidOffsets, tensor: name, field: "data_offsets[1]")
        guard begin <= end else {
            throw SafetensorsError(
                .invalidOffsets,
                tensor: name,
                "tensor '\(name)': data_offsets [\(begin), \(end)] begin after they end"
            )
        }
        guard end <= dataSize else {
            throw SafetensorsError(
                .invalidOffsets,
                tensor: name,
                "tensor '\(name)': data_offsets [\(begin), \(end)] run past the end of the data section, "
                    + "which has \(dataSize) bytes"
            )
        }
        return begin..<end
    }

    private static func nonNegativeInteger(
        _ value: JSONValue,
        code: SafetensorsError.Code,
        tensor name: String,
        field: String
    ) throws -> Int {
        guard case .number(let number) = value else {
            throw SafetensorsError(
                code,
                tensor: name,
                "tensor '\(name)': \(field) is \(value.kindDescription), expected a non-negative integer"
            )
        }
        guard number.isIntegerLiteral else {
            throw SafetensorsError(code, tensor: name, "tensor '\(name)': \(field) is \(number.text), not an integer")
        }
        guard let integer = number.integerValue else {
            throw SafetensorsError(
                code,
                tensor: name,
                "tensor '\(name)': \(field) is \(number.text), which is too large"
            )
        }
        guard integer >= 0 else {
            throw SafetensorsError(code, tensor: name, "tensor '\(name)': \(field) is \(integer), which is negative")
        }
        return integer
    }

    /// The element count and byte count of a shape, checked for overflow.
    static func size(of shape: [Int], dtype: DType, tensor name: String) throws -> (elements: Int, bytes: Int) {
        var elements = 1
        if !shape.contains(0) {
            for dim in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else {
                    throw SafetensorsError(
                        .sizeOverflow,
                        tensor: name,
                        "tensor '\(name)': shape \(shape.shapeDescription) has more elements than fit in 64 bits"
                    )
                }
                elements = product
            }
        } else {
            elements = 0
        }
        let (bits, overflow) = elements.multipliedReportingOverflow(by: dtype.bitWidth)
        guard !overflow else {
            throw SafetensorsError(
                .sizeOverflow,
                tensor: name,
                "tensor '\(name)': shape \(shape.shapeDescription) of \(dtype.rawValue) needs more bytes than fit in 64 bits"
            )
        }
        guard bits % 8 == 0 else {
            throw SafetensorsError(
                .sizeMismatch,
                tensor: name,
                "tensor '\(name)': \(elements) elements of \(dtype.rawValue) do not fill a whole number of bytes"
            )
        }
        return (elements, bits / 8)
    }

    // MARK: Metadata

    static func parseMetadata(_ value: JSONValue) throws -> [String: String] {
        guard case .object(let members) = value else {
            throw SafetensorsError(
                .invalidMetadata,
                "__metadata__ must be an object of string values, found \(value.kindDescription)"
            )
        }
        var metadata: [String: String] = Dictionary(minimumCapacity: members.count)
        for member in members {
            guard case .string(let string) = member.value else {
                throw SafetensorsError(
                    .invalidMetadata,
                    "__metadata__ key '\(member.key.abbreviated)' must map to a string, found \(member.value.kindDescription)"
                )
            }
            metadata[member.key] = string
        }
        return metadata
    }
}
