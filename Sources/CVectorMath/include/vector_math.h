#ifndef OPTIMIZERD_VECTOR_MATH_H
#define OPTIMIZERD_VECTOR_MATH_H

// Vector square root for the optimizer kernels.
//
// Swift's `SIMD8<Float>.squareRoot()` is lowered lane by lane to the C library's `sqrtf` with an
// errno check, which makes every kernel that needs a square root compute-bound at a third of the
// memory bandwidth. Clang's elementwise builtin is the IEEE square root (correctly rounded, the
// same bits as `Float.squareRoot()`), one `sqrtps` per vector, with no errno. The ext_vector_type
// s below are imported into Swift as `SIMD8<Float>` and
// `SIMD8<Double>`.

typedef float optimizerd_float8 __attribute__((ext_vector_type(8)));
typedef double optimizerd_double8 __attribute__((ext_vector_type(8)));

static inline __attribute__((always_inline)) optimizerd_float8 optimizerd_sqrt8(optimizerd_float8 x) {
    return __builtin_elementwise_sqrt(x);
}

static inline __attribute__((always_inline)) optimizerd_double8 optimizerd_sqrt8d(optimizerd_double8 x) {
    return __builtin_elementwise_sqrt(x);
}

// Float ↔ Double lane conversions. Swift's generic `SIMD8<Double>(SIMD8<Float>)` initializer is not
// specialized into the kernels: it stays an out-of-line call per vector (measured: 10 % of Adam's
// time). These are one `vcvtps2pd` pair / `vcvtpd2ps` pair, exact (widening) or round-to-nearest
// (narrowing), as the lane-wise conversions are.
static inline __attribute__((always_inline)) optimizerd_double8 optimizerd_widen8(optimizerd_float8 x) {
    return __builtin_convertvector(x, optimizerd_double8);
}

static inline __attribute__((always_inline)) optimizerd_float8 optimizerd_narrow8(optimizerd_double8 x) {
    return __builtin_convertvector(x, optimizerd_float8);
}

// b where a < b, else a: Swift's `pointwiseMax(a, b)` (a compare and a blend; the generic Swift
// function is not inlined either).
static inline __attribute__((always_inline)) optimizerd_float8 optimizerd_max8(optimizerd_float8 a, optimizerd_float8 b) {
    return a < b ? b : a;
}

// a·b + c with one rounding in every lane (one `vfmadd` with AVX2/FMA; Swift's generic
// `addingProduct` on SIMD8 is not lowered to it). The 8-bit Adam kernel needs it: bitsandbytes'
// reference (torch's vectorized `add_(alpha=)`/`addcmul_`) rounds these updates once.
static inline __attribute__((always_inline)) optimizerd_float8 optimizerd_fma8(optimizerd_float8 a, optimizerd_float8 b, optimizerd_float8 c) {
    return __builtin_elementwise_fma(a, b, c);
}

#endif
