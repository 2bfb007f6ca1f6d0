#ifndef OPTIMIZERD_BASELINE_ADAM_H
#define OPTIMIZERD_BASELINE_ADAM_H

#include <stddef.h>

// The memory-bandwidth yardstick for the benchmarks: the textbook fused Adam loop in plain C,
// compiled with -O3 -march=native -fno-math-errno (see Package.swift). Reads θ, g, m, v and writes
// θ, m, v: 28 bytes per parameter.
void optimizerd_baseline_adam(float *restrict parameter, const float *restrict gradient,
                              float *restrict exp_avg, float *restrict exp_avg_sq, size_t count,
                              float beta1, float beta2, float step_size, float sqrt_bias_correction2,
                              float eps);

#endif
