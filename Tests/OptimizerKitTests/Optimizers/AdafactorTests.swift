import Foundation
import Testing

@testable import OptimizerKit

// MARK: Float64 reference trajectories

// Computed from algorithms.md §4 with a float64 NumPy re-implementation (itself checked against the
// three `adafactor*` conformance files). Tensors: `s` rank 0, `v` rank 1 (unfactored), `w` [3, 4]
// (factored), `k` [2, 2, 2, 3] (factored over its last two axes, per leading index). The expected
// values are θ after each of 3 steps, in the order s, v, w, k.
private let initial: [(String, [Int], [Float])] = [
    ("s", [], [0.38]),
    ("v", [5], [1.19, 0.83, 0, -0.6, 1.12]),
    ("w", [3, 4], [-1.48, 0.96, 0.89, -0.1, -0.59, -0.66, -0.74, -0.16, 0.01, 0.16, 1.49, 0.88]),
    (
        "k", [2, 2, 2, 3],
        [
            0.37, 1.47, -0.85, -1.02, 0.34, -1.37, -1.39, 0.04, -0.1, 1.25, 0.39, 0.04, -0.01, -0.76, -1.46, -0.92,
            0.58, -0.9, -0.39, -1.49, 0.99, -1.04, -0.7, 1.14,
        ]
    ),
]

/// The gradients of steps 1, 2, 3 (`v` is zero at step 2; `w` has a zero row and a zero entry).
private let gradients: [[[Float]]] = [
    [
        [0.02],
        [0.00069, 0.00028, 0.00048, -0.00082, 0.00008],
        [0.02, 0.74, 0, 0.2, 0, 0, 0, 0, 0.63, -0.24, 0.96, 0.18],
        [
            0.0021, 0.0028, 0.0035, -0.007, -0.0012, -0.0052, -0.002, -0.0081, 0.0094, -0.0057, 0.0034, -0.004, 0.0075,
            0.0032, -0.0074, 0.0069, 0.0089, 0.0081, 0.0014, -0.0071, -0.0062, 0.0086, 0.001, -0.0064,
        ],
    ],
    [
        [0.77],
        [0, 0, 0, 0, 0],
        [-0.92, 0.75, 0, 0.1, 0, 0, 0, 0, -0.94, -0.75, 0.93, 0.32],
        [
            -0.0014, 0.0005, 0.0075, -0.0031, 0.0018, 0.0037, -0.0029, 0.0004, 0.0053, 0.0082, -0.007, 0.0087, -0.0099,
            0.0051, 0.0062, -0.0073, -0.0016, 0.0063, -0.0097, 0.0026, 0.0059, 0.0003, 0.0045, -0.0055,
        ],
    ],
    [
        [-0.6],
        [-0.00027, -0.00064, -0.00031, 0.0009, 0.00015],
        [-0.32, -0.46, 0, -0.11, 0, 0, 0, 0, 0.49, 0.16, -0.15, 0.76],
        [
            -0.0018, 0.0085, -0.0086, -0.0014, 0.0004, 0.009, -0.005, 0.0061, 0.0035, 0.0043, 0.0026, 0.0094, -0.0033,
            -0.002, -0.0059, -0.009, -0.0057, 0.0083, 0.0068, -0.0078, 0.0021, -0.0004, 0.0019, 0.0032,
        ],
    ],
]

private let expectedA: [[[Double]]] = [
    [
        [0.376199995],
        [1.18137521, 0.821375135, -0.008624848, -0.591375176, 1.11137516],
        [
            -1.48048602, 0.945430422, 0.889999986, -0.111384785, -0.589999974, -0.660000026, -0.74000001, -0.159999996,
            0.000108649634, 0.163053062, 1.48010368, 0.873379697,
        ],
        [
            0.364810685, 1.45340085, -0.860083946, -1.01027301, 0.344000353, -1.36157533, -1.38655703, 0.0495884759,
            -0.109568629, 1.26591503, 0.383472073, 0.0466040836, -0.0204777402, -0.764817142, -1.45039712, -0.927651752,
            0.569365048, -0.908343719, -0.392145902, -1.47677496, 0.999292762, -1.05166728, -0.701648632, 1.14849023,
        ],
    ],
    [
        [0.372437995],
        [1.18137521, 0.821375135, -0.008624848, -0.591375176, 1.11137516],
        [
            -1.46853034, 0.93437527, 0.889999986, -0.115922236, -0.589999974, -0.660000026, -0.74000001, -0.159999996,
            0.00905575422, 0.171150226, 1.46998045, 0.862744878,
        ],
        [
            0.368276351, 1.45065153, -0.873425541, -1.00294231, 0.334545537, -1.36786276, -1.38098156, 0.0488327869,
            -0.117241264, 1.25320271, 0.394135794, 0.0364482514, -0.0093051925, -0.773745414, -1.45856932, -0.919171884,
            0.572248192, -0.916891173, -0.379638037, -1.48187118, 0.990909562, -1.05213898, -0.712404087, 1.15801954,
        ],
    ],
    [
        [0.376162375],
        [1.18632719, 0.831772929, -0.00159266233, -0.600345959, 1.10122809],
        [
            -1.46349548, 0.942663172, 0.889999986, -0.113060175, -0.589999974, -0.660000026, -0.74000001, -0.159999996,
            0.00361145521, 0.169114517, 1.47205773, 0.848780918,
        ],
        [
            0.373248619, 1.43282475, -0.862851564, -0.998366667, 0.333552978, -1.38095533, -1.37079591, 0.0365717618,
            -0.122343696, 1.2461288, 0.389915501, 0.0253817758, -0.00480770904, -0.769485554, -1.44992101, -0.909081435,
            0.582235593, -0.926899681, -0.388735726, -1.46936928, 0.9875109, -1.05134241, -0.716937034, 1.15031078,
        ],
    ],
]

private let expectedB: [[[Double]]] = [
    [
        [0.377377995],
        [1.18055585, 0.822108247, -0.004312424, -0.593100145, 1.11085767],
        [
            -1.47413677, 0.947382028, 0.886301039, -0.106326446, -0.587547863, -0.657256987, -0.736924481, -0.159335017,
            0.0041007917, 0.161143039, 1.47794679, 0.872422076,
        ],
        [
            0.365689779, 1.45488455, -0.851100821, -1.0104071, 0.340423713, -1.35943544, -1.38183354, 0.044608771,
            -0.104320649, 1.25216169, 0.384927731, 0.0431165748, -0.0151925034, -0.758884702, -1.44842905, -0.919560154,
            0.571993251, -0.899998851, -0.389264645, -1.47647885, 0.990056089, -1.04101149, -0.697578646, 1.13895931,
        ],
    ],
    [
        [0.373259035],
        [1.17205887, 0.81514368, -0.00774392698, -0.58711462, 1.10265865],
        [
            -1.4617355, 0.930377068, 0.882641239, -0.113838106, -0.585121704, -0.654542978, -0.733881501, -0.158677076,
            0.00434986792, 0.166508724, 1.46126845, 0.859623104,
        ],
        [
            0.363852486, 1.44003711, -0.858000742, -0.997445535, 0.334887681, -1.35325857, -1.37094594, 0.047792759,
            -0.112102458, 1.24629752, 0.386217197, 0.0402586708, -0.0134713646, -0.762294154, -1.44232763, -0.913748254,
            0.566780678, -0.904013752, -0.381746523, -1.46716052, 0.984716343, -1.04113705, -0.701215285, 1.14248117,
        ],
    ],
    [
        [0.371703206],
        [1.16720088, 0.813817706, -0.00667466259, -0.586346214, 1.09039626],
        [
            -1.44659817, 0.922999888, 0.879030932, -0.117615688, -0.582728354, -0.651865671, -0.730879673, -0.158028032,
            0.000118763066, 0.168962735, 1.44865361, 0.838453914,
        ],
        [
            0.364951603, 1.4185227, -0.85756895, -0.983417283, 0.329684053, -1.35384545, -1.35550712, 0.0434387488,
            -0.120974446, 1.23685873, 0.384659897, 0.0322344462, -0.00964177346, -0.761909655, -1.43148043,
            -0.903029248, 0.567539883, -0.911595923, -0.380170231, -1.45215034, 0.977712795, -1.03983443, -0.70599977,
            1.13956461,
        ],
    ],
]

private let expectedC: [[[Double]]] = [
    [
        [0.379998995],
        [1.18999906, 0.829998983, -1e-06, -0.599999024, 1.119999],
        [
            -1.48000008, 0.959998226, 0.889999986, -0.100001371, -0.589999974, -0.660000026, -0.74000001, -0.159999996,
            0.0099988098, 0.160000364, 1.48999882, 0.879999199,
        ],
        [
            0.369999445, 1.46999824, -0.850001111, -1.01999893, 0.340000435, -1.3699991, -1.38999961, 0.0400010331,
            -0.100001033, 1.25000172, 0.389999282, 0.0400007113, -0.0100011297, -0.76000051, -1.459999, -0.920000842,
            0.579998836, -0.900000876, -0.390000217, -1.48999858, 0.990001012, -1.04000122, -0.700000166, 1.1400009,
        ],
    ],
    [
        [0.379996995],
        [1.18999906, 0.829998983, -1e-06, -0.599999024, 1.119999],
        [
            -1.47999719, 0.959995555, 0.889999986, -0.100002467, -0.589999974, -0.660000026, -0.74000001, -0.159999996,
            0.0100009709, 0.16000232, 1.48999637, 0.87999663,
        ],
        [
            0.370000193, 1.46999765, -0.85000399, -1.01999735, 0.339998395, -1.37000045, -1.38999841, 0.04000087,
            -0.100002689, 1.24999897, 0.390001583, 0.0399985197, -0.00999871873, -0.760002437, -1.46000077,
            -0.919999012, 0.579999459, -0.90000272, -0.389997518, -1.48999968, 0.989999203, -1.04000132, -0.700002487,
            1.14000296,
        ],
    ],
    [
        [0.379999995],
        [1.19000079, 0.830002632, 1.4673886e-06, -0.600002171, 1.11999544],
        [
            -1.47999535, 0.959998577, 0.889999986, -0.100001424, -0.589999974, -0.660000026, -0.74000001, -0.159999996,
            0.0099989862, 0.160001577, 1.48999713, 0.879991539,
        ],
        [
            0.370001801, 1.46999188, -0.850000571, -1.01999587, 0.339998074, -1.37000469, -1.38999512, 0.0399969054,
            -0.100004339, 1.24999669, 0.390000218, 0.0399949414, -0.00999726447, -0.760001059, -1.45999797,
            -0.919995749, 0.580002688, -0.900005957, -0.39000046, -1.48999564, 0.989998104, -1.04000106, -0.700003953,
            1.14000046,
        ],
    ],
]

/// One reference configuration and its expected trajectory.
struct AdafactorReferenceCase: Sendable, CustomTestStringConvertible {
    var name: String
    var hyperparameters: Hyperparameters
    var expected: [[[Double]]]
    /// The learning rate the telemetry should report at steps 1, 2, 3 (ρ).
    var learningRates: [Double]
    var testDescription: String { name }
}

private let referenceCases = [
    AdafactorReferenceCase(
        name: "defaults (relative step, parameter scale)",
        hyperparameters: [:],
        expected: expectedA,
        learningRates: [0.01, 0.01, 0.01]
    ),
    AdafactorReferenceCase(
        name: "fixed lr, beta1, weight decay, clipping 0.5, decay rate -0.6, eps",
        hyperparameters: [
            "lr": .number(0.05), "relative_step": .bool(false), "beta1": .number(0.8), "weight_decay": .number(0.1),
            "clip_threshold": .number(0.5), "decay_rate": .number(-0.6), "eps": .list([.number(1e-20), .number(1e-2)]),
        ],
        expected: expectedB,
        learningRates: [0.05, 0.05, 0.05]
    ),
    AdafactorReferenceCase(
        name: "warmup init, no parameter scale",
        hyperparameters: ["warmup_init": .bool(true), "scale_parameter": .bool(false)],
        expected: expectedC,
        learningRates: [1e-6, 2e-6, 3e-6]
    ),
]

// MARK: A Double reference for large tensors

/// algorithms.md §4 in Double for one tensor, written as plainly as possible (no factoring tricks), to
/// check tensors too large for pasted literals (the grouped column sums of large slices).
struct DoubleAdafactor {
    var lr: Double? = nil
    var beta1: Double? = nil
    var weightDecay = 0.0
    var t = 0.0
    var rows: [Double] = []
    var columns: [Double] = []
    var full: [Double] = []
    var momentum: [Double] = []

    mutating func step(_ theta: inout [Double], _ g: [Double], dimensions: [Int]) {
        t += 1
        let count = theta.count
        let rho = lr ?? min(1e-2, 1 / t.squareRoot())
        let rms = (theta.reduce(0) { $0 + $1 * $1 } / Double(count)).squareRoot()
        let alpha = rho * max(1e-3, rms)
        let beta2 = 1 - pow(t, -0.8)
        var u = [Double](repeating: 0, count: count)
        if dimensions.count >= 2 {
            let m = dimensions[dimensions.count - 1]
            let n = dimensions[dimensions.count - 2]
            let slices = count / (n * m)
            if rows.isEmpty {
                rows = Array(repeating: 0, count: slices * n)
                columns = Array(repeating: 0, count: slices * m)
            }
            for s in 0..<slices {
                for i in 0..<n {
                    var sum = 0.0
                    for j in 0..<m { sum += g[(s * n + i) * m + j] * g[(s * n + i) * m + j] + 1e-30 }
                    rows[s * n + i] = beta2 * rows[s * n + i] + (1 - beta2) * sum / Double(m)
                }
                for j in 0..<m {
                    var sum = 0.0
                    for i in 0..<n { sum += g[(s * n + i) * m + j] * g[(s * n + i) * m + j] + 1e-30 }
                    columns[s * m + j] = beta2 * columns[s * m + j] + (1 - beta2) * sum / Double(n)
                }
                let mean = rows[s * n..<(s + 1) * n].reduce(0, +) / Double(n)
                for i in 0..<n {
                    for j in 0..<m {
                        let k = (s * n + i) * m + j
                        u[k] = g[k] / (rows[s * n + i] / mean).squareRoot() / columns[s * m + j].squareRoot()
                    }
                }
            }
        } else {
            if full.isEmpty { full = Array(repeating: 0, count: count) }
            for k in 0..<count {
                full[k] = beta2 * full[k] + (1 - beta2) * (g[k] * g[k] + 1e-30)
                u[k] = g[k] / full[k].squareRoot()
            }
        }
        let clip = max(1, (u.reduce(0) { $0 + $1 * $1 } / Double(count)).squareRoot())
        if beta1 != nil, momentum.isEmpty { momentum = Array(repeating: 0, count: count) }
        for k in 0..<count {
            var update = alpha * u[k] / clip
            if let beta1 {
                momentum[k] = beta1 * momentum[k] + (1 - beta1) * update
                update = momentum[k]
            }
            if weightDecay != 0 { theta[k] -= weightDecay * alpha * theta[k] }
            theta[k] -= update
        }
    }
}

// MARK: Comparison helpers (they report one number, not whole tensors)

/// max over elements of |got − expect| / (atol + rtol·|expect − initial|): ≤ 1 passes the conformance criterion.
private func worstRatio(_ got: [Float], _ expect: [Double], initial: [Float], atol: Double, rtol: Double) -> Double {
    precondition(got.count == expect.count && got.count == initial.count)
    var worst = 0.0
    for i in got.indices {
        worst = max(worst, abs(Double(got[i]) - expect[i]) / (atol + rtol * abs(expect[i] - Double(initial[i]))))
    }
    return worst
}

/// The first index where the bit patterns differ (nil when identical).
private func firstDifference(_ a: [Float], _ b: [Float]) -> Int? {
    guard a.count == b.count else { return min(a.count, b.count) }
    return a.indices.first { a[$0].bitPattern != b[$0].bitPattern }
}

// MARK: Tests

struct AdafactorTests {
    @Test(arguments: referenceCases)
    func matchesFloat64Reference(_ reference: AdafactorReferenceCase) throws {
        let session = try OptimizerSession.make("adafactor", reference.hyperparameters)
        try session.upload(initial)
        for step in 0..<3 {
            let telemetry = try session.step(
                initial.indices.map { (initial[$0].0, initial[$0].1, gradients[step][$0]) }
            )
            #expect(abs(telemetry.lr! - reference.learningRates[step]) <= 1e-15 * reference.learningRates[step])
            for (index, tensor) in initial.enumerated() {
                let got = session.value(tensor.0)
                let expect = reference.expected[step][index]
                #expect(
                    worstRatio(got, expect, initial: tensor.2, atol: 4e-7, rtol: 1e-4) <= 1,
                    "step \(step + 1), \(tensor.0): got \(got), expected \(expect)"
                )
            }
        }
    }

    @Test func zeroGradientLeavesAnUnfactoredTensorUnchangedAndAnAllZeroTensorMoves() throws {
        let session = try OptimizerSession.make("adafactor")
        try session.upload([("z", [3], [0, 0, 0]), ("w", [2, 2], [1, 2, 3, 4])])
        try session.step([("z", [3], [0.5, -0.5, 0]), ("w", [2, 2], [0, 0, 0, 0])])
        // An all-zero θ has scale ε2 = 1e-3, so α = 1e-2·1e-3; at t = 1, U = g/√(g² + ε1) ≈ sign(g), whose
        // RMS √(2/3) is below the clip threshold 1.
        let z = session.value("z")
        #expect(abs(z[0] + 1e-5) < 1e-11 && abs(z[1] - 1e-5) < 1e-11 && z[2] == 0)
        #expect(session.value("w") == [1, 2, 3, 4])
    }

    @Test func gradientScaleIsFoldedIntoEveryPass() throws {
        var random = SeededRandom(seed: 11)
        let theta = random.floats(24)
        let steps = (0..<3).map { _ in random.floats(24, in: -0.01...0.01) }
        func run(scale: Float, beta1: Bool) throws -> [[Float]] {
            let session = try OptimizerSession.make(
                "adafactor",
                beta1 ? ["beta1": .number(0.9), "weight_decay": .number(0.01)] : [:]
            )
            try session.upload([("w", [2, 3, 4], theta), ("b", [24], theta)])
            for g in steps {
                let scaled = g.map { $0 * scale }
                try session.step([("w", [2, 3, 4], scaled), ("b", [24], scaled)], gradScale: Double(scale))
            }
            return [session.value("w"), session.value("b")]
        }
        for beta1 in [false, true] {
            let plain = try run(scale: 1, beta1: beta1)
            let scaled = try run(scale: 1024, beta1: beta1)
            for (a, b) in zip(plain, scaled) {
                #expect(worstRatio(b, a.map(Double.init), initial: theta, atol: 1e-7, rtol: 1e-5) <= 1)
            }
        }
    }

    // MARK: Layouts and threads

    static let layouts: [[Int]] = [
        [300, 300],  // one slice above the grain: row groups with partial column sums
        [40000, 2],  // tall and narrow
        [1, 70001],  // one long row
        [2048, 16, 3, 3],  // convolution kernel: many small slices per block, short rows
        [300, 256, 1, 1],  // 1×1 convolution kernel: one-element slices
        [64, 32, 40],  // small slices with rows of ≥ 8 (column sums in memory), two blocks
        [3, 4, 10],  // one block of small slices
        [70001],  // unfactored, several chunks
    ]

    @Test(arguments: layouts)
    func everyLayoutMatchesDoubleReference(_ shape: [Int]) throws {
        let count = shape.reduce(1, *)
        var random = SeededRandom(seed: UInt64(count))
        let theta = random.floats(count)
        let steps = (0..<2).map { _ in random.floats(count, in: -0.1...0.1) }
        for fixed in [false, true] {
            let session = try OptimizerSession.make(
                "adafactor",
                fixed
                    ? [
                        "lr": .number(0.01), "relative_step": .bool(false), "beta1": .number(0.5),
                        "weight_decay": .number(0.1),
                    ]
                    : [:]
            )
            try session.upload([("w", shape, theta)])
            var reference = fixed ? DoubleAdafactor(lr: 0.01, beta1: 0.5, weightDecay: 0.1) : DoubleAdafactor()
            var expect = theta.map(Double.init)
            for g in steps {
                try session.step([("w", shape, g)], gradScale: nil)
                reference.step(&expect, g.map(Double.init), dimensions: shape)
            }
            #expect(
                worstRatio(session.value("w"), expect, initial: theta, atol: 2e-7, rtol: 1e-4) <= 1,
                "fixed lr: \(fixed)"
            )
        }
    }

    @Test func oneAndFourThreadsGiveBitIdenticalResults() throws {
        var random = SeededRandom(seed: 5)
        let tensors = Self.layouts.enumerated().map { index, shape in
            ("t\(index)", shape, random.floats(shape.reduce(1, *)))
        }
        let steps = (0..<2).map { _ in tensors.map { ($0.0, $0.1, random.floats($0.2.count, in: -0.1...0.1)) } }
        for hyperparameters: Hyperparameters in [
            [:],
            ["lr": .number(0.01), "relative_step": .bool(false), "beta1": .number(0.9), "weight_decay": .number(0.1)],
        ] {
            func run(threads: Int) throws -> (OptimizerSession, Double) {
                let session = try OptimizerSession.make("adafactor", hyperparameters)
                try session.upload(tensors)
                var telemetry: StepTelemetry?
                for gradients in steps {
                    telemetry = try withBuffers(gradients.map(\.2)) { buffers in
                        try session.step(
                            StepInput(
                                gradients: zip(gradients, buffers).map {
                                    TensorView(name: $0.0, shape: TensorShape($0.1), values: $1)
                                }
                            ),
                            parallelism: Parallelism(threads: threads)
                        )
                    }
                }
                return (session, telemetry!.updateNorm)
            }
            let (serial, serialNorm) = try run(threads: 1)
            let (parallel, parallelNorm) = try run(threads: 4)
            #expect(serialNorm.bitPattern == parallelNorm.bitPattern)
            for index in tensors.indices {
                #expect(firstDifference(serial.parameters[index].values, parallel.parameters[index].values) == nil)
                #expect(serial.states[index].names == parallel.states[index].names)
                for (a, b) in zip(serial.states[index].all, parallel.states[index].all) {
                    #expect(a.name == b.name)
                    switch (a.value, b.value) {
                    case (.tensor(let x), .tensor(let y)):
                        #expect(firstDifference(x.values, y.values) == nil, "\(a.name)")
                    case (.scalar(let x), .scalar(let y)): #expect(x.bitPattern == y.bitPattern, "\(a.name)")
                    default: Issue.record("slot \(a.name) differs in kind")
                    }
                }
            }
        }
    }
}
