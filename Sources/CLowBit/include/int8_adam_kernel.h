#ifndef OPTIMIZERD_INT8_ADAM_KERNEL_H
#define OPTIMIZERD_INT8_ADAM_KERNEL_H

#include <stddef.h>
#include <stdint.h>

// bitsandbytes 0.50.2's CPU Adam8bit/AdamW8bit step in C, compiled per instruction-set variant
// (CVectorMath's kernel_variant.h). Swift's `Int8AdamKernel.scalar` is its reference: the same
// operations in the same order, the same codes and absmax bits.

/// Elements per quantization block.
#define OPTIMIZERD_INT8_BLOCK 256

/// Per-step constants (see `Int8AdamKernel.Coefficients`).
struct optimizerd_int8_adam_coefficients {
    float beta1;
    float beta2;
    float one_minus_beta1;
    float one_minus_beta2;
    /// −lr / (1 − β1^t)
    float step_value;
    /// √(1 − β2^t)
    float sqrt_bias_correction2;
    float eps;
    /// 1 − lr·wd (1 without weight decay).
    float decay;
    /// Gradient multiplier (clip, maximize sign).
    float gradient_scale;
};

/// The two dynamic maps (`DynamicMap`): 256 code values each, the 65 536-cell tables from a
/// normalized value to its code, and the same tables as binary-search trees (the AVX-512 variant's
/// lookup): with B[j] the first cell whose code is at least j, node n = 2^L + k (level L = 0…7,
/// k < 2^L) holds B[k·2^(8−L) + 2^(7−L)]; entry 0 is unused.
struct optimizerd_int8_maps {
    const float *signed_codes;
    const float *unsigned_codes;
    const uint8_t *signed_table;
    const uint8_t *unsigned_table;
    const uint16_t *signed_search;
    const uint16_t *unsigned_search;
};

/// The tensors of one range starting at a block boundary: one code per element, one absmax per
/// block of 256 (the last block may be partial). They must not overlap.
struct optimizerd_int8_adam_buffers {
    float *parameter;
    const float *gradient;
    uint8_t *codes1;
    uint8_t *codes2;
    float *absmax1;
    float *absmax2;
};

/// One step over `count` elements with the given variant (which this CPU must support): per block,
/// dequantize, update m, v and θ, then quantize m and v back with their new absmax. Returns ‖Δθ‖²
/// in Double: per block, eight lanes (element i in lane i mod 8) added lane 0 to 7 plus the block's
/// scalar tail, the blocks added in order.
double optimizerd_int8_adam(int variant, const struct optimizerd_int8_adam_buffers *buffers, size_t count,
                            const struct optimizerd_int8_adam_coefficients *coefficients,
                            const struct optimizerd_int8_maps *maps);

/// bitsandbytes' `quantize_cpu` for one block of `count` ≤ 256 values with the given variant: absmax
/// = max |x| (NaN never wins; 0 gives all-zero codes), each value's code from `table` (65 536 cells)
/// or from its search tree `search` (256 entries), as in `struct optimizerd_int8_maps`.
void optimizerd_int8_quantize(int variant, const float *values, size_t count, const uint8_t *table,
                              const uint16_t *search, uint8_t *codes, float *absmax);

#endif
