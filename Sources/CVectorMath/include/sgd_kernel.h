#ifndef OPTIMIZERD_SGD_KERNEL_H
#define OPTIMIZERD_SGD_KERNEL_H

#include <stdbool.h>
#include <stddef.h>

// The fused SGD element loop in C, compiled per instruction-set variant (kernel_variant.h).
// Swift's `SGDKernel.scalar` is its reference: the same operations in the same order.

/// Per-step constants (see `SGDKernel.Coefficients`).
struct optimizerd_sgd_coefficients {
    float lr;
    float weight_decay;
    float momentum;
    float one_minus_dampening;
    bool nesterov;
    /// The momentum buffer does not exist yet: it becomes a copy of the gradient (no dampening).
    bool first_step;
    float gradient_scale;
};

/// One SGD step over `count` elements with the given variant (which this CPU must support);
/// `momentum_buffer` is NULL without momentum. Returns ‖Δθ‖² as `optimizerd_adam` does.
double optimizerd_sgd(int variant, float *parameter, const float *gradient, float *momentum_buffer, size_t count,
                      const struct optimizerd_sgd_coefficients *coefficients);

#endif
