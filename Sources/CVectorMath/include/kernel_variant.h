#ifndef OPTIMIZERD_KERNEL_VARIANT_H
#define OPTIMIZERD_KERNEL_VARIANT_H

// The instruction-set variants of the C kernels. Every kernel is compiled once per variant from
// one body (`KERNEL_VARIANTS` in kernel_lanes.h); the daemon picks the best variant this CPU runs
// once at start (`KernelVariant` in OptimizerKit) and passes it to every call. Variants give bit-identical
// results: the bodies perform the same IEEE operations in the same order, with no FMA contraction.

enum {
    /// The compiler's baseline target: SSE2 on x86-64, NEON on arm64. Runs everywhere.
    OPTIMIZERD_KERNELS_BASELINE = 0,
    /// x86-64 with AVX2 (256-bit vectors).
    OPTIMIZERD_KERNELS_AVX2 = 1,
    /// x86-64 with AVX-512 F, VL and BW (512-bit vectors; BW for the int8 kernel's 16-bit lanes).
    OPTIMIZERD_KERNELS_AVX512 = 2,
};

/// 1 when this CPU (and its operating system) runs `variant`'s code, else 0.
int optimizerd_cpu_supports_variant(int variant);

#endif
