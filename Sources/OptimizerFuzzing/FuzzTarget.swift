/// The fuzz targets, by the name `scripts/fuzz.sh` and `optimizerd-fuzz` use.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// ``SafetensorsFuzz``: the strict safetensors decoder.
    case safetensors
    /// ``RequestFuzz``: session creation, parameter upload and steps, as the daemon runs them.
    case request
    /// ``JSONFuzz``: the strict JSON parser and session configurations.
    case json

    /// Runs one input through the target.
    @discardableResult
    public func fuzzOne(_ data: UnsafeRawBufferPointer) -> FuzzReport {
        switch self {
        case .safetensors: SafetensorsFuzz.fuzzOne(data)
        case .request: RequestFuzz.fuzzOne(data)
        case .json: JSONFuzz.fuzzOne(data)
        }
    }
}
