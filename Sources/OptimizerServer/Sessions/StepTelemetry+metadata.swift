import Foundation
import OptimizerKit

extension StepTelemetry {
    /// The telemetry as safetensors `__metadata__` (all values strings; lists and maps as JSON).
    ///
    /// Keys: `step`, `skipped`, `grad_norm`, `update_norm`, and when known `lr`, `loss`,
    /// `clip_coefficient`, `term_grad_norms`, `term_weights` (MTAdam, per layer).
    var wireMetadata: [String: String] {
        var metadata: [String: String] = [
            "step": String(step),
            "skipped": String(skipped),
            "grad_norm": String(gradNorm),
            "update_norm": String(updateNorm),
        ]
        if let lr { metadata["lr"] = String(lr) }
        if let loss { metadata["loss"] = String(loss) }
        if let clipCoefficient { metadata["clip_coefficient"] = String(clipCoefficient) }
        if let termGradNorms { metadata["term_grad_norms"] = Self.json(termGradNorms) }
        if let termWeights { metadata["term_weights"] = Self.json(termWeights) }
        return metadata
    }

    private static func json(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? "null"
    }
}
