#ifndef OPTIMIZERD_KERNEL_LANES_H
#define OPTIMIZERD_KERNEL_LANES_H

// Vector types, the Double lanes of the kernels' sums, the blocked vector loop and the per-variant
// entry points shared by the C kernels (private to CVectorMath).

#include "kernel_variant.h"

typedef float kernel_f16 __attribute__((ext_vector_type(16)));
typedef float kernel_f8 __attribute__((ext_vector_type(8)));
typedef double kernel_d8 __attribute__((ext_vector_type(8)));
// Unaligned views: the tensors are float-aligned only.
typedef kernel_f16 kernel_uf16 __attribute__((aligned(4)));
typedef kernel_f8 kernel_uf8 __attribute__((aligned(4)));

// x·y of 8 lanes in Double (the conversions and the product are exact). A macro: a function taking
// a vector argument would change its ABI between the variants.
#define KERNEL_PRODUCT8(x, y) (__builtin_convertvector((x), kernel_d8) * __builtin_convertvector((y), kernel_d8))

// lanes += x·y for vectors of type V (kernel_f16 or kernel_f8) into 8 Double lanes: element i goes
// to lane i mod 8, in element order, whatever the width (16 lanes add their low half, then their
// high half), so every variant sums in the order of Swift's 8-lane `SIMD8<Double>` loops.
#define KERNEL_ADD_PRODUCT(V, lanes, x, y) KERNEL_ADD_PRODUCT_##V(lanes, x, y)
#define KERNEL_ADD_PRODUCT_kernel_f16(lanes, x, y)                                                 \
    ((lanes) += KERNEL_PRODUCT8((x).lo, (y).lo), (lanes) += KERNEL_PRODUCT8((x).hi, (y).hi))
#define KERNEL_ADD_PRODUCT_kernel_f8(lanes, x, y) ((lanes) += KERNEL_PRODUCT8((x), (y)))

// The 8 Double lanes added lane 0 to 7, as Swift's `SIMD8<Double>.sum()` adds them.
#define KERNEL_LANES_SUM(lanes, into)                                                              \
    do {                                                                                           \
        (into) = 0;                                                                                \
        for (int lane = 0; lane < 8; lane++) (into) += (lanes)[lane];                              \
    } while (0)

// The vector part of a kernel loop: STEP(V, UV, i, x) (x is the vector of `stream` at i) over 16
// elements at a time, then once over 8 if 8 remain; `i` is left at the scalar tail. STEP adds its
// sums with KERNEL_ADD_PRODUCT.
//
// The next 16 elements of `stream` (the gradient, or the tensor a pass reads beside θ) are loaded
// before this block's stores: when the tensors sit at different offsets within a 4 KiB page, loading
// them after the stores to the same low 12 address bits stalls every block on a false
// store-to-load dependency (measured on AMD Zen 4, state 64 bytes past the gradient in the page:
// 0.75x the C loop, 0.95x with the lookahead).
#define KERNEL_BLOCKS(STEP, stream, i, count)                                                      \
    do {                                                                                           \
        if ((count) >= 16) {                                                                       \
            kernel_f16 next = *(const kernel_uf16 *)(stream);                                      \
            for (; (i) + 16 <= (count); (i) += 16) {                                               \
                kernel_f16 x16 = next;                                                             \
                if ((i) + 32 <= (count)) next = *(const kernel_uf16 *)((stream) + (i) + 16);       \
                STEP(kernel_f16, kernel_uf16, i, x16);                                             \
            }                                                                                      \
        }                                                                                          \
        if ((i) + 8 <= (count)) {                                                                  \
            STEP(kernel_f8, kernel_uf8, i, *(const kernel_uf8 *)((stream) + (i)));                 \
            (i) += 8;                                                                              \
        }                                                                                          \
    } while (0)

// KERNEL_BLOCKS with one sum: STEP adds into `lanes` (e.g. (Δθ)²), summed into `update`.
#define KERNEL_VECTOR_LOOP(STEP, stream, i, count, update)                                         \
    do {                                                                                           \
        kernel_d8 lanes = 0;                                                                       \
        KERNEL_BLOCKS(STEP, stream, i, count);                                                     \
        KERNEL_LANES_SUM(lanes, update);                                                           \
    } while (0)

// Defines `static type name_<variant> params` for every variant, each returning `body args` (an
// always-inline function, compiled into each with that variant's instruction set), and the public
// `type name(int variant, params...)` that calls the one asked for.
#define KERNEL_VARIANTS(type, name, body, params, args)                                            \
    static type name##_baseline params { return body args; }                                       \
    KERNEL_X86_VARIANTS(type, name, body, params, args)                                            \
    type name(int variant, KERNEL_UNPARENTHESIZE params) {                                         \
        switch (variant) {                                                                         \
            KERNEL_X86_CASES(name, args)                                                           \
        default:                                                                                   \
            return name##_baseline args;                                                           \
        }                                                                                          \
    }

#define KERNEL_UNPARENTHESIZE(...) __VA_ARGS__

#if defined(__x86_64__)
#define KERNEL_X86_VARIANTS(type, name, body, params, args)                                        \
    __attribute__((target("avx2"))) static type name##_avx2 params { return body args; }           \
    __attribute__((target("avx512f,avx512vl"))) static type name##_avx512 params { return body args; }
#define KERNEL_X86_CASES(name, args)                                                               \
    case OPTIMIZERD_KERNELS_AVX512:                                                                \
        return name##_avx512 args;                                                                 \
    case OPTIMIZERD_KERNELS_AVX2:                                                                  \
        return name##_avx2 args;
#else
#define KERNEL_X86_VARIANTS(type, name, body, params, args)
#define KERNEL_X86_CASES(name, args)
#endif

#endif
