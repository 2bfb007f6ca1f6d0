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
// A map's 256 code values as two 256-entry tables of 16-bit halves, low halves first (the form
// dequantize32_avx512 reads).
__attribute__((target("avx512f,avx512vl,avx512bw"))) static void split_avx512(const float *map, uint16_t *halves) {
    for (int s = 0; s < 16; s++) {
        __m512i bits = _mm512_loadu_si512(map + 16 * s);
        _mm256_storeu_si256((__m256i *)(halves + 16 * s), _mm512_cvtepi32_epi16(bits));
        _mm256_storeu_si256((__m256i *)(halves + 256 + 16 * s), _mm512_cvtepi32_epi16(_mm512_srli_epi32(bits, 16)));
    }
}

// out[0…31] = map[k[0…31]] without a gather (the same bits as GATHER16's loads): each 16-bit half
// of the value by vpermi2w over 4 pairs of registers (the low 6 bits of the code), bits 6 and 7
// picking among the 4 by blends, then the halves interleaved into floats. The interleave works per
// 128-bit lane, so the codes are first put in the order it undoes.
__attribute__((target("avx512f,avx512vl,avx512bw"))) static void dequantize32_avx512(const uint16_t *halves,
                                                                                     const uint8_t *k, float *out) {
    static const uint16_t order[32] __attribute__((aligned(64))) = {
        0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31,
    };
    __m512i code = _mm512_permutexvar_epi16(_mm512_load_si512(order),
                                            _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)k)));
    __mmask32 bit6 = _mm512_test_epi16_mask(code, _mm512_set1_epi16(64));
    __mmask32 bit7 = _mm512_test_epi16_mask(code, _mm512_set1_epi16(128));
    __m512i half[2];
    for (int h = 0; h < 2; h++) {
        const uint16_t *table = halves + 256 * h;
        __m512i quarter[4];
        for (int q = 0; q < 4; q++)
            quarter[q] = _mm512_permutex2var_epi16(_mm512_loadu_si512(table + 64 * q), code,
                                                   _mm512_loadu_si512(table + 64 * q + 32));
        half[h] = _mm512_mask_blend_epi16(bit7, _mm512_mask_blend_epi16(bit6, quarter[0], quarter[1]),
                                          _mm512_mask_blend_epi16(bit6, quarter[2], quarter[3]));
    }
    _mm512_storeu_si512(out, _mm512_unpacklo_epi16(half[0], half[1]));
    _mm512_storeu_si512(out + 16, _mm512_unpackhi_epi16(half[0], half[1]));
}

// INT8_CELLS of x[0…15] as 16-bit lanes, without its NaN test: vmaxps returns its second operand
// for NaN, so NaN is clamped to −1, whose cell is 0 like the definition's NaN; every other value
// takes the same operations.
__attribute__((target("avx512f,avx512vl,avx512bw"))) static inline __m256i cells16_avx512(const float *x, float scale) {
    __m512 y = _mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(scale));
    y = _mm512_min_ps(_mm512_max_ps(y, _mm512_set1_ps(-1.0f)), _mm512_set1_ps(1.0f));
    __m512 t = _mm512_mul_ps(_mm512_add_ps(y, _mm512_set1_ps(1.0f)), _mm512_set1_ps(0.5f));
    __m512 position = _mm512_fmadd_ps(t, _mm512_set1_ps(65535.0f), _mm512_set1_ps(0.5f));
    return _mm512_cvtepi32_epi16(_mm512_cvttps_epi32(position));
}

// codes[0…31] = the codes of x[0…31] · scale without a memory lookup. The table is ascending, so a
// cell's code is the number of codes j ≥ 1 whose first cell B[j] is not above it: an 8-level binary
// search over 16-bit lanes whose node n (1 at the root, 2n or 2n + 1 below) compares the cell with
// search[n] (`struct optimizerd_int8_maps`), read from registers by vpermw and vpermi2w. After the
// last level n = 256 + code, so its low byte is the code.
__attribute__((target("avx512f,avx512vl,avx512bw"))) static void search32_avx512(const uint16_t *search,
                                                                                 const float *x, float scale,
                                                                                 uint8_t *codes) {
    __m512i cell = _mm512_inserti64x4(_mm512_castsi256_si512(cells16_avx512(x, scale)), cells16_avx512(x + 16, scale), 1);
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
#define split_avx512(map, halves) __builtin_unreachable()
#define dequantize32_avx512(halves, k, out) __builtin_unreachable()
#define search32_avx512(search, x, scale, codes) __builtin_unreachable()
#endif

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

// |x| of each lane (the sign bit cleared: NaN stays NaN) and the running maximum of those lanes:
// NaN never wins the comparison, and the maximum of non-negative non-NaN floats does not depend on
// the order, so any split of a block into lanes gives the scalar loop's absmax.
#define INT8_PEAK(V, U, peak, x)                                                                   \
    do {                                                                                           \
        V magnitude_ = (V)((U)(x) & 0x7FFFFFFFu);                                                  \
        (peak) = magnitude_ > (peak) ? magnitude_ : (peak);                                        \
    } while (0)

// The largest of a running maximum's 16 lanes and `largest` (NaN never wins).
static inline __attribute__((always_inline)) float int8_peak_fold(const float *lanes, int n, float largest) {
    for (int lane = 0; lane < n; lane++)
        if (lanes[lane] > largest) largest = lanes[lane];
    return largest;
}

// max |x| over n values (NaN never wins): a block's absmax in bitsandbytes' `quantize_cpu`.
static inline __attribute__((always_inline)) float int8_absmax(const float *x, size_t n) {
    lowbit_f16 lanes = 0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) INT8_PEAK(lowbit_f16, lowbit_u32x16, lanes, *(const lowbit_uf16 *)(x + i));
    float folded[16];
    *(lowbit_uf16 *)folded = lanes;
    float largest = int8_peak_fold(folded, 16, 0);
    for (; i < n; i++) {
        float magnitude = __builtin_fabsf(x[i]);
        if (magnitude > largest) largest = magnitude;
    }
    return largest;
}

// bitsandbytes' `quantize_cpu` for one block of n ≤ 256 values whose absmax is `largest` (0 gives
// all-zero codes): each value's code from the table (when `wide`, 32 at a time from its search tree,
// which gives the same codes).
static inline __attribute__((always_inline)) void int8_encode(const float *x, size_t n, float largest, const uint8_t *table,
                                                              const uint16_t *search, uint8_t *codes, float *absmax,
                                                              bool wide) {
    *absmax = largest;
    if (largest == 0) {
        memset(codes, 0, n);
        return;
    }
    float scale = 1.0f / largest;
    size_t i = 0;
    if (wide) {
        for (; i + 32 <= n; i += 32) search32_avx512(search, x + i, scale, codes + i);
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

// One element-wise step on any vector width (V floats, UV their unaligned view, U their uint32
// lanes) from the code values M and VV: dequantize (value · absmax), then bitsandbytes' m, v and θ;
// the new moments' magnitudes go into the running maxima peak1 and peak2 (V lanes).
#define INT8_ADAM_STEP(V, UV, U, M, VV, i, peak1, peak2)                                           \
    do {                                                                                           \
        V m = (M), v = (VV);                                                                       \
        V g = *(const UV *)(gradient + (i)) * (V)(gradient_scale);                                 \
        m = FMA(g, (V)(one_minus_beta1), m * (V)(absmax1) * (V)(beta1));                           \
        v = FMA((V)(one_minus_beta2) * g, g, v * (V)(absmax2) * (V)(beta2));                       \
        V denom = __builtin_elementwise_sqrt(v) / (V)(sqrt_bias_correction2) + (V)(eps);           \
        V old = *(const UV *)(parameter + (i));                                                    \
        V p = old * (V)(decay) + ((V)(step_value) * m) / denom;                                    \
        *(UV *)(parameter + (i)) = p;                                                              \
        *(UV *)(new_m + (i)) = m;                                                                  \
        *(UV *)(new_v + (i)) = v;                                                                  \
        INT8_PEAK(V, U, peak1, m);                                                                 \
        INT8_PEAK(V, U, peak2, v);                                                                 \
        delta = p - old;                                                                           \
    } while (0)

// One block of n ≤ 256 elements: the update into θ and the scratch moments (with their absmax, found
// on the way), then both moments quantized back. Returns the block's ‖Δθ‖² (lanes, then the scalar
// tail), with (Δθ)² added by FMA when `fused`.
static inline __attribute__((always_inline)) double int8_block(const struct optimizerd_int8_adam_buffers *b, size_t start,
                                                                size_t n, const struct optimizerd_int8_adam_coefficients *c,
                                                                const struct optimizerd_int8_maps *maps,
                                                                const uint16_t *halves, float *new_m, float *new_v,
                                                                bool wide, bool fused) {
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
    lowbit_f16 peak1 = 0, peak2 = 0;
    size_t i = 0;
    if (wide) {
        for (; i + 32 <= n; i += 32) {
            float values1[32] __attribute__((aligned(64))), values2[32] __attribute__((aligned(64)));
            dequantize32_avx512(halves, codes1 + i, values1);
            dequantize32_avx512(halves + 512, codes2 + i, values2);
            for (int half = 0; half < 32; half += 16) {
                lowbit_f16 delta;
                INT8_ADAM_STEP(lowbit_f16, lowbit_uf16, lowbit_u32x16, *(const lowbit_f16 *)(values1 + half),
                               *(const lowbit_f16 *)(values2 + half), i + half, peak1, peak2);
                LOWBIT_ADD_SQUARE8(lanes, delta.lo, fused);
                LOWBIT_ADD_SQUARE8(lanes, delta.hi, fused);
            }
        }
    }
    for (; i + 16 <= n; i += 16) {
        lowbit_f16 delta;
        INT8_ADAM_STEP(lowbit_f16, lowbit_uf16, lowbit_u32x16, GATHER16(signed_codes, codes1 + i),
                       GATHER16(unsigned_codes, codes2 + i), i, peak1, peak2);
        LOWBIT_ADD_SQUARE8(lanes, delta.lo, fused);
        LOWBIT_ADD_SQUARE8(lanes, delta.hi, fused);
    }
    float peaks[2][16];
    *(lowbit_uf16 *)peaks[0] = peak1;
    *(lowbit_uf16 *)peaks[1] = peak2;
    float largest1 = int8_peak_fold(peaks[0], 16, 0), largest2 = int8_peak_fold(peaks[1], 16, 0);
    if (i + 8 <= n) {
        lowbit_f8 delta, peak8_1 = 0, peak8_2 = 0;
        INT8_ADAM_STEP(lowbit_f8, lowbit_uf8, lowbit_u32x8, GATHER8(signed_codes, codes1 + i),
                       GATHER8(unsigned_codes, codes2 + i), i, peak8_1, peak8_2);
        LOWBIT_ADD_SQUARE8(lanes, delta, fused);
        *(lowbit_uf8 *)peaks[0] = peak8_1;
        *(lowbit_uf8 *)peaks[1] = peak8_2;
        largest1 = int8_peak_fold(peaks[0], 8, largest1);
        largest2 = int8_peak_fold(peaks[1], 8, largest2);
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
        if (__builtin_fabsf(m) > largest1) largest1 = __builtin_fabsf(m);
        if (__builtin_fabsf(v) > largest2) largest2 = __builtin_fabsf(v);
        double d = (double)(p - old);
        tail += d * d;
    }
    int8_encode(new_m, n, largest1, maps->signed_table, maps->signed_search, b->codes1 + start, b->absmax1 + block, wide);
    int8_encode(new_v, n, largest2, maps->unsigned_table, maps->unsigned_search, b->codes2 + start, b->absmax2 + block,
                wide);
    return update + tail;
}

static inline __attribute__((always_inline)) double int8_run(const struct optimizerd_int8_adam_buffers *b, size_t count,
                                                              const struct optimizerd_int8_adam_coefficients *c,
                                                              const struct optimizerd_int8_maps *maps, bool wide,
                                                              bool fused) {
    float new_m[OPTIMIZERD_INT8_BLOCK] __attribute__((aligned(64)));
    float new_v[OPTIMIZERD_INT8_BLOCK] __attribute__((aligned(64)));
    // Both maps' values as 16-bit halves (signed map first) for the wide dequantizer.
    uint16_t halves[1024] __attribute__((aligned(64)));
    if (wide) {
        split_avx512(maps->signed_codes, halves);
        split_avx512(maps->unsigned_codes, halves + 512);
    }
    double total = 0;
    for (size_t start = 0; start < count; start += OPTIMIZERD_INT8_BLOCK) {
        size_t n = count - start < OPTIMIZERD_INT8_BLOCK ? count - start : OPTIMIZERD_INT8_BLOCK;
        total += int8_block(b, start, n, c, maps, halves, new_m, new_v, wide, fused);
    }
    return total;
}

static double int8_baseline(const struct optimizerd_int8_adam_buffers *b, size_t count,
                            const struct optimizerd_int8_adam_coefficients *c, const struct optimizerd_int8_maps *maps) {
    return int8_run(b, count, c, maps, false, false);
}

#if defined(__x86_64__)
// Every x86-64 CPU with AVX2 also has FMA3 (Intel since Haswell, AMD since Piledriver).
__attribute__((target("avx2,fma"))) static double int8_avx2(const struct optimizerd_int8_adam_buffers *b, size_t count,
                                                            const struct optimizerd_int8_adam_coefficients *c,
                                                            const struct optimizerd_int8_maps *maps) {
    return int8_run(b, count, c, maps, false, true);
}

__attribute__((target("avx512f,avx512vl,avx512bw"))) static double int8_avx512(const struct optimizerd_int8_adam_buffers *b, size_t count,
                                                                      const struct optimizerd_int8_adam_coefficients *c,
                                                                      const struct optimizerd_int8_maps *maps) {
    return int8_run(b, count, c, maps, true, true);
}
#endif

static void quantize_baseline(const float *x, size_t n, const uint8_t *table, const uint16_t *search, uint8_t *codes,
                              float *absmax) {
    int8_encode(x, n, int8_absmax(x, n), table, search, codes, absmax, false);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void quantize_avx2(const float *x, size_t n, const uint8_t *table,
                                                              const uint16_t *search, uint8_t *codes, float *absmax) {
    int8_encode(x, n, int8_absmax(x, n), table, search, codes, absmax, false);
}

__attribute__((target("avx512f,avx512vl,avx512bw"))) static void quantize_avx512(const float *x, size_t n,
                                                                                 const uint8_t *table,
                                                                                 const uint16_t *search, uint8_t *codes,
                                                                                 float *absmax) {
    int8_encode(x, n, int8_absmax(x, n), table, search, codes, absmax, true);
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
