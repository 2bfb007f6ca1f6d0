extension SafetensorsHeader {
    /// Checks that the tensors, sorted by offset, cover the data section exactly once.
    ///
    /// Linear when the header lists tensors in offset order (every known writer does);
    /// `O(n log n)` otherwise.
    ///
    /// - Parameter data: The data section's range in the whole buffer.
    static func checkTiling(_ tensors: [TensorEntry], data: Range<Int>) throws {
        let isOrdered = zip(tensors, tensors.dropFirst()).allSatisfy { !Self.precedes($1, $0) }
        let ordered = isOrdered ? tensors : tensors.sorted(by: Self.precedes)
        var cursor = data.lowerBound
        var previous: TensorEntry?
        for entry in ordered {
            let begin = entry.byteRange.lowerBound
            if begin < cursor, let previous {
                throw SafetensorsError(
                    .overlappingTensors,
                    tensor: entry.name,
                    "tensor '\(entry.name)' (data_offsets \(describe(entry, data))) overlaps tensor "
                        + "'\(previous.name)' (data_offsets \(describe(previous, data)))"
                )
            }
            if begin > cursor {
                let gap = begin - cursor
                let message =
                    if let previous {
                        "\(gap) bytes between tensor '\(previous.name)' (ends at \(cursor - data.lowerBound)) and "
                            + "tensor '\(entry.name)' (begins at \(begin - data.lowerBound)) belong to no tensor"
                    } else {
                        "the first \(gap) bytes of the data section, before tensor '\(entry.name)', belong to no tensor"
                    }
                throw SafetensorsError(.gapBetweenTensors, tensor: entry.name, message)
            }
            cursor = entry.byteRange.upperBound
            previous = entry
        }
        if cursor < data.upperBound {
            let extra = data.upperBound - cursor
            if let previous {
                throw SafetensorsError(
                    .trailingBytes,
                    tensor: previous.name,
                    "\(extra) bytes after the last tensor '\(previous.name)' belong to no tensor"
                )
            }
            throw SafetensorsError(
                .trailingBytes,
                "the data section has \(extra) bytes but the header lists no tensors"
            )
        }
    }

    private static func precedes(_ a: TensorEntry, _ b: TensorEntry) -> Bool {
        (a.byteRange.lowerBound, a.byteRange.upperBound) < (b.byteRange.lowerBound, b.byteRange.upperBound)
    }

    private static func describe(_ entry: TensorEntry, _ data: Range<Int>) -> String {
        "[\(entry.byteRange.lowerBound - data.lowerBound), \(entry.byteRange.upperBound - data.lowerBound)]"
    }
}
