#ifndef OPTIMIZERD_BF16_ADAM_KERNEL_H
#define OPTIMIZERD_BF16_ADAM_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "adam_kernel.h"

// Adam/AdamW on bfloat16 moments in C, compiled per instruction-set variant (CVectorMath's
// kernel_variant.h). Swift's `BF16AdamKernel.scalar` is its reference: the same operations in the
// same order, bit for bit. The per-step constants are the float32 kernel's
// (`struct optimizerd_adam_coefficients`, CVectorMath's adam_kernel.h).

/// The tensors of one range: θ and g in float32, m and v as bfloat16 bits. They must not overlap.
struct optimizerd_bf16_adam_buffers {
    float *parameter;
    const float *gradient;
    uint16_t *exp_avg;
    uint16_t *exp_avg_sq;
};

/// A code of this kernel only, beside kernel_variant.h's: the AVX-512 variant rounding the moments
/// with AVX-512 BF16's `vcvtneps2bf16` (and DQ's `vfpclassps` to send the blocks it would round
/// differently, NaN or subnormal moments, to the integer rounding): the same bits, fewer operations.
/// Only where `optimizerd_bf16_cpu_converts()`.
#define OPTIMIZERD_BF16_KERNELS_AVX512_CONVERT 3

/// 1 when this CPU runs `OPTIMIZERD_BF16_KERNELS_AVX512_CONVERT` (AVX-512 F, VL, BW, DQ and BF16), else 0.
int optimizerd_bf16_cpu_converts(void);

/// One step over `count` elements with the given variant (kernel_variant.h's or the code above; this CPU must run it): moments
/// widened to float32, updated as torch's Adam, rounded back to nearest bfloat16 (ties to even,
/// NaN → 0x7FC0). Returns ‖Δθ‖² in Double: eight lanes (element i in lane i mod 8, in order)
/// added lane 0 to 7, plus the scalar tail of count mod 8 elements.
double optimizerd_bf16_adam(int variant, const struct optimizerd_bf16_adam_buffers *buffers, size_t count,
                            const struct optimizerd_adam_coefficients *coefficients);

#endif
