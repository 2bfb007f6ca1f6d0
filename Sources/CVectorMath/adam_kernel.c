#include "adam_kernel.h"

#include <stdbool.h>

#include "kernel_lanes.h"
#include "kernel_variant.h"

// Every operation below is rounded on its own, as Swift's `AdamKernel.scalar` rounds it: an a·b + c
// contracted into one FMA would change the bits (and differ between variants with and without FMA).
#pragma STDC FP_CONTRACT OFF

// One element-wise step on any vector width (a macro so the 16- and 8-wide blocks share it):
// torch's order — lerp for m, mul/addcmul for v, sqrt(s)/sqrt(bc2) + eps, addcdiv for θ. torch's
// lerp(m, g, w) is m + w·(g − m) for w < 0.5 and g − (g − m)·(1 − w) otherwise (exactly g when
// β1 = 0, however far g is from m): `small` and `rest` = 1 − w pick and carry that, per step.
#define ADAM_VECTOR_STEP(V, UV, i, gradient_in)                                                    \
    do {                                                                                           \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old;                                                                                 \
        if (l2) g = g + (V)(c.l2) * p;                                                             \
        if (decay) p = p * (V)(c.decay);                                                           \
        V m = *(const UV *)(exp_avg + (i));                                                        \
        m = small ? m + (V)(c.one_minus_beta1) * (g - m) : g - (g - m) * (V)(rest);                \
        V v = *(const UV *)(exp_avg_sq + (i)) * (V)(c.beta2) + (V)(c.one_minus_beta2) * (g * g);   \
        V s = v;                                                                                   \
        if (amsgrad) {                                                                             \
            V x = *(const UV *)(max_exp_avg_sq + (i));                                             \
            s = x < v ? v : x;                                                                     \
            *(UV *)(max_exp_avg_sq + (i)) = s;                                                     \
        }                                                                                          \
        V denom = __builtin_elementwise_sqrt(s) / (V)(c.sqrt_bias_correction2) + (V)(c.eps);       \
        p = p - (V)(c.step_size) * (m / denom);                                                    \
        *(UV *)(exp_avg + (i)) = m;                                                                \
        *(UV *)(exp_avg_sq + (i)) = v;                                                             \
        *(UV *)(parameter + (i)) = p;                                                              \
        V delta = p - old;                                                                         \
        KERNEL_ADD_PRODUCT(V, lanes, delta, delta);                                                \
    } while (0)

// The whole loop for one combination of the options (constants at every call site, so each
// combination is its own loop without per-element tests): 16 elements at a time, then 8, then
// one by one. The (Δθ)² lanes take element i in lane i mod 8 in order whatever the width.
static inline __attribute__((always_inline)) double adam_loop(struct optimizerd_adam_buffers b, size_t count,
                                                               struct optimizerd_adam_coefficients c, bool l2,
                                                               bool decay, bool amsgrad) {
    float *parameter = b.parameter;
    const float *gradient = b.gradient;
    float *exp_avg = b.exp_avg;
    float *exp_avg_sq = b.exp_avg_sq;
    float *max_exp_avg_sq = b.max_exp_avg_sq;
    const bool small = c.one_minus_beta1 < 0.5f;
    const float rest = 1.0f - c.one_minus_beta1;
    size_t i = 0;
    double update;
    KERNEL_VECTOR_LOOP(ADAM_VECTOR_STEP, gradient, i, count, update);
    double tail = 0;
    for (; i < count; i++) {
        float g = gradient[i] * c.gradient_scale;
        float old = parameter[i];
        float p = old;
        if (l2) g = g + c.l2 * p;
        if (decay) p = p * c.decay;
        float m = small ? exp_avg[i] + c.one_minus_beta1 * (g - exp_avg[i]) : g - (g - exp_avg[i]) * rest;
        float v = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * (g * g);
        float s = v;
        if (amsgrad) {
            // Swift's max(x, v): v when v >= x.
            s = v >= max_exp_avg_sq[i] ? v : max_exp_avg_sq[i];
            max_exp_avg_sq[i] = s;
        }
        float denom = __builtin_elementwise_sqrt(s) / c.sqrt_bias_correction2 + c.eps;
        p = p - c.step_size * (m / denom);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        parameter[i] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double adam_dispatch(const struct optimizerd_adam_buffers *b, size_t count,
                                                                   const struct optimizerd_adam_coefficients *c) {
    bool l2 = c->l2 != 0, decay = c->decay != 1;
    if (b->max_exp_avg_sq == NULL) {
        if (l2) return decay ? adam_loop(*b, count, *c, true, true, false) : adam_loop(*b, count, *c, true, false, false);
        return decay ? adam_loop(*b, count, *c, false, true, false) : adam_loop(*b, count, *c, false, false, false);
    }
    if (l2) return decay ? adam_loop(*b, count, *c, true, true, true) : adam_loop(*b, count, *c, true, false, true);
    return decay ? adam_loop(*b, count, *c, false, true, true) : adam_loop(*b, count, *c, false, false, true);
}


KERNEL_VARIANTS(double, optimizerd_adam, adam_dispatch,
                (const struct optimizerd_adam_buffers *buffers, size_t count,
                 const struct optimizerd_adam_coefficients *coefficients),
                (buffers, count, coefficients))
