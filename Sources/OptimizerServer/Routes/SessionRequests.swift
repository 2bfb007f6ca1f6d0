import OptimizerKit
import OptimizerStore

/// `POST /v1/sessions` body: `{"optimizer", "hyperparameters"?, "groups"?, "name"?, "durability"?}`.
struct CreateSessionRequest: Decodable, Sendable {
    var optimizer: String
    var hyperparameters: Hyperparameters
    var groups: [ParameterGroup]
    var name: String?
    /// `"log"` or `"snapshot"`; nil takes the daemon's `--durability`.
    var durability: DurabilityMode?

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: MemberKey.self)
        try container.rejectUnknownMembers(["optimizer", "hyperparameters", "groups", "name", "durability"])
        optimizer = try container.decode(String.self, forKey: MemberKey("optimizer"))
        hyperparameters = try container.decodeIfPresent(Hyperparameters.self, forKey: MemberKey("hyperparameters")) ?? [:]
        groups = try container.decodeIfPresent([GroupRequest].self, forKey: MemberKey("groups"))?.map(\.group) ?? []
        name = try container.decodeIfPresent(String.self, forKey: MemberKey("name"))
        durability = try container.decodeIfPresent(DurabilityMode.self, forKey: MemberKey("durability"))
    }
}

/// `PATCH /v1/sessions/{id}` body: `{"hyperparameters"?, "groups"?}`, merged into the configuration.
struct PatchSessionRequest: Decodable, Sendable {
    var hyperparameters: Hyperparameters
    var groups: [ParameterGroup]?

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: MemberKey.self)
        try container.rejectUnknownMembers(["hyperparameters", "groups"])
        hyperparameters = try container.decodeIfPresent(Hyperparameters.self, forKey: MemberKey("hyperparameters")) ?? [:]
        groups = try container.decodeIfPresent([GroupRequest].self, forKey: MemberKey("groups"))?.map(\.group)
    }
}

/// One entry of `groups`: `{"parameters": [globs], "hyperparameters": {...}}`.
struct GroupRequest: Decodable {
    var group: ParameterGroup

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: MemberKey.self)
        try container.rejectUnknownMembers(["parameters", "hyperparameters"])
        group = ParameterGroup(
            parameters: try container.decode([String].self, forKey: MemberKey("parameters")),
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
