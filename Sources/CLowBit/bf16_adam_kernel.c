#include "bf16_adam_kernel.h"

#include <stdbool.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

// The two moments rounded to bfloat16 and stored by integer arithmetic (any width).
#define BF16_STORE_ROUNDED(H, U, UH, i, m, v)                                                      \
    do {                                                                                           \
        *(UH *)(exp_avg + (i)) = BF16_NARROW(H, U, m);                                             \
        *(UH *)(exp_avg_sq + (i)) = BF16_NARROW(H, U, v);                                          \
    } while (0)

#if defined(__x86_64__)
// The same on 16 lanes with AVX-512 BF16's `vcvtneps2bf16`: nearest, ties to even, in one
// instruction, but it reads subnormals as zero and keeps NaN payloads, so a block holding either
// (DQ's `vfpclassps`: quiet or signalling NaN, subnormal) takes the integer rounding instead.
#define BF16_STORE_CONVERTED(H, U, UH, i, m, v)                                                    \
    do {                                                                                           \
        __mmask16 special_m = _mm512_fpclass_ps_mask((__m512)(m), 0xA1);                           \
        __mmask16 special_v = _mm512_fpclass_ps_mask((__m512)(v), 0xA1);                           \
        if (__builtin_expect(_kortestz_mask16_u8(special_m, special_v), 1)) {                      \
            _mm256_storeu_si256((__m256i *)(exp_avg + (i)), (__m256i)_mm512_cvtneps_pbh((__m512)(m))); \
            _mm256_storeu_si256((__m256i *)(exp_avg_sq + (i)), (__m256i)_mm512_cvtneps_pbh((__m512)(v))); \
        } else {                                                                                   \
            BF16_STORE_ROUNDED(H, U, UH, i, m, v);                                                 \
        }                                                                                          \
    } while (0)
#endif

// One element-wise step on any vector width (V floats, UV their unaligned view, U uint32 lanes, H
// uint16 lanes, UH their unaligned view; gradient_in the gradients at i; STORE one of the two
// moment stores above): torch's order, as `AdamKernel` on float32 moments.
#define BF16_ADAM_STEP(V, UV, U, H, UH, i, gradient_in, STORE)                                     \
    do {                                                                                           \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old;                                                                                 \
        if (l2) g = g + (V)(c.l2) * p;                                                             \
        if (decay) p = p * (V)(c.decay);                                                           \
        V m = BF16_WIDEN(V, U, *(const UH *)(exp_avg + (i)));                                      \
        m = small ? m + (V)(c.one_minus_beta1) * (g - m) : g - (g - m) * (V)(rest);                \
        V v = BF16_WIDEN(V, U, *(const UH *)(exp_avg_sq + (i))) * (V)(c.beta2) +                   \
              (V)(c.one_minus_beta2) * (g * g);                                                    \
        V denom = __builtin_elementwise_sqrt(v) / (V)(c.sqrt_bias_correction2) + (V)(c.eps);       \
        p = p - (V)(c.step_size) * (m / denom);                                                    \
        STORE(H, U, UH, i, m, v);                                                                  \
        *(UV *)(parameter + (i)) = p;                                                              \
        delta = p - old;                                                                           \
    } while (0)

// The scalar tail from element i: ‖Δθ‖² of the vector part (`update`) plus the tail's, in order.
static inline __attribute__((always_inline)) double bf16_tail(struct optimizerd_bf16_adam_buffers b, size_t i, size_t count,
                                                               struct optimizerd_adam_coefficients c, bool l2, bool decay,
                                                               double update) {
    float *parameter = b.parameter;
    const float *gradient = b.gradient;
    uint16_t *exp_avg = b.exp_avg;
    uint16_t *exp_avg_sq = b.exp_avg_sq;
    const bool small = c.one_minus_beta1 < 0.5f;
    const float rest = 1.0f - c.one_minus_beta1;
    double tail = 0;
    for (; i < count; i++) {
        float g = gradient[i] * c.gradient_scale;
        float old = parameter[i];
        float p = old;
        if (l2) g = g + c.l2 * p;
        if (decay) p = p * c.decay;
        float m0 = bf16_widen(exp_avg[i]);
        float m = small ? m0 + c.one_minus_beta1 * (g - m0) : g - (g - m0) * rest;
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

// The body of the loop for one combination of the options (l2, decay and `fused` constants at
// every call site; b, count and c the buffers, length and coefficients): 16 elements at a time
// (moments stored by STORE16), then 8, then one by one; (Δθ)² in 8 Double lanes, element i in lane
// i mod 8 in order, then the tail's. The next 16 gradients are loaded before this block's stores,
// as CVectorMath's loops do: the session's gradient and state buffers can sit at the same offsets
// within 4 KiB pages, and a load after stores to the same low 12 address bits waits on a false
// dependency.
#define BF16_LOOP_BODY(STORE16, fused)                                                             \
    float *parameter = b.parameter;                                                                \
    const float *gradient = b.gradient;                                                            \
    uint16_t *exp_avg = b.exp_avg;                                                                 \
    uint16_t *exp_avg_sq = b.exp_avg_sq;                                                           \
    /* torch's lerp for m (see CVectorMath's adam_kernel.c). */                                   \
    const bool small = c.one_minus_beta1 < 0.5f;                                                   \
    const float rest = 1.0f - c.one_minus_beta1;                                                   \
    lowbit_d8 lanes = 0;                                                                           \
    size_t i = 0;                                                                                  \
    if (count >= 16) {                                                                             \
        lowbit_f16 next = *(const lowbit_uf16 *)gradient;                                          \
        for (; i + 16 <= count; i += 16) {                                                         \
            lowbit_f16 g16 = next;                                                                 \
            if (i + 32 <= count) next = *(const lowbit_uf16 *)(gradient + i + 16);                 \
            lowbit_f16 delta;                                                                      \
            BF16_ADAM_STEP(lowbit_f16, lowbit_uf16, lowbit_u32x16, lowbit_u16x16, lowbit_uu16x16, i, g16, STORE16); \
            LOWBIT_ADD_SQUARE8(lanes, delta.lo, fused);                                            \
            LOWBIT_ADD_SQUARE8(lanes, delta.hi, fused);                                            \
        }                                                                                          \
    }                                                                                              \
    if (i + 8 <= count) {                                                                          \
        lowbit_f8 delta;                                                                           \
        BF16_ADAM_STEP(lowbit_f8, lowbit_uf8, lowbit_u32x8, lowbit_u16x8, lowbit_uu16x8, i,        \
                       *(const lowbit_uf8 *)(gradient + i), BF16_STORE_ROUNDED);                   \
        LOWBIT_ADD_SQUARE8(lanes, delta, fused);                                                   \
        i += 8;                                                                                    \
    }                                                                                              \
    double update;                                                                                 \
    LOWBIT_LANES_SUM(lanes, update);                                                               \
    return bf16_tail(b, i, count, c, l2, decay, update)

// One combination of the options with the integer rounding (every variant).
static inline __attribute__((always_inline)) double bf16_loop(struct optimizerd_bf16_adam_buffers b, size_t count,
                                                               struct optimizerd_adam_coefficients c, bool l2,
                                                               bool decay, bool fused) {
    BF16_LOOP_BODY(BF16_STORE_ROUNDED, fused);
}

#if defined(__x86_64__)
// One combination of the options with AVX-512 BF16's rounding for the 16-lane blocks.
__attribute__((target("avx512f,avx512vl,avx512dq,avx512bf16"))) static inline __attribute__((always_inline)) double
bf16_loop_converted(struct optimizerd_bf16_adam_buffers b, size_t count, struct optimizerd_adam_coefficients c, bool l2,
                    bool decay) {
    BF16_LOOP_BODY(BF16_STORE_CONVERTED, true);
}
#endif

// The loop for the step's options: LOOP(buffers, count, coefficients, l2, decay, ...).
#define BF16_DISPATCH(LOOP, ...)                                                                   \
    do {                                                                                           \
        bool l2 = c->l2 != 0, decay = c->decay != 1;                                               \
        if (l2) return decay ? LOOP(*b, count, *c, true, true, ##__VA_ARGS__) : LOOP(*b, count, *c, true, false, ##__VA_ARGS__); \
        return decay ? LOOP(*b, count, *c, false, true, ##__VA_ARGS__) : LOOP(*b, count, *c, false, false, ##__VA_ARGS__); \
    } while (0)

static double bf16_baseline(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                            const struct optimizerd_adam_coefficients *c) {
    BF16_DISPATCH(bf16_loop, false);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static double bf16_avx2(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                                                        const struct optimizerd_adam_coefficients *c) {
    BF16_DISPATCH(bf16_loop, false);
}

__attribute__((target("avx512f,avx512vl"))) static double bf16_avx512(const struct optimizerd_bf16_adam_buffers *b, size_t count,
                                                                      const struct optimizerd_adam_coefficients *c) {
    BF16_DISPATCH(bf16_loop, true);
}

__attribute__((target("avx512f,avx512vl,avx512dq,avx512bf16"))) static double
bf16_avx512_converted(const struct optimizerd_bf16_adam_buffers *b, size_t count, const struct optimizerd_adam_coefficients *c) {
    BF16_DISPATCH(bf16_loop_converted);
}
#endif

int optimizerd_bf16_cpu_converts(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return optimizerd_cpu_supports_variant(OPTIMIZERD_KERNELS_AVX512) && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

double optimizerd_bf16_adam(int variant, const struct optimizerd_bf16_adam_buffers *buffers, size_t count,
                            const struct optimizerd_adam_coefficients *coefficients) {
    switch (variant) {
#if defined(__x86_64__)
    case OPTIMIZERD_BF16_KERNELS_AVX512_CONVERT:
        return bf16_avx512_converted(buffers, count, coefficients);
    case OPTIMIZERD_KERNELS_AVX512:
        return bf16_avx512(buffers, count, coefficients);
    case OPTIMIZERD_KERNELS_AVX2:
        return bf16_avx2(buffers, count, coefficients);
#endif
    default:
        return bf16_baseline(buffers, count, coefficients);
    }
}
