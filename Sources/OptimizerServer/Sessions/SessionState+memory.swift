import OptimizerKit
import OptimizerWire

/// What a session costs in the memory budget (``MemoryBudget``), computed under its lock.
extension SessionState {
    /// The bytes the session keeps: its parameters and optimizer state (also the state its next
    /// step creates, see ``OptimizerKit/OptimizerSession/memoryFootprint(configuration:adding:)``),
    /// and the delta of the last step kept for a retry with `return=delta`.
    func memoryFootprint(
        configuration: SessionConfiguration? = nil, adding additions: [OptimizerSession.PlannedParameter] = []
    ) -> Int {
        let delta = lastStep?.delta?.reduce(0) { $0 + max($1.count, 1) * MemoryLayout<Float>.stride } ?? 0
        return session.memoryFootprint(configuration: configuration, adding: additions) + delta
    }

    /// The room one step of this session needs, which the budget keeps free: a float32 gradient of
    /// every parameter for every loss term, and a float32 response with every parameter.
    func stepRoom(adding additions: [OptimizerSession.PlannedParameter] = []) -> Int {
        Self.stepRoom(of: session, adding: additions)
    }

    /// ``stepRoom(adding:)`` of `session`.
    static func stepRoom(of session: OptimizerSession, adding additions: [OptimizerSession.PlannedParameter] = []) -> Int {
        var seen = Set<String>()
        let added = additions.filter { session.parameterIndex(named: $0.name) == nil && seen.insert($0.name).inserted }
            .reduce(0) { $0 + $1.shape.elementCount }
        return (session.configuration.terms + 1) * (session.parameterCount + added) * MemoryLayout<Float>.stride
    }

    /// The transient bytes `request` needs beyond its body while it is applied: float16/bfloat16
    /// gradients converted to float32, sparse gradients scattered into dense ones, the response's
    /// tensors (float32 at most), and with `return=delta` the copy kept of the parameters.
    func stepStaging(_ request: StepRequest) -> Int {
        let header = request.header
        var elements = Self.conversionBytes(header) / MemoryLayout<Float>.stride
        var touched = Set<Int>()
        for entry in header.tensors {
            if let index = session.resolveGradientName(entry.name)?.parameter { touched.insert(index) }
        }
        for pair in (try? header.sparseTensors(denseNames: session.isGradientName)) ?? [] {
            guard let index = session.resolveGradientName(pair.name)?.parameter else { continue }
            elements += session.parameters[index].count
            touched.insert(index)
        }
        let touchedElements = touched.reduce(0) { $0 + session.parameters[$1].count }
        switch request.options.content {
        case .none: break
        case .params: elements += touchedElements
        case .delta: elements += 2 * touchedElements
        }
        return elements * MemoryLayout<Float>.stride
    }

    /// The float32 copies decoding `header`'s float16 and bfloat16 tensors makes.
    static func conversionBytes(_ header: SafetensorsHeader) -> Int {
        header.tensors.reduce(0) { total, entry in
            entry.dtype == .F16 || entry.dtype == .BF16 ? total + entry.elementCount * MemoryLayout<Float>.stride : total
        }
    }
}
