#include "momo_kernel.h"

#include "kernel_lanes.h"

// Every operation is rounded on its own, as in Swift's `MomoKernel` scalar passes (no FMA
// contraction), and the sums take the order of its former 8-lane Swift loops.
#pragma STDC FP_CONTRACT OFF

// Pass 1's sums of one element vector: ⟨θ, g⟩, ⟨θ, average⟩ and ⟨average, x⟩.
#define MOMO_ADD_SUMS(V, p, g, average, x)                                                         \
    do {                                                                                           \
        KERNEL_ADD_PRODUCT(V, dot_gradient, p, g);                                                 \
        KERNEL_ADD_PRODUCT(V, dot_average, p, average);                                            \
        KERNEL_ADD_PRODUCT(V, average_norm, average, x);                                           \
    } while (0)

// KERNEL_BLOCKS for a pass 1 STEP (which calls MOMO_ADD_SUMS), the lanes' sums into `sums`.
#define MOMO_SUMS_LOOP(STEP, gradient, i, count, sums)                                             \
    do {                                                                                           \
        kernel_d8 dot_gradient = 0, dot_average = 0, average_norm = 0;                             \
        KERNEL_BLOCKS(STEP, gradient, i, count);                                                   \
        KERNEL_LANES_SUM(dot_gradient, (sums).parameter_dot_gradient);                             \
        KERNEL_LANES_SUM(dot_average, (sums).parameter_dot_average);                               \
        KERNEL_LANES_SUM(average_norm, (sums).average_squared_norm);                               \
    } while (0)

// The lanes' sums plus the tail's (each accumulated in element order from zero).
static inline __attribute__((always_inline)) struct optimizerd_momo_sums momo_add(struct optimizerd_momo_sums a,
                                                                                  struct optimizerd_momo_sums b) {
    return (struct optimizerd_momo_sums){a.parameter_dot_gradient + b.parameter_dot_gradient,
                                         a.parameter_dot_average + b.parameter_dot_average,
                                         a.average_squared_norm + b.average_squared_norm};
}

static inline __attribute__((always_inline)) void momo_add_tail(struct optimizerd_momo_sums *tail, float p, float g,
                                                                float average, float x) {
    tail->parameter_dot_gradient += (double)p * (double)g;
    tail->parameter_dot_average += (double)p * (double)average;
    tail->average_squared_norm += (double)average * (double)x;
}

// MARK: MoMo

// d ← β·d + (1−β)·g, with d taken as g on the first step without bias correction.
#define MOMO_ACCUMULATE_STEP(V, UV, i, gradient_in)                                                \
    do {                                                                                           \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        V p = *(const UV *)(parameter + (i));                                                      \
        V previous = start ? g : *(const UV *)(average + (i));                                     \
        V d = previous * (V)(c.beta) + (V)(c.one_minus_beta) * g;                                  \
        *(UV *)(average + (i)) = d;                                                                \
        MOMO_ADD_SUMS(V, p, g, d, d);                                                              \
    } while (0)

static inline __attribute__((always_inline)) struct optimizerd_momo_sums
momo_accumulate_loop(const float *parameter, const float *gradient, float *average, size_t count,
                     struct optimizerd_momo_coefficients c, bool start) {
    size_t i = 0;
    struct optimizerd_momo_sums sums, tail = {0, 0, 0};
    MOMO_SUMS_LOOP(MOMO_ACCUMULATE_STEP, gradient, i, count, sums);
    for (; i < count; i++) {
        float g = gradient[i] * c.gradient_scale;
        float previous = start ? g : average[i];
        float d = previous * c.beta + c.one_minus_beta * g;
        average[i] = d;
        momo_add_tail(&tail, parameter[i], g, d, d);
    }
    return momo_add(sums, tail);
}

static inline __attribute__((always_inline)) struct optimizerd_momo_sums
momo_accumulate(const float *parameter, const float *gradient, float *average, size_t count,
                const struct optimizerd_momo_coefficients *c) {
    return c->start_from_gradient ? momo_accumulate_loop(parameter, gradient, average, count, *c, true)
                                  : momo_accumulate_loop(parameter, gradient, average, count, *c, false);
}

// θ ← θ − τ·d, then ÷ (1 + lr·λ) with weight decay.
#define MOMO_APPLY_STEP(V, UV, i, average_in)                                                      \
    do {                                                                                           \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old - (V)(s.step_size) * (average_in);                                               \
        if (decays) p = p / (V)(s.divisor);                                                        \
        *(UV *)(parameter + (i)) = p;                                                              \
        V delta = p - old;                                                                         \
        KERNEL_ADD_PRODUCT(V, lanes, delta, delta);                                                \
    } while (0)

static inline __attribute__((always_inline)) double momo_apply_loop(float *parameter, const float *average,
                                                                    size_t count, struct optimizerd_momo_step s,
                                                                    bool decays) {
    size_t i = 0;
    double update, tail = 0;
    KERNEL_VECTOR_LOOP(MOMO_APPLY_STEP, average, i, count, update);
    for (; i < count; i++) {
        float old = parameter[i];
        float p = old - s.step_size * average[i];
        if (decays) p = p / s.divisor;
        parameter[i] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double momo_apply(float *parameter, const float *average, size_t count,
                                                               const struct optimizerd_momo_step *s) {
    return s->decays ? momo_apply_loop(parameter, average, count, *s, true)
                     : momo_apply_loop(parameter, average, count, *s, false);
}

KERNEL_VARIANTS(struct optimizerd_momo_sums, optimizerd_momo_accumulate, momo_accumulate,
                (const float *parameter, const float *gradient, float *average, size_t count,
                 const struct optimizerd_momo_coefficients *coefficients),
                (parameter, gradient, average, count, coefficients))

KERNEL_VARIANTS(double, optimizerd_momo_apply, momo_apply,
                (float *parameter, const float *average, size_t count, const struct optimizerd_momo_step *step),
                (parameter, average, count, step))

// MARK: MoMo-Adam

// m ← β1·m + (1−β1)·g and v ← β2·v + (1−β2)·g² (as `mul_(β).add_(…)`), P = √(v/bc2) + eps.
#define MOMO_ADAM_ACCUMULATE_STEP(V, UV, i, gradient_in)                                           \
    do {                                                                                           \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        V p = *(const UV *)(parameter + (i));                                                      \
        V m = *(const UV *)(exp_avg + (i)) * (V)(c.beta1) + (V)(c.one_minus_beta1) * g;            \
        V v = *(const UV *)(exp_avg_sq + (i)) * (V)(c.beta2) + (V)(c.one_minus_beta2) * (g * g);   \
        *(UV *)(exp_avg + (i)) = m;                                                                \
        *(UV *)(exp_avg_sq + (i)) = v;                                                             \
        V scaled = m / (__builtin_elementwise_sqrt(v / (V)(c.bias_correction2)) + (V)(c.eps));     \
        MOMO_ADD_SUMS(V, p, g, m, scaled);                                                         \
    } while (0)

static inline __attribute__((always_inline)) struct optimizerd_momo_sums
momo_adam_accumulate(const float *parameter, const float *gradient, float *exp_avg, float *exp_avg_sq, size_t count,
                     const struct optimizerd_momo_adam_coefficients *coefficients) {
    struct optimizerd_momo_adam_coefficients c = *coefficients;
    size_t i = 0;
    struct optimizerd_momo_sums sums, tail = {0, 0, 0};
    MOMO_SUMS_LOOP(MOMO_ADAM_ACCUMULATE_STEP, gradient, i, count, sums);
    for (; i < count; i++) {
        float g = gradient[i] * c.gradient_scale;
        float m = exp_avg[i] * c.beta1 + c.one_minus_beta1 * g;
        float v = exp_avg_sq[i] * c.beta2 + c.one_minus_beta2 * (g * g);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        float scaled = m / (__builtin_elementwise_sqrt(v / c.bias_correction2) + c.eps);
        momo_add_tail(&tail, parameter[i], g, m, scaled);
    }
    return momo_add(sums, tail);
}

// θ ← θ·(1 − lr·λ) (multiplies), θ − τ·m/P, then ÷ (1 + lr·λ) (divides).
#define MOMO_ADAM_APPLY_STEP(V, UV, i, exp_avg_in)                                                 \
    do {                                                                                           \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old;                                                                                 \
        if (multiplies) p = p * (V)(s.decay);                                                      \
        V v = *(const UV *)(exp_avg_sq + (i));                                                     \
        V preconditioner = __builtin_elementwise_sqrt(v / (V)(s.bias_correction2)) + (V)(s.eps);   \
        p = p - (V)(s.step_size) * ((exp_avg_in) / preconditioner);                                \
        if (divides) p = p / (V)(s.divisor);                                                       \
        *(UV *)(parameter + (i)) = p;                                                              \
        V delta = p - old;                                                                         \
        KERNEL_ADD_PRODUCT(V, lanes, delta, delta);                                                \
    } while (0)

static inline __attribute__((always_inline)) double momo_adam_apply_loop(float *parameter, const float *exp_avg,
                                                                         const float *exp_avg_sq, size_t count,
                                                                         struct optimizerd_momo_adam_step s,
                                                                         bool multiplies, bool divides) {
    size_t i = 0;
    double update, tail = 0;
    KERNEL_VECTOR_LOOP(MOMO_ADAM_APPLY_STEP, exp_avg, i, count, update);
    for (; i < count; i++) {
        float old = parameter[i];
        float p = old;
        if (multiplies) p = p * s.decay;
        float preconditioner = __builtin_elementwise_sqrt(exp_avg_sq[i] / s.bias_correction2) + s.eps;
        p = p - s.step_size * (exp_avg[i] / preconditioner);
        if (divides) p = p / s.divisor;
        parameter[i] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double momo_adam_apply(float *parameter, const float *exp_avg,
                                                                    const float *exp_avg_sq, size_t count,
                                                                    const struct optimizerd_momo_adam_step *s) {
#define MOMO_ADAM_APPLY(multiplies, divides)                                                       \
    momo_adam_apply_loop(parameter, exp_avg, exp_avg_sq, count, *s, multiplies, divides)
    if (s->multiplies) return s->divides ? MOMO_ADAM_APPLY(true, true) : MOMO_ADAM_APPLY(true, false);
    return s->divides ? MOMO_ADAM_APPLY(false, true) : MOMO_ADAM_APPLY(false, false);
#undef MOMO_ADAM_APPLY
}

KERNEL_VARIANTS(struct optimizerd_momo_sums, optimizerd_momo_adam_accumulate, momo_adam_accumulate,
                (const float *parameter, const float *gradient, float *exp_avg, float *exp_avg_sq, size_t count,
                 const struct optimizerd_momo_adam_coefficients *coefficients),
                (parameter, gradient, exp_avg, exp_avg_sq, count, coefficients))

KERNEL_VARIANTS(double, optimizerd_momo_adam_apply, momo_adam_apply,
                (float *parameter, const float *exp_avg, const float *exp_avg_sq, size_t count,
                 const struct optimizerd_momo_adam_step *step),
                (parameter, exp_avg, exp_avg_sq, count, step))
