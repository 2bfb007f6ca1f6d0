#include "acclip_kernel.h"

#include <math.h>
#include <stdbool.h>

#include "kernel_lanes.h"
#include "kernel_variant.h"

// Every operation is rounded on its own, as in Swift's `ACClipKernel.scalar` (no FMA contraction).
#pragma STDC FP_CONTRACT OFF

// One element-wise step on any vector width: g ← scale·g (+ wd·θ); m ← β1·m + (1−β1)·g;
// T ← β2·T + (1−β2)·|g|^α; τ = T^(1/α); f = min(τ/(|m| + eps), 1); θ ← θ − (lr·f)·m.
// The general power calls powf lane by lane, as Swift's `pow` does.
#define ACCLIP_VECTOR_STEP(V, UV, i, gradient_in)                                                  \
    do {                                                                                           \
        V old = *(const UV *)(parameter + (i));                                                    \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        if (l2) g = g + (V)(c.l2) * old;                                                           \
        V m = (V)(c.beta1) * *(const UV *)(exp_avg + (i)) + (V)(c.one_minus_beta1) * g;            \
        V previous = *(const UV *)(tau_alpha + (i));                                               \
        V t, tau;                                                                                  \
        if (power == OPTIMIZERD_ACCLIP_POWER_ONE) {                                                \
            t = (V)(c.beta2) * previous + (V)(c.one_minus_beta2) * __builtin_elementwise_abs(g);   \
            tau = t;                                                                               \
        } else if (power == OPTIMIZERD_ACCLIP_POWER_TWO) {                                         \
            t = (V)(c.beta2) * previous + (V)(c.one_minus_beta2) * (g * g);                        \
            tau = __builtin_elementwise_sqrt(t);                                                   \
        } else {                                                                                   \
            V powered, magnitude = __builtin_elementwise_abs(g);                                   \
            for (int lane = 0; lane < (int)(sizeof(V) / sizeof(float)); lane++)                    \
                powered[lane] = powf(magnitude[lane], c.alpha);                                    \
            t = (V)(c.beta2) * previous + (V)(c.one_minus_beta2) * powered;                        \
            for (int lane = 0; lane < (int)(sizeof(V) / sizeof(float)); lane++)                    \
                tau[lane] = powf(t[lane], c.inverse);                                              \
        }                                                                                          \
        V factor = tau / (__builtin_elementwise_abs(m) + (V)(c.eps));                              \
        factor = factor > (V)(1.0f) ? (V)(1.0f) : factor;                                          \
        V p = old - (V)(c.lr) * factor * m;                                                        \
        *(UV *)(exp_avg + (i)) = m;                                                                \
        *(UV *)(tau_alpha + (i)) = t;                                                              \
        *(UV *)(parameter + (i)) = p;                                                              \
        V delta = p - old;                                                                         \
        KERNEL_ADD_PRODUCT(V, lanes, delta, delta);                                                \
    } while (0)

// The loop for one power and L2 choice (constants at every call site).
static inline __attribute__((always_inline)) double acclip_loop(float *parameter, const float *gradient, float *exp_avg,
                                                                 float *tau_alpha, size_t count,
                                                                 struct optimizerd_acclip_coefficients c, int power,
                                                                 bool l2) {
    size_t i = 0;
    double update;
    KERNEL_VECTOR_LOOP(ACCLIP_VECTOR_STEP, gradient, i, count, update);
    double tail = 0;
    for (; i < count; i++) {
        float old = parameter[i];
        float g = gradient[i] * c.gradient_scale;
        if (l2) g = g + c.l2 * old;
        float m = c.beta1 * exp_avg[i] + c.one_minus_beta1 * g;
        float t, tau;
        if (power == OPTIMIZERD_ACCLIP_POWER_ONE) {
            t = c.beta2 * tau_alpha[i] + c.one_minus_beta2 * fabsf(g);
            tau = t;
        } else if (power == OPTIMIZERD_ACCLIP_POWER_TWO) {
            t = c.beta2 * tau_alpha[i] + c.one_minus_beta2 * (g * g);
            tau = __builtin_elementwise_sqrt(t);
        } else {
            t = c.beta2 * tau_alpha[i] + c.one_minus_beta2 * powf(fabsf(g), c.alpha);
            tau = powf(t, c.inverse);
        }
        float factor = tau / (fabsf(m) + c.eps);
        if (factor > 1) factor = 1;
        float p = old - c.lr * factor * m;
        exp_avg[i] = m;
        tau_alpha[i] = t;
        parameter[i] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double acclip_dispatch(float *parameter, const float *gradient,
                                                                     float *exp_avg, float *tau_alpha, size_t count,
                                                                     const struct optimizerd_acclip_coefficients *c) {
#define ACCLIP_LOOP(power) \
    (c->l2 != 0 ? acclip_loop(parameter, gradient, exp_avg, tau_alpha, count, *c, power, true) \
                : acclip_loop(parameter, gradient, exp_avg, tau_alpha, count, *c, power, false))
    switch (c->power) {
    case OPTIMIZERD_ACCLIP_POWER_ONE:
        return ACCLIP_LOOP(OPTIMIZERD_ACCLIP_POWER_ONE);
    case OPTIMIZERD_ACCLIP_POWER_TWO:
        return ACCLIP_LOOP(OPTIMIZERD_ACCLIP_POWER_TWO);
    default:
        return ACCLIP_LOOP(OPTIMIZERD_ACCLIP_POWER_GENERAL);
    }
#undef ACCLIP_LOOP
}


KERNEL_VARIANTS(double, optimizerd_acclip, acclip_dispatch,
                (float *parameter, const float *gradient, float *exp_avg, float *tau_alpha, size_t count,
                 const struct optimizerd_acclip_coefficients *coefficients),
                (parameter, gradient, exp_avg, tau_alpha, count, coefficients))
