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

#endif
