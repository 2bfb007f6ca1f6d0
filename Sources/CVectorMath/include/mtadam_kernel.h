#ifndef OPTIMIZERD_MTADAM_KERNEL_H
#define OPTIMIZERD_MTADAM_KERNEL_H

#include <stddef.h>

// The fused MTAdam element loop in C, compiled per instruction-set variant (kernel_variant.h).
// Swift's `MTAdamKernel.scalar` is its reference: the same operations in the same order.

/// Per-step constants shared by all terms (see `MTAdamKernel.Coefficients`).
struct optimizerd_mtadam_coefficients {
    float beta1;
    float beta2;
    float one_minus_beta1;
    float one_minus_beta2;
    /// lr / (1 − β1^t)
    float step_size;
    /// √(1 − β2^t)
    float sqrt_bias_correction2;
    float eps;
    /// The L2 weight decay, added to every term's rescaled gradient (0 for none).
    float l2;
};

/// One loss term (see `MTAdamKernel.Term`); `max_exp_avg_sq` is NULL without amsgrad.
struct optimizerd_mtadam_term {
    const float *gradient;
    float gradient_scale;
    float *exp_avg;
    float *exp_avg_sq;
    float *max_exp_avg_sq;
};

/// One MTAdam step over elements [first, end) of θ and its `term_count` ≥ 1 terms (which must not
/// overlap); returns ‖Δθ‖² over them as `optimizerd_adam` does.
double optimizerd_mtadam(int variant, float *parameter, const struct optimizerd_mtadam_term *terms, size_t term_count,
                         size_t first, size_t end, const struct optimizerd_mtadam_coefficients *coefficients);

#endif
