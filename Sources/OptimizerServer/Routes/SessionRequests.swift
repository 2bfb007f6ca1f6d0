import OptimizerKit
import OptimizerStore

/// `POST /v1/sessions` body: `{"optimizer", "hyperparameters"?, "groups"?, "name"?, "durability"?,
/// "state_dtype"?}`.
struct CreateSessionRequest: Decodable, Sendable {
    var optimizer: String
    var hyperparameters: Hyperparameters
    var groups: [ParameterGroup]
    var name: String?
    /// `"log"` or `"snapshot"`; nil takes the daemon's `--durability`.
    var durability: DurabilityMode?
    /// `"f32"` (default), `"bf16"` or `"int8"` (DESIGN §10).
    var stateDType: StateDType

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: MemberKey.self)
        try container.rejectUnknownMembers(["optimizer", "hyperparameters", "groups", "name", "durability", "state_dtype"])
        optimizer = try container.decode(String.self, forKey: MemberKey("optimizer"))
        hyperparameters = try container.decodeIfPresent(Hyperparameters.self, forKey: MemberKey("hyperparameters")) ?? [:]
        groups = try container.decodeIfPresent([GroupRequest].self, forKey: MemberKey("groups"))?.map(\.group) ?? []
        name = try container.decodeIfPresent(String.self, forKey: MemberKey("name"))
        if let bytes = name?.utf8.count, bytes > RequestLimits.maxSessionNameBytes {
            throw DecodingError.dataCorruptedError(
                forKey: MemberKey("name"), in: container,
                debugDescription: "at most \(RequestLimits.maxSessionNameBytes) bytes of UTF-8, got \(bytes) bytes")
        }
        durability = try container.decodeIfPresent(String.self, forKey: MemberKey("durability")).map { text in
            guard let mode = DurabilityMode(rawValue: text) else {
                throw DecodingError.dataCorruptedError(
                    forKey: MemberKey("durability"), in: container, debugDescription: "expected log or snapshot, got \"\(text.abbreviated)\"")
            }
            return mode
        }
        stateDType = try container.decodeIfPresent(String.self, forKey: MemberKey("state_dtype")).map(StateDType.init(option:)) ?? .f32
    }
}

/// `PATCH /v1/sessions/{id}` body: `{"hyperparameters"?, "groups"?, "state_dtype"?}`, merged into the
/// configuration; `state_dtype` may only repeat the session's own (it cannot change).
struct PatchSessionRequest: Decodable, Sendable {
    var hyperparameters: Hyperparameters
    var groups: [ParameterGroup]?
    var stateDType: StateDType?

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: MemberKey.self)
        try container.rejectUnknownMembers(["hyperparameters", "groups", "state_dtype"])
        stateDType = try container.decodeIfPresent(String.self, forKey: MemberKey("state_dtype")).map(StateDType.init(option:))
        hyperparameters = try container.decodeIfPresent(Hyperparameters.self, forKey: MemberKey("hyperparameters")) ?? [:]
        groups = try container.decodeIfPresent([GroupRequest].self, forKey: MemberKey("groups"))?.map(\.group)
    }
}

/// One entry of `groups`: `{"parameters": [globs], "hyperparameters": {...}}`; each glob at most
/// ``RequestLimits/maxPatternBytes``.
struct GroupRequest: Decodable {
    var group: ParameterGroup

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: MemberKey.self)
        try container.rejectUnknownMembers(["parameters", "hyperparameters"])
        let patterns = try container.decode([String].self, forKey: MemberKey("parameters"))
        if let position = patterns.firstIndex(where: { $0.utf8.count > RequestLimits.maxPatternBytes }) {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: container.codingPath + [MemberKey("parameters"), MemberKey(index: position)],
                    debugDescription:
                        "a pattern is at most \(RequestLimits.maxPatternBytes) bytes of UTF-8, got \(patterns[position].utf8.count) bytes"
                )
            )
        }
        group = ParameterGroup(
            parameters: patterns,
            hyperparameters: try container.decodeIfPresent(Hyperparameters.self, forKey: MemberKey("hyperparameters")) ?? [:]
        )
    }
}

/// `201` answer to `POST /v1/sessions`: the only response that carries the session's token.
struct SessionCreated: Encodable {
    var id: String
    var token: String
    var name: String?
    var optimizer: String
    /// Effective hyperparameters of the default group (defaults filled in).
    var hyperparameters: Hyperparameters
    var groups: [SessionSummary.Group]
    var step: Int
    var stateDType: StateDType

    enum CodingKeys: String, CodingKey {
        case id, token, name, optimizer, hyperparameters, groups, step
        case stateDType = "state_dtype"
    }
}

/// One entry of `GET /v1/sessions`.
struct SessionListEntry: Encodable {
    var id: String
    var name: String?
    var optimizer: String
    var createdAt: String
    var step: Int
    var durableStep: Int
    var parameterTensors: Int
    var parameterCount: Int
    var memoryBytes: Int
    var lastStep: StepTelemetry?

    enum CodingKeys: String, CodingKey {
        case id, name, optimizer, step
        case durableStep = "durable_step"
        case createdAt = "created_at"
        case parameterTensors = "parameter_tensors"
        case parameterCount = "parameter_count"
        case memoryBytes = "memory_bytes"
        case lastStep = "last_step"
    }
}
