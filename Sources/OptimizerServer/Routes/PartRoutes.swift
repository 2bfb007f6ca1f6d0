import HTTPTypes
import Hummingbird
import OptimizerKit
import OptimizerWire

/// A step in parts: its gradients staged in several requests, then committed with the step's global
/// scalars (DESIGN §9).
struct PartRoutes {
    typealias Context = OptimizerRequestContext

    let dependencies: RouteDependencies

    func add(to router: some RouterMethods<Context>) {
        let steps = router.group("v1/sessions/{id}/steps").add(
            middleware: SessionAuthMiddleware(registry: dependencies.sessions, admin: dependencies.admin))
        steps.put("{n}/parts/{part}", use: putPart)
        steps.post("{n}/commit", use: commit)
        steps.post("{n}/momo-sums", use: momoSums)
        steps.delete("{n}", use: drop)
    }

    /// `PUT /v1/sessions/{id}/steps/{n}/parts/{part}` (safetensors gradients) → ``PartAnswer``.
    @Sendable func putPart(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        let n = try Self.stepNumber(context)
        let part = context.parameters.get("part") ?? ""
        let answer = try await session.withStepBodyRoom { stepRoom in
            let payload = try await dependencies.bodies.readTensors(request, purpose: "this part", stepRoom: stepRoom)
            return try await session.stagePart(step: n, part: part, payload: payload, ttl: dependencies.stagedStepTTL)
        }
        return try JSONCoding.response(answer)
    }

    /// `POST /v1/sessions/{id}/steps/{n}/commit?return=&dtype=` (JSON ``StepScalars``) → the
    /// safetensors answer of a plain step.
    @Sendable func commit(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        let n = try Self.stepNumber(context)
        let query = request.uri.queryParameters
        let options = try ResponseOptions(returnValue: query.get("return"), dtypeValue: query.get("dtype"))
        let body = try await dependencies.bodies.readJSON(CommitBody.self, from: request)
        let start = ContinuousClock.now
        let outcome = try await session.commit(step: n, scalars: body.scalars, parts: body.parts, options: options)
        if !outcome.isRetry { dependencies.metrics.recordStep(duration: ContinuousClock.now - start) }
        return try await dependencies.binaryResponse(
            outcome.body, for: request,
            headers: [
                HTTPField.Name("Optimizerd-Step")!: String(outcome.telemetry.step),
                HTTPField.Name("Optimizerd-Retry")!: String(outcome.isRetry),
                HTTPField.Name("Server-Timing")!: outcome.timing.headerValue,
            ]
        )
    }

    /// `POST /v1/sessions/{id}/steps/{n}/momo-sums` (JSON: the commit's body without `momo_totals`) →
    /// ``MomoSumsAnswer``.
    @Sendable func momoSums(_ request: Request, context: Context) async throws -> Response {
        let session = try context.requireSession()
        let n = try Self.stepNumber(context)
        let body = try await dependencies.bodies.readJSON(CommitBody.self, from: request)
        return try JSONCoding.response(try await session.momoSums(step: n, scalars: body.scalars, parts: body.parts))
    }

    /// `DELETE /v1/sessions/{id}/steps/{n}` → 204 (the staged parts dropped), 404 when none were staged.
    @Sendable func drop(_ request: Request, context: Context) async throws -> Response {
        let n = try Self.stepNumber(context)
        guard try await context.requireSession().dropStagedStep(n) else {
            throw ProblemError.notFound("no parts are staged for step \(n)")
        }
        return Response(status: .noContent)
    }

    private static func stepNumber(_ context: Context) throws -> Int {
        let text = context.parameters.get("n") ?? ""
        guard let n = Int(text), n >= 1 else {
            throw ProblemError.badRequest("invalid-step", "step \"\(text.abbreviated)\" in the path: expected an integer ≥ 1")
        }
        return n
    }
}

/// The JSON body of a commit: ``StepScalars`` with unknown members refused, and non-finite numbers
/// accepted as the strings `"NaN"`, `"Infinity"` and `"-Infinity"` (a skipped step's loss), plus
/// `parts`, the number of parts the caller staged (so parts lost in a restart are noticed). The same
/// body asks `momo-sums` for a step's MoMo sums (without `momo_totals`).
struct CommitBody: Decodable, Sendable {
    var scalars: StepScalars
    var parts: Int?

    init(from decoder: any Decoder) throws {
        let members = try decoder.container(keyedBy: MemberKey.self)
        try members.rejectUnknownMembers(["term_squared_norms", "nonfinite", "loss", "term_weights", "grad_scale", "parts", "momo_totals"])
        parts = try members.decodeIfPresent(Int.self, forKey: MemberKey("parts"))
        if let parts, parts < 0 {
            throw DecodingError.dataCorruptedError(
                forKey: MemberKey("parts"), in: members, debugDescription: "must be ≥ 0, got \(parts)")
        }
        let container = try decoder.container(keyedBy: StepScalars.CodingKeys.self)
        // A norm may be "Infinity": a grad_scale far below float32's range overflows the fold in
        // float64, and the shards then skip or refuse the step as one daemon does.
        var list = try container.nestedUnkeyedContainer(forKey: .termSquaredNorms)
        var norms: [Double] = []
        while !list.isAtEnd {
            if let value = try? list.decode(Double.self) {
                norms.append(value)
            } else if try list.decode(String.self) == "Infinity" {
                norms.append(.infinity)
            } else {
                throw DecodingError.dataCorruptedError(
                    forKey: .termSquaredNorms, in: container, debugDescription: "must be numbers ≥ 0 or \"Infinity\"")
            }
        }
        if let bad = norms.first(where: { $0.isNaN || $0 < 0 }) {
            throw DecodingError.dataCorruptedError(
                forKey: .termSquaredNorms, in: container, debugDescription: "must be numbers ≥ 0, got \(bad)")
        }
        let gradScale = try Self.number(container, .gradScale)
        if let gradScale, !(gradScale.isFinite && gradScale > 0) {
            throw DecodingError.dataCorruptedError(
                forKey: .gradScale, in: container, debugDescription: "must be a finite number > 0, got \(gradScale)")
        }
        // A tensor's name (or "loss"), which a refusal quotes: no longer than a tensor name may be.
        let nonfinite = try container.decodeIfPresent(String.self, forKey: .nonfinite)
        if let bytes = nonfinite?.utf8.count, bytes > RequestLimits.safetensors.maxNameBytes {
            throw DecodingError.dataCorruptedError(
                forKey: .nonfinite, in: container,
                debugDescription: "a tensor name of at most \(RequestLimits.safetensors.maxNameBytes) bytes or \"loss\", got \(bytes) bytes")
        }
        let termWeights = try container.decodeIfPresent([Double].self, forKey: .termWeights)
        if let bad = termWeights?.first(where: { !($0.isFinite && $0 >= 0) }) {
            throw DecodingError.dataCorruptedError(
                forKey: .termWeights, in: container, debugDescription: "must be finite numbers ≥ 0, got \(bad)")
        }
        scalars = StepScalars(
            termSquaredNorms: norms,
            nonfinite: nonfinite,
            loss: try Self.number(container, .loss),
            termWeights: termWeights,
            gradScale: gradScale,
            momoTotals: try Self.momoTotals(container)
        )
    }

    /// `momo_totals`: an object of exactly the three sums, each a number or a non-finite string.
    private static func momoTotals(_ container: KeyedDecodingContainer<StepScalars.CodingKeys>) throws -> MomoTotals? {
        guard container.contains(.momoTotals), try !container.decodeNil(forKey: .momoTotals) else { return nil }
        let members = try container.nestedContainer(keyedBy: MemberKey.self, forKey: .momoTotals)
        try members.rejectUnknownMembers(Set(MomoTotals.CodingKeys.allCases.map(\.stringValue)))
        let totals = try container.nestedContainer(keyedBy: MomoTotals.CodingKeys.self, forKey: .momoTotals)
        func sum(_ key: MomoTotals.CodingKeys) throws -> Double {
            guard let value = try number(totals, key) else {
                throw DecodingError.keyNotFound(key, .init(codingPath: totals.codingPath, debugDescription: "momo_totals needs \(key.stringValue)"))
            }
            return value
        }
        return MomoTotals(
            parameterDotAverage: try sum(.parameterDotAverage), gamma: try sum(.gamma), averageSquaredNorm: try sum(.averageSquaredNorm))
    }

    /// A number, or one of the strings `NaN`, `Infinity`, `-Infinity`.
    private static func number<Key: CodingKey>(_ container: KeyedDecodingContainer<Key>, _ key: Key) throws -> Double? {
        if let value = try? container.decodeIfPresent(Double.self, forKey: key) { return value }
        guard let text = try container.decodeIfPresent(String.self, forKey: key) else { return nil }
        switch text {
        case "NaN": return .nan
        case "Infinity": return .infinity
        case "-Infinity": return -.infinity
        default:
            throw DecodingError.dataCorruptedError(forKey: key, in: container, debugDescription: "expected a number, got \"\(text.abbreviated)\"")
        }
    }
}
