import Foundation
import HTTPTypes
import Hummingbird
import Logging
import OptimizerKit

/// `/v1/sessions` and `/v1/sessions/{id}`: create, list, summarise, reconfigure, delete.
struct SessionRoutes {
    typealias Context = OptimizerRequestContext

    let dependencies: RouteDependencies

    func add(to router: some RouterMethods<Context>) {
        let collection = router.group("v1/sessions").add(middleware: AdminAuthMiddleware(admin: dependencies.admin))
        collection.post(use: create)
        collection.get(use: list)
        let session = router.group("v1/sessions/{id}").add(
            middleware: SessionAuthMiddleware(registry: dependencies.sessions, admin: dependencies.admin))
        session.get(use: summary)
        session.patch(use: patch)
        session.delete(use: delete)
    }

    /// `POST /v1/sessions` → 201 with the token (returned only here) and `Location`.
    @Sendable func create(_ request: Request, context: Context) async throws -> Response {
        let body = try await dependencies.bodies.readJSON(CreateSessionRequest.self, from: request)
        let configuration = try SessionConfiguration(
            optimizer: body.optimizer, hyperparameters: body.hyperparameters, groups: body.groups, stateDType: body.stateDType)
        let (session, token) = try await dependencies.sessions.create(configuration: configuration, name: body.name, durability: body.durability)
        dependencies.metrics.setSessionCount(dependencies.sessions.count)
        context.logger.info(
            "session created",
            metadata: ["session.id": .string(session.id), "session.optimizer": .string(configuration.optimizer.rawValue)]
        )
        let created = SessionCreated(
            id: session.id,
            token: token,
            name: session.name,
            optimizer: configuration.optimizer.rawValue,
            hyperparameters: configuration.effectiveHyperparameters[0],
            groups: configuration.groups.enumerated().map { index, group in
                .init(parameters: group.parameters, hyperparameters: configuration.effectiveHyperparameters[index + 1], members: [])
            },
            step: 0,
            stateDType: configuration.stateDType
        )
        return try JSONCoding.response(created, status: .created, headers: [.location: "/v1/sessions/\(session.id)"])
    }

    /// `GET /v1/sessions` → `{"sessions": [...]}`, oldest first; never waits for a running step.
    @Sendable func list(_ request: Request, context: Context) async throws -> Response {
        let entries = dependencies.sessions.all.map { session in
            let progress = session.progress
            return SessionListEntry(
                id: session.id, name: session.name, optimizer: session.optimizer.rawValue,
                createdAt: session.createdAt.formatted(.iso8601), step: progress.step, durableStep: progress.durableStep,
                parameterTensors: progress.parameterTensors, parameterCount: progress.parameterCount,
                memoryBytes: session.memory.bytes, lastStep: progress.lastTelemetry
            )
        }
        return try JSONCoding.response(["sessions": entries])
    }

    /// `GET /v1/sessions/{id}` → ``SessionSummary``.
    @Sendable func summary(_ request: Request, context: Context) async throws -> Response {
        try JSONCoding.response(try await context.requireSession().summary())
    }

    /// `PATCH /v1/sessions/{id}` with `{"hyperparameters": {...}, "groups"?: [...]}` → the new summary.
    @Sendable func patch(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        let body = try await dependencies.bodies.readJSON(PatchSessionRequest.self, from: request)
        let summary = try await session.reconfigure(hyperparameters: body.hyperparameters, groups: body.groups, stateDType: body.stateDType)
        context.logger.info(
            "session reconfigured",
            metadata: ["session.id": .string(session.id), "session.hyperparameters": .string(body.hyperparameters.keys.sorted().joined(separator: ","))]
        )
        return try JSONCoding.response(summary)
    }

    /// `DELETE /v1/sessions/{id}` → 204. A step already running finishes; later requests get 404.
    @Sendable func delete(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        try await dependencies.sessions.remove(id: session.id)
        dependencies.metrics.setSessionCount(dependencies.sessions.count)
        context.logger.info("session deleted", metadata: ["session.id": .string(session.id)])
        return Response(status: .noContent)
    }
}
