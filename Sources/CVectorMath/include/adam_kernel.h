#ifndef OPTIMIZERD_ADAM_KERNEL_H
#define OPTIMIZERD_ADAM_KERNEL_H

#include <stddef.h>

// The fused Adam/AdamW element loop in C, compiled per instruction-set variant (kernel_variant.h).
// Swift's `AdamKernel.scalar` is its reference: the same operations in the same order.

/// Per-step constants (see `AdamKernel.Coefficients`).
struct optimizerd_adam_coefficients {
    float beta2;
    float one_minus_beta1;
    float one_minus_beta2;
    /// lr / (1 − β1^t)
    float step_size;
    /// √(1 − β2^t)
    float sqrt_bias_correction2;
    float eps;
    /// AdamW's θ multiplier 1 − lr·wd (1 when not decoupled).
    float decay;
    /// Adam's L2 coefficient wd (0 when decoupled).
    float l2;
    /// Gradient multiplier (unscale, clip, maximize sign).
    float gradient_scale;
};

/// The tensors of one range; `max_exp_avg_sq` is NULL without amsgrad. They must not overlap.
struct optimizerd_adam_buffers {
    float *parameter;
    const float *gradient;
    float *exp_avg;
    float *exp_avg_sq;
    float *max_exp_avg_sq;
};

/// One Adam step over `count` elements with the given variant (which this CPU must support);
/// returns ‖Δθ‖² accumulated in Double: eight lanes (element i in lane i mod 8, in order) added
/// lane 0 to 7, plus the sum of the tail of count mod 8 elements.
double optimizerd_adam(int variant, const struct optimizerd_adam_buffers *buffers, size_t count,
                       const struct optimizerd_adam_coefficients *coefficients);

#endif
