#include "mtadam_kernel.h"

#include <stdbool.h>

#include "kernel_lanes.h"

// Every operation is rounded on its own, as in Swift's `MTAdamKernel.scalar` (no FMA contraction).
#pragma STDC FP_CONTRACT OFF

// One element vector: every term's moments in term order, D the largest denominator so far, then
// u = Σ step·(mᵢ/D) in term order (each mᵢ read back right after it was written) and θ ← θ − u.
#define MTADAM_VECTOR_STEP(V, UV, i_in, old_in)                                                    \
    do {                                                                                           \
        size_t at = first + (i_in);                                                                \
        V old = (old_in);                                                                          \
        V denom = 0;                                                                               \
        for (size_t k = 0; k < term_count; k++) {                                                  \
            struct optimizerd_mtadam_term t = terms[k];                                            \
            V g = *(const UV *)(t.gradient + at) * t.gradient_scale;                               \
            if (l2) g = g + c.l2 * old;                                                            \
            V m = c.beta1 * *(const UV *)(t.exp_avg + at) + c.one_minus_beta1 * g;                 \
            V v = *(const UV *)(t.exp_avg_sq + at) * c.beta2 + c.one_minus_beta2 * (g * g);        \
            V s = v;                                                                               \
            if (t.max_exp_avg_sq != NULL) {                                                        \
                V previous = *(const UV *)(t.max_exp_avg_sq + at);                                 \
                s = previous > s ? previous : s;                                                   \
                *(UV *)(t.max_exp_avg_sq + at) = s;                                                \
            }                                                                                      \
            *(UV *)(t.exp_avg + at) = m;                                                           \
            *(UV *)(t.exp_avg_sq + at) = v;                                                        \
            V den = __builtin_elementwise_sqrt(s) / c.sqrt_bias_correction2 + c.eps;               \
            denom = k == 0 ? den : (den > denom ? den : denom);                                    \
        }                                                                                          \
        V step = c.step_size * (*(const UV *)(terms[0].exp_avg + at) / denom);                     \
        for (size_t k = 1; k < term_count; k++)                                                    \
            step = step + c.step_size * (*(const UV *)(terms[k].exp_avg + at) / denom);            \
        V p = old - step;                                                                          \
        *(UV *)(parameter + at) = p;                                                               \
        V delta = p - old;                                                                         \
        KERNEL_ADD_PRODUCT(V, lanes, delta, delta);                                                \
    } while (0)

static inline __attribute__((always_inline)) double mtadam_loop(float *parameter,
                                                                const struct optimizerd_mtadam_term *terms,
                                                                size_t term_count, size_t first, size_t end,
                                                                struct optimizerd_mtadam_coefficients c, bool l2) {
    // The blocked loop counts `i` from `first` (the steps add it back).
    const float *start = parameter + first;
    size_t i = 0, count = end - first;
    double update, tail = 0;
    KERNEL_VECTOR_LOOP(MTADAM_VECTOR_STEP, start, i, count, update);
    for (size_t j = first + i; j < end; j++) {
        float old = parameter[j];
        float denom = 0;
        for (size_t k = 0; k < term_count; k++) {
            struct optimizerd_mtadam_term t = terms[k];
            float g = t.gradient[j] * t.gradient_scale;
            if (l2) g = g + c.l2 * old;
            float m = c.beta1 * t.exp_avg[j] + c.one_minus_beta1 * g;
            float v = t.exp_avg_sq[j] * c.beta2 + c.one_minus_beta2 * (g * g);
            float s = v;
            if (t.max_exp_avg_sq != NULL) {
                if (t.max_exp_avg_sq[j] > s) s = t.max_exp_avg_sq[j];
                t.max_exp_avg_sq[j] = s;
            }
            t.exp_avg[j] = m;
            t.exp_avg_sq[j] = v;
            float den = __builtin_elementwise_sqrt(s) / c.sqrt_bias_correction2 + c.eps;
            if (k == 0 || den > denom) denom = den;
        }
        float step = c.step_size * (terms[0].exp_avg[j] / denom);
        for (size_t k = 1; k < term_count; k++) step = step + c.step_size * (terms[k].exp_avg[j] / denom);
        float p = old - step;
        parameter[j] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double mtadam(float *parameter, const struct optimizerd_mtadam_term *terms,
                                                           size_t term_count, size_t first, size_t end,
                                                           const struct optimizerd_mtadam_coefficients *c) {
    return c->l2 != 0 ? mtadam_loop(parameter, terms, term_count, first, end, *c, true)
                      : mtadam_loop(parameter, terms, term_count, first, end, *c, false);
}

KERNEL_VARIANTS(double, optimizerd_mtadam, mtadam,
                (float *parameter, const struct optimizerd_mtadam_term *terms, size_t term_count, size_t first,
                 size_t end, const struct optimizerd_mtadam_coefficients *coefficients),
                (parameter, terms, term_count, first, end, coefficients))
