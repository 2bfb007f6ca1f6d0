import OptimizerKit
import OptimizerWire

/// Fuzz target `request`: a session's life as the daemon runs it, without the network.
///
/// The input is sections joined by ``separator``: a session-creation body (JSON), a parameter upload
/// (safetensors), then up to ``maxSteps`` step bodies (safetensors; an empty one sends the upload
/// again as gradients). They go through the daemon's own code: the configuration is decoded and
/// validated (`SessionConfiguration`); the upload and each step run through OptimizerWire's request
/// functions, which the daemon's routes and its log replay call too
/// (`OptimizerSession.setParameters(from:in:parallelism:beforeChange:)`, and
/// `OptimizerSession.step(_:gradients:in:keepingDelta:parallelism:scratch:beforeApply:)` after
/// `StepMetadata` parsed the body's `__metadata__`: the `step` number check, sparse pairs, duplicate
/// and unknown tensors, validation and the update). Finally the parameters are encoded as a step's
/// answer is, in each wire dtype, and read back.
///
/// Invariants beyond "no crash": every error is one the daemon maps to a 4xx (never an unexpected
/// type, which would be a 500), a refused upload or step leaves the session exactly as it was
/// (DESIGN §7), and a kept delta covers exactly the stepped parameters.
///
/// Not covered here: HTTP framing, gzip bodies, authentication, the answer to a retry and the
/// write-ahead log (those live in OptimizerServer and OptimizerStore).
public enum RequestFuzz {
    /// Separates the sections of an input.
    public static let separator = Array("\n--8<--\n".utf8)
    /// The most step bodies one input may carry (later sections are ignored).
    public static let maxSteps = 4

    /// Runs one input. Errors are recorded in the report; broken invariants stop the process.
    @discardableResult
    public static func fuzzOne(_ data: UnsafeRawBufferPointer) -> FuzzReport {
        var report = FuzzReport()
        let sections = split(data)
        defer { sections.forEach { $0.release() } }
        guard
            let configuration = report.run(
                "configure", expecting: isRequestError, { try SessionRequest.configuration(from: sections[0].buffer) })
        else { return report }

        let session = OptimizerSession(configuration: configuration)
        if sections.count > 1 {
            unchangedOnError("parameters", session, &report) { try upload(sections[1].buffer, to: session) }
        }
        for (number, body) in sections.dropFirst(2).prefix(maxSteps).enumerated() {
            // An empty step section repeats the upload as gradients: shapes that match the parameters
            // by construction, which random mutation would rarely produce in two places at once.
            let gradients = body.buffer.isEmpty ? sections[1].buffer : body.buffer
            unchangedOnError("step \(number + 1)", session, &report) { try step(gradients, number: number + 1, session) }
        }
        report.run("encode", expecting: SafetensorsFuzz.isSafetensorsError) { try checkEncoding(session) }
        return report
    }

    /// The errors the daemon answers with a 4xx.
    static func isRequestError(_ error: any Error) -> Bool {
        error is SafetensorsError || error is OptimizerError || error is StepRequestError || error is DecodingError
            || error is JSONBodyError
    }

    // MARK: Stages

    /// `PUT /v1/sessions/{id}/parameters`: every tensor dense, checked, then set.
    private static func upload(_ body: UnsafeRawBufferPointer, to session: OptimizerSession) throws {
        try session.setParameters(from: try SafetensorsHeader(parsing: body), in: body)
    }

    /// `POST /v1/sessions/{id}/step`: the metadata parsed, then the daemon's step; odd-numbered steps
    /// keep their delta (`return=delta`), which must cover exactly the stepped parameters.
    private static func step(_ body: UnsafeRawBufferPointer, number: Int, _ session: OptimizerSession) throws {
        let header = try SafetensorsHeader(parsing: body)
        let keepingDelta = !number.isMultiple(of: 2)
        let applied = try session.step(
            try StepMetadata(header.metadata), gradients: header, in: body, keepingDelta: keepingDelta, parallelism: .serial)
        fuzzCheck(applied.telemetry.step == session.step, "step \(applied.telemetry.step) reported, session at \(session.step)")
        if keepingDelta {
            let shapes = applied.parameterIndices.map { session.parameters[$0].shape }
            fuzzCheck(applied.delta?.map(\.shape) == shapes, "the delta does not match the stepped parameters")
        }
    }

    /// The parameters encoded as a step's answer is, in every wire dtype, must read back.
    private static func checkEncoding(_ session: OptimizerSession) throws {
        for dtype in [DType.F32, .F16, .BF16] {
            var writer = SafetensorsWriter(metadata: ["step": String(session.step)])
            for (name, tensor) in zip(session.parameterNames, session.parameters) {
                try writer.add(name, shape: tensor.shape.dimensions, floats: tensor.readOnly, as: dtype)
            }
            let file = try SafetensorsFile(bytes: writer.bytes())
            fuzzCheck(file.tensors.map(\.name) == session.parameterNames, "encoded names differ")
        }
    }

    /// Runs a stage that may change the session; if it throws, the session must be unchanged.
    private static func unchangedOnError(
        _ name: String,
        _ session: OptimizerSession,
        _ report: inout FuzzReport,
        _ body: () throws -> Void
    ) {
        let before = SessionFingerprint(session)
        if report.run(name, expecting: isRequestError, body) == nil {
            fuzzCheck(SessionFingerprint(session) == before, "a refused \(name) changed the session")
        }
    }

    // MARK: Input

    /// The sections of an input, each in its own allocation (at least one, possibly empty).
    static func split(_ data: UnsafeRawBufferPointer) -> [FuzzBytes] {
        var sections: [FuzzBytes] = []
        var start = 0
        var index = 0
        let limit = 2 + maxSteps
        while index + separator.count <= data.count, sections.count < limit - 1 {
            if data[index] == separator[0], separator.indices.allSatisfy({ data[index + $0] == separator[$0] }) {
                sections.append(FuzzBytes(UnsafeRawBufferPointer(rebasing: data[start..<index])))
                index += separator.count
                start = index
            } else {
                index += 1
            }
        }
        sections.append(FuzzBytes(UnsafeRawBufferPointer(rebasing: data[start...])))
        return sections
    }
}
