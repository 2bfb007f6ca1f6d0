#ifndef OPTIMIZERD_ACCLIP_KERNEL_H
#define OPTIMIZERD_ACCLIP_KERNEL_H

#include <stddef.h>

// The fused ACClip element loop in C, compiled per instruction-set variant (kernel_variant.h).
// Swift's `ACClipKernel.scalar` is its reference: the same operations in the same order.

/// How |g|^α and T^(1/α) are computed (see `ACClipKernel.Power`).
enum {
    /// α = 1: both are the identity.
    OPTIMIZERD_ACCLIP_POWER_ONE = 1,
    /// α = 2: g·g and √T.
    OPTIMIZERD_ACCLIP_POWER_TWO = 2,
    /// Any other α: `powf(|g|, alpha)` and `powf(T, inverse)` lane by lane.
    OPTIMIZERD_ACCLIP_POWER_GENERAL = 0,
};

/// Per-step constants (see `ACClipKernel.Coefficients`).
struct optimizerd_acclip_coefficients {
    float lr;
    float beta1;
    float beta2;
    float one_minus_beta1;
    float one_minus_beta2;
    float eps;
    /// The L2 weight decay wd (0 for none).
    float l2;
    float gradient_scale;
    int power;
    float alpha;
    float inverse;
};

/// One ACClip step over `count` elements with the given variant (which this CPU must support);
/// returns ‖Δθ‖² as `optimizerd_adam` does. The tensors must not overlap.
double optimizerd_acclip(int variant, float *parameter, const float *gradient, float *exp_avg, float *tau_alpha,
                         size_t count, const struct optimizerd_acclip_coefficients *coefficients);

#endif
