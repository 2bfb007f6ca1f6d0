#include "kernel_variant.h"

int optimizerd_cpu_supports_variant(int variant) {
    switch (variant) {
    case OPTIMIZERD_KERNELS_BASELINE:
        return 1;
#if defined(__x86_64__)
    // __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
    case OPTIMIZERD_KERNELS_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
    case OPTIMIZERD_KERNELS_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512bw");
#endif
    default:
        return 0;
    }
}
