import Foundation
import NIOCore
import OptimizerKit
import OptimizerStore
import OptimizerWire

extension SessionState {
    /// Stages one part of step `n`: checked and copied, nothing applied. The same part id with the
    /// same tensors again (names, shapes, values) answers the same; with others it is a conflict.
    ///
    /// - Throws: ``ProblemError`` (400 bad part id, 409 wrong step or a part id reused with other
    ///   content), ``OptimizerError`` (422 unknown tensor, wrong shape, a tensor already staged),
    ///   ``SafetensorsError``, ``MemoryBudgetExceeded``. Nothing is staged when this throws.
    mutating func stagePart(
        step n: Int, part: String, payload: TensorPayload, ttl: Duration, budget: MemoryBudget, parallelism: Parallelism
    ) throws -> PartAnswer {
        try Self.checkPartID(part)
        dropExpiredStage()
        let current = session.step
        guard n == current + 1 else {
            let state = n == current && current > 0 ? " (step \(n) is already committed)" : ""
            throw ProblemError.conflict(
                "step-mismatch", "parts are for step \(current + 1): the session is at step \(current), got step \(n)\(state)")
        }
        if let stage = stagedStep, stage.staged.step != n || stage.isStale(for: session) { dropStage() }
        if let stage = stagedStep, let existing = stage.parts[part] {
            guard try Self.isStaged(payload, as: existing.answer, in: stage.staged, of: self.session) else {
                throw ProblemError.conflict(
                    "part-conflict",
                    "part \"\(part)\" of step \(n) was staged before with other tensors; use a new part id, or DELETE the staged step to start again"
                )
            }
            stagedStep?.expiresAt = Self.expiry(after: ttl)  // the TTL runs from the last part sent
            return existing.answer
        }
        var stage =
            stagedStep
            ?? StagedStepState(
                staged: StagedStep(step: n, for: session), expiresAt: Date(),
                memory: MemoryReservation(budget: budget, kind: .staging))
        let session = self.session
        let added = Self.stagedBytes(payload.header, session: session)
        let before = stage.staged.byteCount
        try stage.memory?.resize(to: before + added, purpose: "the staged parts of step \(n)", isStep: true)
        let statistics: [StagedStep.TensorStatistics]
        do {
            statistics = try payload.bytes.withUnsafeReadableBytes { body in
                try session.stage(part: payload.header, in: body, into: stage.staged, parallelism: parallelism)
            }
        } catch {
            stage.memory?.force(to: before)
            throw error
        }
        stage.memory?.force(to: stage.staged.byteCount)
        stage.expiresAt = Self.expiry(after: ttl)
        let answer = PartAnswer(
            step: n, part: part,
            tensors: Dictionary(
                statistics.map { ($0.name, PartAnswer.Statistics(sumOfSquares: $0.finite ? $0.sumOfSquares : nil, finite: $0.finite)) },
                uniquingKeysWith: { first, _ in first }),
            staged: .init(parts: stage.order.count + 1, tensors: stage.staged.tensors.count, bytes: stage.staged.byteCount)
        )
        stage.parts[part] = .init(answer: answer)
        stage.order.append(part)
        stagedStep = stage
        return answer
    }

    /// When parts staged now expire.
    private static func expiry(after ttl: Duration) -> Date {
        Date() + TimeInterval(ttl.components.seconds) + Double(ttl.components.attoseconds) * 1e-18
    }

    /// Whether `payload` is the part that answered `answer`: the same tensors as staged in `staged`.
    private static func isStaged(
        _ payload: TensorPayload, as answer: PartAnswer, in staged: StagedStep, of session: OptimizerSession
    ) throws -> Bool {
        let names = Set(answer.tensors.keys)
        let header = payload.header
        return try payload.bytes.withUnsafeReadableBytes { body in
            try session.isStaged(part: header, in: body, as: names, in: staged)
        }
    }

    /// Commits step `n`: the staged parts applied with the caller's global scalars, logged as one
    /// record first. A commit of the step already applied answers like a plain step's retry.
    ///
    /// `parts` is how many parts the caller staged: when given it must match, and when not, at least
    /// one part must be staged (so a commit retried after a restart lost the parts is refused rather
    /// than applied as an empty step).
    ///
    /// - Throws: ``ProblemError`` (409 wrong step; 422 parts missing), ``OptimizerError`` (422: a
    ///   gradient the optimizer needs was not staged, bad scalars, non-finite under `reject`),
    ///   ``StoreError``. Nothing changes when this throws; the staged parts stay.
    mutating func commit(
        step n: Int, scalars: StepScalars, parts: Int?, options: ResponseOptions, parallelism: Parallelism
    ) throws -> StepOutcome {
        dropExpiredStage()
        let current = session.step
        if n == current, current > 0 {
            let last = try retriedStep()
            var timing = ServerTiming()
            let body = try timing.measure("encode") { try response(for: last, options: options) }
            return StepOutcome(body: body, telemetry: last.telemetry, isRetry: true, timing: timing)
        }
        guard n == current + 1 else {
            throw ProblemError.conflict(
                "step-mismatch",
                "commit of step \(n) but the session is at step \(current): commit step \(current + 1)\(current > 0 ? ", or \(current) to retry the last one" : "")"
            )
        }
        let staged = try stagedStep(n, parts: parts, purpose: "commit")
        var timing = ServerTiming()
        let start = ContinuousClock.now
        let prepared = try session.prepareStep(staged, scalars: scalars, parallelism: parallelism)
        let validated = ContinuousClock.now
        // With durability snapshot, steps are not logged: background snapshots carry them.
        if let journal, journal.logsSteps {
            let body = try Self.commitRecord(staged, scalars: scalars)
            try body.withUnsafeReadableBytes { body in
                try journal.append(kind: .commit, step: n, contentEncoding: nil, body: body)
            }
        }
        let logged = ContinuousClock.now
        let indices = Set(staged.tensors.compactMap { session.resolveGradientName($0.name)?.parameter }).sorted()
        let applied = session.apply(prepared, parameterIndices: indices, keepingDelta: options.content == .delta)
        let appliedAt = ContinuousClock.now
        dropStage()
        timing.record("validate", validated - start)
        timing.record("log", logged - validated)
        timing.record("apply", appliedAt - logged)
        history.append(applied.telemetry)
        lastStep = applied
        let body = try timing.measure("encode") { try response(for: applied, options: options) }
        return StepOutcome(body: body, telemetry: applied.telemetry, isRetry: false, timing: timing)
    }

    /// The staged step `n` (the session is at step `n` − 1), empty when nothing is staged.
    ///
    /// `parts` is how many parts the caller staged: when given it must match, and when not, at least
    /// one part must be staged. `purpose` names the request in the errors ("commit").
    ///
    /// - Throws: ``ProblemError`` (422 missing-parts).
    func stagedStep(_ n: Int, parts: Int?, purpose: String) throws -> StagedStep {
        let staged = stagedStep.flatMap { $0.staged.step == n && !$0.isStale(for: session) ? $0.staged : nil } ?? StagedStep(step: n, for: session)
        let stagedParts = stagedStep?.staged === staged ? stagedStep?.order.count ?? 0 : 0
        if let parts, parts != stagedParts {
            throw ProblemError.unprocessable(
                "missing-parts", "parts: the \(purpose) counts \(parts) part(s) of step \(n) but \(stagedParts) are staged; send the missing parts again")
        }
        if parts == nil, stagedParts == 0 {
            throw ProblemError.unprocessable(
                "missing-parts", "parts: no parts are staged for step \(n); send them (again), or \(purpose) with \"parts\": 0 for an empty step")
        }
        return staged
    }

    /// Drops the staged parts of step `n`; false when none were staged for it.
    mutating func dropStagedStep(_ n: Int) -> Bool {
        dropExpiredStage()
        guard stagedStep?.staged.step == n else { return false }
        dropStage()
        return true
    }

    /// Replays a commit record: its tensors staged as one part, then committed with its scalars.
    mutating func replayCommit(_ record: LogRecord, parallelism: Parallelism) throws {
        let payload = try TensorPayload(parsing: ByteBuffer(bytes: record.body))
        guard let text = payload.metadata[Self.commitKey] else {
            throw ProblemError.badRequest("malformed-log-record", "a commit record without its scalars")
        }
        let scalars = try Self.scalarsDecoder.decode(StepScalars.self, from: Data(text.utf8))
        let staged = StagedStep(step: Int(record.step), for: session)
        let session = self.session
        try payload.bytes.withUnsafeReadableBytes { body in
            try session.stage(part: payload.header, in: body, into: staged, parallelism: parallelism)
        }
        stagedStep = StagedStepState(staged: staged, order: ["log"], expiresAt: .distantFuture, memory: nil)
        _ = try commit(
            step: Int(record.step), scalars: scalars, parts: nil, options: try ResponseOptions(returnValue: "none", dtypeValue: nil),
            parallelism: parallelism)
    }

    /// The staged step's summary, unless there is none (or it expired).
    var stagedSummary: StagedStepSummary? {
        guard let stagedStep, stagedStep.expiresAt > Date() else { return nil }
        return stagedStep.summary
    }

    /// Drops the staged step if its time is up.
    mutating func dropExpiredStage() {
        if let stagedStep, stagedStep.expiresAt <= Date() { dropStage() }
    }

    /// Drops the staged step and gives its memory back.
    mutating func dropStage() {
        stagedStep?.memory?.release()
        stagedStep = nil
    }

    /// The metadata key of a commit record that holds the scalars (JSON).
    static let commitKey = "commit"

    /// Reads the scalars of a commit (request or log record); non-finite numbers come as strings.
    static var scalarsDecoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return decoder
    }

    /// The log record of a commit: every staged tensor in float32 (so replay sees the same bits),
    /// in the order staged, with the scalars as JSON in `__metadata__`.
    private static func commitRecord(_ staged: StagedStep, scalars: StepScalars) throws -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let json = String(decoding: try encoder.encode(scalars), as: UTF8.self)
        return try TensorPayload.encode(staged.tensors, as: .f32, metadata: ["step": String(staged.step), commitKey: json])
    }

    /// The float32 bytes a part's tensors take once staged (dense: a sparse pair takes its parameter's size).
    private static func stagedBytes(_ header: SafetensorsHeader, session: OptimizerSession) -> Int {
        var elements = 0
        for entry in header.tensors where session.isGradientName(entry.name) || !entry.name.hasSuffix(SparseTensor.indicesSuffix) {
            if !session.isGradientName(entry.name), entry.name.hasSuffix(SparseTensor.valuesSuffix),
                let (_, index) = session.resolveGradientName(String(entry.name.dropLast(SparseTensor.valuesSuffix.count)))
            {
                elements += session.parameters[index].count
            } else {
                elements += entry.elementCount
            }
        }
        return elements * MemoryLayout<Float>.stride
    }

    /// Part ids: 1–128 characters of `A–Z a–z 0–9 . _ -`.
    private static func checkPartID(_ part: String) throws {
        let allowed = part.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2E
                || byte == 0x5F || byte == 0x2D
        }
        guard !part.isEmpty, part.utf8.count <= 128, allowed else {
            throw ProblemError.badRequest("invalid-part", "part id \"\(part.abbreviated)\": expected 1–128 characters of A–Z, a–z, 0–9, '.', '_' or '-'")
        }
    }
}

extension StagedStepState {
    /// Whether the session's parameters changed since this step was staged (then it cannot commit).
    func isStale(for session: OptimizerSession) -> Bool { staged.parameterCount != session.parameters.count || staged.termCount != session.configuration.terms }
}
