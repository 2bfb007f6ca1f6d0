import CVectorMath
import Foundation

/// The instruction-set variant of the C kernels (`Sources/CVectorMath`): each kernel is compiled
/// once per variant from one body, and every step uses ``active``, chosen once per process.
///
/// Variants give bit-identical results (the same IEEE operations in the same order, no FMA
/// contraction); they differ only in speed.
public enum KernelVariant: String, CaseIterable, Sendable {
    /// The compiler's baseline target (SSE2 on x86-64): runs everywhere.
    case baseline
    /// 256-bit AVX2.
    case avx2
    /// 512-bit AVX-512 (F, VL and BW).
    case avx512

    /// The environment variable that forces a variant (`baseline`, `avx2` or `avx512`).
    public static let environmentVariable = "OPTIMIZERD_KERNELS"

    /// Why a forced variant cannot be used.
    public struct SelectionError: Error, CustomStringConvertible {
        public var description: String
    }

    /// The value the C kernels take.
    var code: Int32 {
        switch self {
        case .baseline: Int32(OPTIMIZERD_KERNELS_BASELINE)
        case .avx2: Int32(OPTIMIZERD_KERNELS_AVX2)
        case .avx512: Int32(OPTIMIZERD_KERNELS_AVX512)
        }
    }

    /// Whether this CPU (and operating system) runs this variant.
    public var isSupportedByThisCPU: Bool { optimizerd_cpu_supports_variant(code) != 0 }

    /// The variants this CPU runs, slowest first.
    public static var supported: [KernelVariant] { allCases.filter(\.isSupportedByThisCPU) }

    /// The fastest variant this CPU runs.
    public static var best: KernelVariant { supported.last ?? .baseline }

    /// The variant named by `OPTIMIZERD_KERNELS` in `environment`, else ``best``; throws when the
    /// name is unknown or this CPU cannot run it.
    public static func select(environment: [String: String]) throws(SelectionError) -> KernelVariant {
        guard let name = environment[environmentVariable], !name.isEmpty else { return best }
        guard let variant = KernelVariant(rawValue: name) else {
            let names = allCases.map(\.rawValue).joined(separator: ", ")
            throw SelectionError(description: "\(environmentVariable)=\(name) is not a kernel variant (one of \(names))")
        }
        guard variant.isSupportedByThisCPU else {
            let names = supported.map(\.rawValue).joined(separator: ", ")
            throw SelectionError(description: "\(environmentVariable)=\(name): this CPU does not run it (it runs \(names))")
        }
        return variant
    }

    /// The variant every step uses: ``select(environment:)`` of the process environment, chosen on
    /// first use (the daemon checks the environment at start and refuses a bad value), or ``best``
    /// when that throws.
    public static let active: KernelVariant = {
        (try? select(environment: ProcessInfo.processInfo.environment)) ?? best
    }()
}
