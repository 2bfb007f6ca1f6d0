import OptimizerKit

/// One optimizer configuration to time, with the bytes its maths must move per parameter.
struct BenchmarkCase {
    var label: String
    var optimizer: String
    var hyperparameters: Hyperparameters = [:]
    /// Loss terms (MTAdam); every other optimizer has one.
    var terms = 1
    /// Whether each step needs the batch loss (MoMo, MoMo-Adam).
    var needsLoss = false
    /// Float32 bytes per parameter the algorithm cannot avoid reading and writing in one step, given
    /// its data dependencies (see BENCHMARKS.md for the derivation of each figure).
    var boundBytes: (_ factored: Bool) -> Int

    /// The bytes of the session step as implemented: ``boundBytes`` plus the one extra read of every
    /// gradient the session makes for its norm and NaN/Inf check before anything changes (MTAdam's
    /// bound already contains that pass: its balancing weights need the norms first).
    func implementationBytes(factored: Bool) -> Int {
        boundBytes(factored) + (optimizer == "mtadam" ? 0 : 4 * terms)
    }

    /// The configurations the suite times: every optimizer at its defaults, with the options that
    /// change the memory traffic (momentum, amsgrad, K terms) as extra rows.
    static func all(terms: [Int]) -> [BenchmarkCase] {
        var cases = [
            // θ, g, m, v read; θ, m, v written.
            BenchmarkCase(label: "adam", optimizer: "adam", boundBytes: { _ in 28 }),
            BenchmarkCase(label: "adam amsgrad", optimizer: "adam", hyperparameters: ["amsgrad": .bool(true)], boundBytes: { _ in 36 }),
            BenchmarkCase(label: "adamw", optimizer: "adamw", boundBytes: { _ in 28 }),
            // θ, g, buf read; θ, buf written (12 without momentum).
            BenchmarkCase(label: "sgd momentum", optimizer: "sgd", hyperparameters: ["momentum": .number(0.9)], boundBytes: { _ in 20 }),
            // Factored: the row/column statistics, the RMS of the update and the update itself each
            // need a full pass over g (each depends on the previous one's totals): 3 reads of g + θ
            // read and written. Unfactored (vectors): V and Σu² in one pass, then the update.
            BenchmarkCase(label: "adafactor", optimizer: "adafactor", boundBytes: { $0 ? 20 : 28 }),
            // Pass 1: g, d, θ read, d written (⟨d, θ⟩ is needed for τ); pass 2: θ, d read, θ written.
            BenchmarkCase(label: "momo", optimizer: "momo", needsLoss: true, boundBytes: { _ in 28 }),
            // Pass 1: g, m, v, θ read, m, v written; pass 2: θ, m, v read, θ written.
            BenchmarkCase(label: "momo_adam", optimizer: "momo_adam", needsLoss: true, boundBytes: { _ in 40 }),
            // θ, g, m, T read; θ, m, T written.
            BenchmarkCase(label: "acclip", optimizer: "acclip", boundBytes: { _ in 28 }),
        ]
        for k in terms {
            // K gradient reads for the per-layer norms (the balancing weights depend on them), then one
            // pass: θ read and written, and per term g, m, v read and m, v written.
            cases.append(
                BenchmarkCase(
                    label: "mtadam K=\(k)", optimizer: "mtadam", hyperparameters: ["terms": .number(Double(k))],
                    terms: k, boundBytes: { _ in 8 + 24 * k }
                )
            )
        }
        return cases
    }
}

/// A set of named tensors to optimize.
struct BenchmarkModel {
    var label: String
    var tensors: [(name: String, shape: [Int])]

    var parameterCount: Int { tensors.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// Whether Adafactor factors most of this model's parameters (rank ≥ 2).
    var mostlyMatrices: Bool {
        tensors.filter { $0.shape.count >= 2 }.reduce(0) { $0 + $1.shape.reduce(1, *) } * 2 > parameterCount
    }

    /// One rows × columns matrix of about `parameters` elements (rows a power of two).
    static func matrix(parameters: Int) -> BenchmarkModel {
        var rows = 1
        while rows * rows * 2 <= parameters { rows *= 2 }
        let columns = parameters / rows
        return BenchmarkModel(label: "1 tensor \(rows)x\(columns)", tensors: [("w", [rows, columns])])
    }

    /// A small decoder-only transformer: embedding, `layers` blocks of attention and MLP matrices with
    /// their biases and layer norms, a final norm. Many tensors of mixed sizes, as a trainer sends them.
    static func transformer(width: Int, layers: Int, vocabulary: Int) -> BenchmarkModel {
        var tensors: [(String, [Int])] = [("embed.weight", [vocabulary, width])]
        for layer in 0..<layers {
            let p = "layers.\(layer)."
            tensors += [
                (p + "ln1.weight", [width]), (p + "ln1.bias", [width]),
                (p + "attn.qkv.weight", [3 * width, width]), (p + "attn.qkv.bias", [3 * width]),
                (p + "attn.out.weight", [width, width]), (p + "attn.out.bias", [width]),
                (p + "ln2.weight", [width]), (p + "ln2.bias", [width]),
                (p + "mlp.up.weight", [4 * width, width]), (p + "mlp.up.bias", [4 * width]),
                (p + "mlp.down.weight", [width, 4 * width]), (p + "mlp.down.bias", [width]),
            ]
        }
        tensors += [("ln_f.weight", [width]), ("ln_f.bias", [width])]
        let model = BenchmarkModel(label: "", tensors: tensors)
        return BenchmarkModel(
            label: "transformer \(layers)x\(width) (\(tensors.count) tensors)",
            tensors: model.tensors
        )
    }
}
