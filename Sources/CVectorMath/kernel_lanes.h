#ifndef OPTIMIZERD_KERNEL_LANES_H
#define OPTIMIZERD_KERNEL_LANES_H

// Vector types and the (Δθ)² lanes shared by the C kernels (private to CVectorMath).

typedef float kernel_f16 __attribute__((ext_vector_type(16)));
typedef float kernel_f8 __attribute__((ext_vector_type(8)));
typedef double kernel_d8 __attribute__((ext_vector_type(8)));
// Unaligned views: the tensors are float-aligned only.
typedef kernel_f16 kernel_uf16 __attribute__((aligned(4)));
typedef kernel_f8 kernel_uf8 __attribute__((aligned(4)));

// (Δθ)² of 8 lanes in Double (the conversion is exact). A macro: a function taking a vector
// argument would change its ABI between the variants.
#define KERNEL_SQUARE8(x) (__builtin_convertvector((x), kernel_d8) * __builtin_convertvector((x), kernel_d8))

// The 8 Double lanes added lane 0 to 7, as Swift's `SIMD8<Double>.sum()` adds them.
#define KERNEL_LANES_SUM(lanes, into)                                                              \
    do {                                                                                           \
        (into) = 0;                                                                                \
        for (int lane = 0; lane < 8; lane++) (into) += (lanes)[lane];                              \
    } while (0)

// The vector part of a kernel loop: STEP(V, UV, i, g) (which sets `delta`, the Δθ vector; g is the
// gradient vector at i) over 16 elements at a time, then once over 8 if 8 remain, with (Δθ)² in 8
// Double lanes (element i in lane i mod 8, in order, whatever the width); `i` is left at the scalar
// tail and `update` set to the lanes' sum.
//
// The next 16 gradients are loaded before this block's stores: when the gradient and the state
// tensors sit at different offsets within a 4 KiB page, loading them after the stores to the same
// low 12 address bits stalls every block on a false store-to-load dependency (measured on AMD
// Zen 4, state 64 bytes past the gradient in the page: 0.75x the C loop, 0.95x with the lookahead).
#define KERNEL_VECTOR_LOOP(STEP, gradient, i, count, update)                                       \
    do {                                                                                           \
        kernel_d8 lanes = 0;                                                                       \
        if ((count) >= 16) {                                                                       \
            kernel_f16 next = *(const kernel_uf16 *)(gradient);                                    \
            for (; (i) + 16 <= (count); (i) += 16) {                                               \
                kernel_f16 g16 = next;                                                             \
                if ((i) + 32 <= (count)) next = *(const kernel_uf16 *)((gradient) + (i) + 16);     \
                kernel_f16 delta;                                                                  \
                STEP(kernel_f16, kernel_uf16, i, g16);                                             \
                lanes += KERNEL_SQUARE8(delta.lo);                                                 \
                lanes += KERNEL_SQUARE8(delta.hi);                                                 \
            }                                                                                      \
        }                                                                                          \
        if ((i) + 8 <= (count)) {                                                                  \
            kernel_f8 delta;                                                                       \
            STEP(kernel_f8, kernel_uf8, i, *(const kernel_uf8 *)((gradient) + (i)));               \
            lanes += KERNEL_SQUARE8(delta);                                                        \
            (i) += 8;                                                                              \
        }                                                                                          \
        KERNEL_LANES_SUM(lanes, update);                                                           \
    } while (0)

#endif
