#ifndef OPTIMIZERD_MOMO_KERNEL_H
#define OPTIMIZERD_MOMO_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

// The two passes of MoMo and MoMo-Adam in C, compiled per instruction-set variant
// (kernel_variant.h). Swift's `MomoKernel` scalar passes are the reference: the same operations in
// the same order.

/// A tensor's sums from pass 1, accumulated in Double (see `MomoKernel.Sums`). Each is eight lanes
/// (element i in lane i mod 8, in order) added lane 0 to 7, plus the sum of the tail of count mod 8
/// elements.
struct optimizerd_momo_sums {
    /// ⟨θ, g⟩ with θ before the step.
    double parameter_dot_gradient;
    /// ⟨θ, d⟩ (MoMo) or ⟨θ, m⟩ (MoMo-Adam) with the new average.
    double parameter_dot_average;
    /// ‖d‖² (MoMo) or ⟨m, m/P⟩ (MoMo-Adam) with the new averages.
    double average_squared_norm;
};

/// MoMo's pass 1 constants (see `MomoKernel.Momentum.Coefficients`).
struct optimizerd_momo_coefficients {
    float beta;
    float one_minus_beta;
    float gradient_scale;
    /// The average does not exist yet and starts as the gradient.
    bool start_from_gradient;
};

/// MoMo's pass 2 constants (see `MomoKernel.Momentum.Step`).
struct optimizerd_momo_step {
    /// τ.
    float step_size;
    /// 1 + lr·λ; θ is divided by it when `decays`.
    float divisor;
    bool decays;
};

/// MoMo-Adam's pass 1 constants (see `MomoKernel.Adam.Coefficients`).
struct optimizerd_momo_adam_coefficients {
    float beta1;
    float beta2;
    float one_minus_beta1;
    float one_minus_beta2;
    /// 1 − β2^k
    float bias_correction2;
    float eps;
    float gradient_scale;
};

/// MoMo-Adam's pass 2 constants (see `MomoKernel.Adam.Step`).
struct optimizerd_momo_adam_step {
    float bias_correction2;
    float eps;
    /// τ.
    float step_size;
    /// 1 − lr·λ, applied before the step when `multiplies`.
    float decay;
    /// 1 + lr·λ, applied after the step when `divides`.
    float divisor;
    bool multiplies;
    bool divides;
};

/// MoMo pass 1 over `count` elements: d ← β·d + (1−β)·g (d ← g·β + (1−β)·g when it starts from the
/// gradient); returns the sums. The tensors must not overlap.
struct optimizerd_momo_sums optimizerd_momo_accumulate(int variant, const float *parameter, const float *gradient,
                                                       float *average, size_t count,
                                                       const struct optimizerd_momo_coefficients *coefficients);

/// MoMo pass 2: θ ← θ − τ·d (÷ divisor when it decays); returns ‖Δθ‖² as `optimizerd_adam` does.
double optimizerd_momo_apply(int variant, float *parameter, const float *average, size_t count,
                             const struct optimizerd_momo_step *step);

/// MoMo-Adam pass 1: m and v as Adam's (β·x + (1−β)·…), P = √(v/bc2) + eps; returns the sums.
struct optimizerd_momo_sums optimizerd_momo_adam_accumulate(int variant, const float *parameter, const float *gradient,
                                                            float *exp_avg, float *exp_avg_sq, size_t count,
                                                            const struct optimizerd_momo_adam_coefficients *coefficients);

/// MoMo-Adam pass 2: θ ← θ·decay (when it multiplies) − τ·m/P (÷ divisor when it divides); returns
/// ‖Δθ‖².
double optimizerd_momo_adam_apply(int variant, float *parameter, const float *exp_avg, const float *exp_avg_sq,
                                  size_t count, const struct optimizerd_momo_adam_step *step);

#endif
