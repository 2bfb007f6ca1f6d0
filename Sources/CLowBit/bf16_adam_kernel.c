#include "bf16_adam_kernel.h"

#include <stdbool.h>

#include "kernel_variant.h"
#include "lowbit_lanes.h"

// Every operation is rounded on its own, as Swift's `BF16AdamKernel.scalar` rounds it: an a·b + c
// contracted into one FMA would change the bits.
#pragma STDC FP_CONTRACT OFF

// bfloat16 bits (H, unsigned 16-bit lanes) → float32 (V) through U (unsigned 32-bit lanes): exact.
#define BF16_WIDEN(V, U, h) ((V)(__builtin_convertvector((h), U) << 16))

// float32 (V) → the nearest bfloat16 bits (H), ties to even, NaN → 0x7FC0, as `BFloat16.bits`.
#define BF16_NARROW(H, U, x)                                                                       \
    __builtin_convertvector((x) != (x) ? (U)0x7FC0 : ((U)(x) + 0x7FFF + (((U)(x) >> 16) & 1)) >> 16, H)

static inline __attribute__((always_inline)) uint16_t bf16_narrow(float x) {
    if (x != x) return 0x7FC0;
    union {
        float f;
        uint32_t u;
    } bits = {x};
    return (uint16_t)((bits.u + 0x7FFF + ((bits.u >> 16) & 1)) >> 16);
}

static inline __attribute__((always_inline)) float bf16_widen(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } bits = {(uint32_t)h << 16};
    return bits.f;
}

// One element-wise step on any vector width (V floats, UV their unaligned view, U uint32 lanes, H
// uint16 lanes, UH their unaligned view; gradient_in the gradients at i): torch's order, as
// `AdamKernel` on float32 moments.
#define BF16_ADAM_STEP(V, UV, U, H, UH, i, gradient_in)                                            \
    do {                                                                                           \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old;                                                                                 \
        if (l2) g = g + (V)(c.l2) * p;                                                             \
        if (decay) p = p * (V)(c.decay);                                                           \
        V m = BF16_WIDEN(V, U, *(const UH *)(exp_avg + (i)));                                      \
        m = m + (V)(c.one_minus_beta1) * (g - m);                                                  \
        V v = BF16_WIDEN(V, U, *(const UH *)(exp_avg_sq + (i))) * (V)(c.beta2) +                  \
              (V)(c.one_minus_beta2) * (g * g);                                                    \
        V denom = __builtin_elementwise_sqrt(v) / (V)(c.sqrt_bias_correction2) + (V)(c.eps);       \
        p = p - (V)(c.step_size) * (m / denom);                                                    \
        *(UH *)(exp_avg + (i)) = BF16_NARROW(H, U, m);                                             \
        *(UH *)(exp_avg_sq + (i)) = BF16_NARROW(H, U, v);                                          \
        *(UV *)(parameter + (i)) = p;                                                              \
        delta = p - old;                                                                           \
    } while (0)

// The loop for one combination of the options (constants at every call site): 16 elements at a
// time, then 8, then one by one; (Δθ)² in 8 Double lanes, element i in lane i mod 8 in order. The
// next 16 gradients are loaded before this block's stores, as CVectorMath's loops do: the
// session's gradient and state buffers can sit at the same offsets within 4 KiB pages, and a load
// after stores to the same low 12 address bits waits on a false dependency.
static inline __attribute__((always_inline)) double bf16_loop(struct optimizerd_bf16_adam_buffers b, size_t count,
                                                               struct optimizerd_adam_coefficients c, bool l2,
                                                               bool decay) {
    float *parameter = b.parameter;
    const float *gradient = b.gradient;
    uint16_t *exp_avg = b.exp_avg;
    uint16_t *exp_avg_sq = b.exp_avg_sq;
    lowbit_d8 lanes = 0;
    size_t i = 0;
    if (count >= 16) {
        lowbit_f16 next = *(const lowbit_uf16 *)gradient;
        for (; i + 16 <= count; i += 16) {
            lowbit_f16 g16 = next;
            if (i + 32 <= count) next = *(const lowbit_uf16 *)(gradient + i + 16);
            lowbit_f16 delta;
            BF16_ADAM_STEP(lowbit_f16, lowbit_uf16, lowbit_u32x16, lowbit_u16x16, lowbit_uu16x16, i, g16);
            lanes += LOWBIT_SQUARE8(delta.lo);
            lanes += LOWBIT_SQUARE8(delta.hi);
        }
    }
    if (i + 8 <= count) {
        lowbit_f8 delta;
        BF16_ADAM_STEP(lowbit_f8, lowbit_uf8, lowbit_u32x8, lowbit_u16x8, lowbit_uu16x8, i, *(const lowbit_uf8 *)(gradient + i));
        lanes += LOWBIT_SQUARE8(delta);
        i += 8;
    }
    double update;
    LOWBIT_LANES_SUM(lanes, update);
    double tail = 0;
    for (; i < count; i++) {
        float g = gradient[i] * c.gradient_scale;
        float old = parameter[i];
        float p = old;
        if (l2) g = g + c.l2 * p;
        if (decay) p = p * c.decay;
        float m0 = bf16_widen(exp_avg[i]);
        float m = m0 + c.one_minus_beta1 * (g - m0);
        float v = bf16_widen(exp_avg_sq[i]) * c.beta2 + c.one_minus_beta2 * (g * g);
        float denom = __builtin_elementwise_sqrt(v) / c.sqrt_bias_correction2 + c.eps;
        p = p - c.step_size * (m / denom);
        exp_avg[i] = bf16_narrow(m);
        exp_avg_sq[i] = bf16_narrow(v);
        parameter[i] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double bf16_dispatch(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                                                                   const struct optimizerd_adam_coefficients *c) {
    bool l2 = c->l2 != 0, decay = c->decay != 1;
    if (l2) return decay ? bf16_loop(*b, count, *c, true, true) : bf16_loop(*b, count, *c, true, false);
    return decay ? bf16_loop(*b, count, *c, false, true) : bf16_loop(*b, count, *c, false, false);
}

static double bf16_baseline(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                            const struct optimizerd_adam_coefficients *c) {
    return bf16_dispatch(b, count, c);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static double bf16_avx2(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                                                        const struct optimizerd_adam_coefficients *c) {
    return bf16_dispatch(b, count, c);
}

__attribute__((target("avx512f,avx512vl"))) static double bf16_avx512(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                                                                      const struct optimizerd_adam_coefficients *c) {
    return bf16_dispatch(b, count, c);
}
#endif

double optimizerd_bf16_adam(int variant, const struct optimizerd_bf16_adam_buffers *buffers, size_t count,
                            const struct optimizerd_adam_coefficients *coefficients) {
    switch (variant) {
#if defined(__x86_64__)
    case OPTIMIZERD_KERNELS_AVX512:
        return bf16_avx512(buffers, count, coefficients);
    case OPTIMIZERD_KERNELS_AVX2:
        return bf16_avx2(buffers, count, coefficients);
#endif
    default:
        return bf16_baseline(buffers, count, coefficients);
    }
}
