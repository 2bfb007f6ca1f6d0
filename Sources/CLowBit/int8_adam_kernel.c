#include "int8_adam_kernel.h"

#include <stdbool.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "kernel_variant.h"
#include "lowbit_lanes.h"

// Every operation is rounded on its own, and the FMAs are the explicit ones of bitsandbytes'
// formula, as Swift's `Int8AdamKernel.scalar` computes them: contracting a·b + c elsewhere would
// change the bits.
#pragma STDC FP_CONTRACT OFF

#define FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))

#if defined(__x86_64__)
// map[k[0…15]] for a 256-entry map without a gather (exact loads, so the same values as GATHER16
// and the scalar lookups): the map's 8 slices of 32 floats each give every lane its entry at the low
// 5 bits of its code (vpermi2ps), and bits 5, 6 and 7 pick among the 8 by blends. Not always_inline,
// so that the portable block body may name it; it inlines into the AVX-512 variant, the only caller
// that reaches it.
__attribute__((target("avx512f,avx512vl"))) static void dequantize16_avx512(const float *map, const uint8_t *k, float *out) {
    __m512i index = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)k));
    __m512 slice[8];
    for (int s = 0; s < 8; s++)
        slice[s] = _mm512_permutex2var_ps(_mm512_loadu_ps(map + 32 * s), index, _mm512_loadu_ps(map + 32 * s + 16));
    for (int bit = 5, width = 8; bit < 8; bit++, width /= 2) {
        __mmask16 high = _mm512_test_epi32_mask(index, _mm512_set1_epi32(1 << bit));
        for (int s = 0; s < width / 2; s++) slice[s] = _mm512_mask_blend_ps(high, slice[2 * s], slice[2 * s + 1]);
    }
    _mm512_storeu_ps(out, slice[0]);
}

// codes[0…31] = the codes of cells[0…31] without a memory lookup. The table is ascending, so a cell's
// code is the number of codes j ≥ 1 whose first cell B[j] is not above it: an 8-level binary search
// over 16-bit lanes whose node n (1 at the root, 2n or 2n + 1 below) compares the cell with
// search[n] (`struct optimizerd_int8_maps`), read from registers by vpermw and vpermi2w. After the
// last level n = 256 + code, so its low byte is the code.
__attribute__((target("avx512f,avx512vl,avx512bw"))) static void search32_avx512(const uint16_t *search,
                                                                                 const int32_t *cells,
                                                                                 uint8_t *codes) {
    __m512i cell = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi32_epi16(_mm512_loadu_si512(cells))),
                                      _mm512_cvtepi32_epi16(_mm512_loadu_si512(cells + 16)), 1);
    __m512i top = _mm512_loadu_si512(search);
    __m512i node = _mm512_set1_epi16(1), one = _mm512_set1_epi16(1);
    // Hides the constant from the compiler, which would otherwise turn each masked add of 1 below
    // into three instructions (mask to vector, shift, or), a tenth of the whole step's time.
    __asm__("" : "+v"(one));
#pragma clang loop unroll(full)
    for (int level = 0; level < 8; level++) {
        __m512i bound;
        if (level <= 4) {
            bound = _mm512_permutexvar_epi16(node, top);
        } else if (level == 5) {
            bound = _mm512_permutexvar_epi16(node, _mm512_loadu_si512(search + 32));
        } else if (level == 6) {
            bound = _mm512_permutex2var_epi16(_mm512_loadu_si512(search + 64), node, _mm512_loadu_si512(search + 96));
        } else {
            __m512i low = _mm512_permutex2var_epi16(_mm512_loadu_si512(search + 128), node,
                                                    _mm512_loadu_si512(search + 160));
            __m512i high = _mm512_permutex2var_epi16(_mm512_loadu_si512(search + 192), node,
                                                     _mm512_loadu_si512(search + 224));
            bound = _mm512_mask_blend_epi16(_mm512_test_epi16_mask(node, _mm512_set1_epi16(64)), low, high);
        }
        __mmask32 above = _mm512_cmpge_epu16_mask(cell, bound);
        node = _mm512_add_epi16(node, node);
        node = _mm512_mask_add_epi16(node, above, node, one);
    }
    _mm256_storeu_si256((__m256i *)codes, _mm512_cvtepi16_epi8(node));
}
#else
// Never reached: `wide` is false in every variant off x86-64.
#define dequantize16_avx512(map, k, out) __builtin_unreachable()
#define search32_avx512(search, cells, codes) __builtin_unreachable()
#endif

// GATHER16, by AVX-512 permutes when `wide` (a constant in each variant's copy of the loop).
#define GATHER16_WIDE(t, k)                                                                        \
    ({                                                                                             \
        lowbit_f16 gathered_;                                                                      \
        if (wide) {                                                                                \
            float out_[16] __attribute__((aligned(64)));                                           \
            dequantize16_avx512((t), (k), out_);                                                   \
            gathered_ = *(const lowbit_f16 *)out_;                                                 \
        } else {                                                                                   \
            gathered_ = GATHER16((t), (k));                                                        \
        }                                                                                          \
        gathered_;                                                                                 \
    })

// The table cell of each lane of y = x · scale: clamp to [−1, 1], t = (1 + y)·0.5,
// ⌊fma(t, 65535, 0.5)⌋ (0 … 65535, exact in int32), NaN in cell 0 — `DynamicMap.cell`.
#define INT8_CELLS(V, I, x, scale)                                                                 \
    ({                                                                                             \
        V y = (x) * (V)(scale);                                                                    \
        y = y < (V)(-1.0f) ? (V)(-1.0f) : y;                                                       \
        y = y > (V)1.0f ? (V)1.0f : y;                                                             \
        V position = FMA((y + (V)1.0f) * (V)0.5f, (V)65535.0f, (V)0.5f);                           \
        position = position != position ? (V)0.0f : position;                                      \
        __builtin_convertvector(position, I);                                                      \
    })

static inline __attribute__((always_inline)) int int8_cell(float x, float scale) {
    float y = x * scale;
    if (y < -1.0f) y = -1.0f;
    else if (y > 1.0f) y = 1.0f;
    float position = FMA((1.0f + y) * 0.5f, 65535.0f, 0.5f);
    return position != position ? 0 : (int)position;
}

// bitsandbytes' `quantize_cpu` for one block of n ≤ 256 values: absmax = max |x| (NaN never wins; 0
// gives all-zero codes), each value's code from the table (when `wide`, 32 at a time from its search
// tree, which gives the same codes). The maximum of non-negative non-NaN floats does not depend on
// the order, so the vector maximum is the scalar one.
static inline __attribute__((always_inline)) void int8_quantize(const float *x, size_t n, const uint8_t *table,
                                                                const uint16_t *search, uint8_t *codes, float *absmax,
                                                                bool wide) {
    lowbit_f16 lanes = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lowbit_f16 magnitude = (lowbit_f16)((lowbit_u32x16)(*(const lowbit_uf16 *)(x + i)) & 0x7FFFFFFFu);
        lanes = magnitude > lanes ? magnitude : lanes;
    }
    float largest = 0;
    for (int lane = 0; lane < 16; lane++)
        if (lanes[lane] > largest) largest = lanes[lane];
    for (; i < n; i++) {
        float magnitude = __builtin_fabsf(x[i]);
        if (magnitude > largest) largest = magnitude;
    }
    *absmax = largest;
    if (largest == 0) {
        memset(codes, 0, n);
        return;
    }
    float scale = 1.0f / largest;
    i = 0;
    if (wide) {
        for (; i + 32 <= n; i += 32) {
            int32_t cells[32] __attribute__((aligned(64)));
            *(lowbit_i32x16 *)cells = INT8_CELLS(lowbit_f16, lowbit_i32x16, *(const lowbit_uf16 *)(x + i), scale);
            *(lowbit_i32x16 *)(cells + 16) =
                INT8_CELLS(lowbit_f16, lowbit_i32x16, *(const lowbit_uf16 *)(x + i + 16), scale);
            search32_avx512(search, cells, codes + i);
        }
    }
    for (; i + 16 <= n; i += 16) {
        int32_t cells[16] __attribute__((aligned(64)));
        *(lowbit_i32x16 *)cells = INT8_CELLS(lowbit_f16, lowbit_i32x16, *(const lowbit_uf16 *)(x + i), scale);
        for (int lane = 0; lane < 16; lane++) codes[i + lane] = table[cells[lane]];
    }
    for (; i < n; i++) codes[i] = table[int8_cell(x[i], scale)];
}

// table[k[0]], …, table[k[15]] (and the 8-lane form) as one vector literal, so the lanes are filled
// by plain loads (a loop over the lanes compiled to a masked insert per lane).
#define GATHER16(t, k)                                                                             \
    ((lowbit_f16){(t)[(k)[0]], (t)[(k)[1]], (t)[(k)[2]], (t)[(k)[3]], (t)[(k)[4]], (t)[(k)[5]],     \
                  (t)[(k)[6]], (t)[(k)[7]], (t)[(k)[8]], (t)[(k)[9]], (t)[(k)[10]], (t)[(k)[11]], \
                  (t)[(k)[12]], (t)[(k)[13]], (t)[(k)[14]], (t)[(k)[15]]})
#define GATHER8(t, k)                                                                              \
    ((lowbit_f8){(t)[(k)[0]], (t)[(k)[1]], (t)[(k)[2]], (t)[(k)[3]], (t)[(k)[4]], (t)[(k)[5]],      \
                 (t)[(k)[6]], (t)[(k)[7]]})

// One element-wise step on any vector width (V floats, UV their unaligned view, GATHER its lookup):
// dequantize (code · absmax), then bitsandbytes' m, v and θ.
#define INT8_ADAM_STEP(V, UV, GATHER, i)                                                           \
    do {                                                                                           \
        const uint8_t *k1 = codes1 + (i), *k2 = codes2 + (i);                                      \
        V m = GATHER(signed_codes, k1);                                                            \
        V v = GATHER(unsigned_codes, k2);                                                          \
        V g = *(const UV *)(gradient + (i)) * (V)(gradient_scale);                                 \
        m = FMA(g, (V)(one_minus_beta1), m * (V)(absmax1) * (V)(beta1));                           \
        v = FMA((V)(one_minus_beta2) * g, g, v * (V)(absmax2) * (V)(beta2));                       \
        V denom = __builtin_elementwise_sqrt(v) / (V)(sqrt_bias_correction2) + (V)(eps);           \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old * (V)(decay) + ((V)(step_value) * m) / denom;                                    \
        *(UV *)(parameter + (i)) = p;                                                              \
        *(UV *)(new_m + (i)) = m;                                                                  \
        *(UV *)(new_v + (i)) = v;                                                                  \
        delta = p - old;                                                                           \
    } while (0)

// One block of n ≤ 256 elements: the update into θ and the scratch moments, then both moments
// quantized back. Returns the block's ‖Δθ‖² (lanes, then the scalar tail).
static inline __attribute__((always_inline)) double int8_block(const struct optimizerd_int8_adam_buffers *b, size_t start,
                                                                size_t n, const struct optimizerd_int8_adam_coefficients *c,
                                                                const struct optimizerd_int8_maps *maps, float *new_m,
                                                                float *new_v, bool wide) {
    // Locals, so that the stores below (which the compiler cannot prove apart from `c` and `maps`)
    // do not reload them.
    const float beta1 = c->beta1, beta2 = c->beta2, one_minus_beta1 = c->one_minus_beta1;
    const float one_minus_beta2 = c->one_minus_beta2, step_value = c->step_value, eps = c->eps;
    const float sqrt_bias_correction2 = c->sqrt_bias_correction2, decay = c->decay, gradient_scale = c->gradient_scale;
    const float *signed_codes = maps->signed_codes, *unsigned_codes = maps->unsigned_codes;
    float *parameter = b->parameter + start;
    const float *gradient = b->gradient + start;
    const uint8_t *codes1 = b->codes1 + start, *codes2 = b->codes2 + start;
    size_t block = start / OPTIMIZERD_INT8_BLOCK;
    float absmax1 = b->absmax1[block], absmax2 = b->absmax2[block];
    lowbit_d8 lanes = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        lowbit_f16 delta;
        INT8_ADAM_STEP(lowbit_f16, lowbit_uf16, GATHER16_WIDE, i);
        lanes += LOWBIT_SQUARE8(delta.lo);
        lanes += LOWBIT_SQUARE8(delta.hi);
    }
    if (i + 8 <= n) {
        lowbit_f8 delta;
        INT8_ADAM_STEP(lowbit_f8, lowbit_uf8, GATHER8, i);
        lanes += LOWBIT_SQUARE8(delta);
        i += 8;
    }
    double update;
    LOWBIT_LANES_SUM(lanes, update);
    double tail = 0;
    for (; i < n; i++) {
        float g = gradient[i] * gradient_scale;
        float m = FMA(g, one_minus_beta1, signed_codes[codes1[i]] * absmax1 * beta1);
        float v = FMA(one_minus_beta2 * g, g, unsigned_codes[codes2[i]] * absmax2 * beta2);
        float denom = __builtin_elementwise_sqrt(v) / sqrt_bias_correction2 + eps;
        float old = parameter[i];
        float p = old * decay + (step_value * m) / denom;
        parameter[i] = p;
        new_m[i] = m;
        new_v[i] = v;
        double d = (double)(p - old);
        tail += d * d;
    }
    int8_quantize(new_m, n, maps->signed_table, maps->signed_search, b->codes1 + start, b->absmax1 + block, wide);
    int8_quantize(new_v, n, maps->unsigned_table, maps->unsigned_search, b->codes2 + start, b->absmax2 + block, wide);
    return update + tail;
}

static inline __attribute__((always_inline)) double int8_run(const struct optimizerd_int8_adam_buffers *b, size_t count,
                                                              const struct optimizerd_int8_adam_coefficients *c,
                                                              const struct optimizerd_int8_maps *maps, bool wide) {
    float new_m[OPTIMIZERD_INT8_BLOCK] __attribute__((aligned(64)));
    float new_v[OPTIMIZERD_INT8_BLOCK] __attribute__((aligned(64)));
    double total = 0;
    for (size_t start = 0; start < count; start += OPTIMIZERD_INT8_BLOCK) {
        size_t n = count - start < OPTIMIZERD_INT8_BLOCK ? count - start : OPTIMIZERD_INT8_BLOCK;
        total += int8_block(b, start, n, c, maps, new_m, new_v, wide);
    }
    return total;
}

static double int8_baseline(const struct optimizerd_int8_adam_buffers *b, size_t count,
                            const struct optimizerd_int8_adam_coefficients *c, const struct optimizerd_int8_maps *maps) {
    return int8_run(b, count, c, maps, false);
}

#if defined(__x86_64__)
// Every x86-64 CPU with AVX2 also has FMA3 (Intel since Haswell, AMD since Piledriver).
__attribute__((target("avx2,fma"))) static double int8_avx2(const struct optimizerd_int8_adam_buffers *b, size_t count,
                                                            const struct optimizerd_int8_adam_coefficients *c,
                                                            const struct optimizerd_int8_maps *maps) {
    return int8_run(b, count, c, maps, false);
}

__attribute__((target("avx512f,avx512vl,avx512bw"))) static double int8_avx512(const struct optimizerd_int8_adam_buffers *b, size_t count,
                                                                      const struct optimizerd_int8_adam_coefficients *c,
                                                                      const struct optimizerd_int8_maps *maps) {
    return int8_run(b, count, c, maps, true);
}
#endif

static void quantize_baseline(const float *x, size_t n, const uint8_t *table, const uint16_t *search, uint8_t *codes,
                              float *absmax) {
    int8_quantize(x, n, table, search, codes, absmax, false);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void quantize_avx2(const float *x, size_t n, const uint8_t *table,
                                                              const uint16_t *search, uint8_t *codes, float *absmax) {
    int8_quantize(x, n, table, search, codes, absmax, false);
}

__attribute__((target("avx512f,avx512vl,avx512bw"))) static void quantize_avx512(const float *x, size_t n,
                                                                                 const uint8_t *table,
                                                                                 const uint16_t *search, uint8_t *codes,
                                                                                 float *absmax) {
    int8_quantize(x, n, table, search, codes, absmax, true);
}
#endif

void optimizerd_int8_quantize(int variant, const float *values, size_t count, const uint8_t *table,
                              const uint16_t *search, uint8_t *codes, float *absmax) {
    switch (variant) {
#if defined(__x86_64__)
    case OPTIMIZERD_KERNELS_AVX512:
        quantize_avx512(values, count, table, search, codes, absmax);
        return;
    case OPTIMIZERD_KERNELS_AVX2:
        quantize_avx2(values, count, table, search, codes, absmax);
        return;
#endif
    default:
        quantize_baseline(values, count, table, search, codes, absmax);
    }
}

double optimizerd_int8_adam(int variant, const struct optimizerd_int8_adam_buffers *buffers, size_t count,
                            const struct optimizerd_int8_adam_coefficients *coefficients,
                            const struct optimizerd_int8_maps *maps) {
    switch (variant) {
#if defined(__x86_64__)
    case OPTIMIZERD_KERNELS_AVX512:
        return int8_avx512(buffers, count, coefficients, maps);
    case OPTIMIZERD_KERNELS_AVX2:
        return int8_avx2(buffers, count, coefficients, maps);
#endif
    default:
        return int8_baseline(buffers, count, coefficients, maps);
    }
}
