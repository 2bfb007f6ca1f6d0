#ifndef OPTIMIZERD_LOWBIT_LANES_H
#define OPTIMIZERD_LOWBIT_LANES_H

// Vector types shared by the low-bit kernels (private to CLowBit).

#include <stdint.h>

typedef float lowbit_f16 __attribute__((ext_vector_type(16)));
typedef float lowbit_f8 __attribute__((ext_vector_type(8)));
typedef double lowbit_d8 __attribute__((ext_vector_type(8)));
// Integer vectors named by lane type and count: u32x16 is 16 lanes of uint32_t.
typedef uint32_t lowbit_u32x16 __attribute__((ext_vector_type(16)));
typedef uint32_t lowbit_u32x8 __attribute__((ext_vector_type(8)));
typedef int32_t lowbit_i32x16 __attribute__((ext_vector_type(16)));
typedef uint16_t lowbit_u16x16 __attribute__((ext_vector_type(16)));
typedef uint16_t lowbit_u16x8 __attribute__((ext_vector_type(8)));
// Unaligned views: tensors are only element-aligned.
typedef lowbit_f16 lowbit_uf16 __attribute__((aligned(4)));
typedef lowbit_f8 lowbit_uf8 __attribute__((aligned(4)));
typedef lowbit_u16x16 lowbit_uu16x16 __attribute__((aligned(2)));
typedef lowbit_u16x8 lowbit_uu16x8 __attribute__((aligned(2)));

// (Δθ)² of 8 lanes added to `lanes` in Double (exact conversion). The square of a float is exact
// in Double, so an FMA (`fused`, a constant: where the variant has the instruction) gives the same
// bits as the product and the sum. A macro: a function taking a vector argument would change its
// ABI between the variants.
#define LOWBIT_ADD_SQUARE8(lanes, x, fused)                                                        \
    do {                                                                                           \
        lowbit_d8 wide_ = __builtin_convertvector((x), lowbit_d8);                                 \
        if (fused) (lanes) = __builtin_elementwise_fma(wide_, wide_, (lanes));                     \
        else (lanes) += wide_ * wide_;                                                             \
    } while (0)

// The 8 Double lanes added lane 0 to 7, as Swift's `SIMD8<Double>.sum()` adds them.
#define LOWBIT_LANES_SUM(lanes, into)                                                              \
    do {                                                                                           \
        (into) = 0;                                                                                \
        for (int lane = 0; lane < 8; lane++) (into) += (lanes)[lane];                              \
    } while (0)

#endif
