import OptimizerKit
import OptimizerWire

/// Fuzz target `request`: a session's life as the daemon runs it, without the network.
///
/// The input is sections joined by ``separator``: a session-creation body (JSON), a parameter upload
/// (safetensors), then up to ``maxSteps`` step bodies (safetensors; an empty one sends the upload
/// again as gradients). They go through what the daemon's routes do with them: the configuration
/// is decoded and validated (`SessionConfiguration`), the upload is decoded as dense float tensors,
/// checked and set (`checkParameters`, `setParameters`), and each step body is decoded with its
/// sparse pairs resolved against the session's parameters, validated (`prepareStep`) and applied
/// (`apply`). Finally the parameters are encoded as a step's answer is, in each wire dtype, and
/// read back.
///
/// Invariants beyond "no crash": every error is one the daemon maps to a 4xx (never an unexpected
/// type, which would be a 500), and a refused upload or step leaves the session exactly as it was
/// (DESIGN §7).
///
/// Not covered here: HTTP framing, gzip bodies, authentication, the `step` number check and the
/// write-ahead log (those live in OptimizerServer and OptimizerStore). The metadata scalars are
/// read with a simpler parser than the daemon's `StepMetadata`: they matter here for the values
/// they give `prepareStep`, not for how their text is parsed.
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
            unchangedOnError("step \(number + 1)", session, &report) { try step(gradients, session) }
        }
        report.run("encode", expecting: SafetensorsFuzz.isSafetensorsError) { try checkEncoding(session) }
        return report
    }

    /// The errors the daemon answers with a 4xx.
    static func isRequestError(_ error: any Error) -> Bool {
        error is SafetensorsError || error is OptimizerError || error is DecodingError || error is InputError
    }

    /// An input the harness refuses where the daemon would answer 4xx with its own error.
    struct InputError: Error, CustomStringConvertible {
        let description: String
    }

    // MARK: Stages

    /// `PUT /v1/sessions/{id}/parameters`: every tensor dense, checked, then set.
    private static func upload(_ body: UnsafeRawBufferPointer, to session: OptimizerSession) throws {
        let header = try SafetensorsHeader(parsing: body)
        try header.withFloatTensors(in: body, sparseShape: nil) { tensors in
            let uploads = tensors.map { ParameterTensor(name: $0.name, shape: TensorShape($0.shape), values: $0.values) }
            try session.checkParameters(uploads)
            try session.setParameters(uploads)
        }
    }

    /// `POST /v1/sessions/{id}/step`: sparse pairs resolved against the parameters, validated, applied.
    private static func step(_ body: UnsafeRawBufferPointer, _ session: OptimizerSession) throws {
        let header = try SafetensorsHeader(parsing: body)
        let scalars = try StepScalars(header.metadata)
        try header.withFloatTensors(
            in: body,
            sparseShape: { pair in
                guard let (_, index) = session.resolveGradientName(pair.name) else {
                    throw InputError(description: "sparse gradient of \(pair.name), which is not a parameter")
                }
                return session.parameters[index].shape.dimensions
            }
        ) { tensors in
            let input = StepInput(
                gradients: tensors.map { GradientTensor(name: $0.name, shape: TensorShape($0.shape), values: $0.values) },
                loss: scalars.loss,
                termWeights: scalars.termWeights,
                gradScale: scalars.gradScale
            )
            _ = session.apply(try session.prepareStep(input, parallelism: .serial))
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
