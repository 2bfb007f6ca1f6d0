#include "baseline_adam.h"

#include <math.h>

void optimizerd_baseline_adam(float *restrict parameter, const float *restrict gradient,
                              float *restrict exp_avg, float *restrict exp_avg_sq, size_t count,
                              float beta1, float beta2, float step_size, float sqrt_bias_correction2,
                              float eps) {
    for (size_t i = 0; i < count; i++) {
        float g = gradient[i];
        float m = beta1 * exp_avg[i] + (1 - beta1) * g;
        float v = beta2 * exp_avg_sq[i] + (1 - beta2) * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        parameter[i] -= step_size * m / (sqrtf(v) / sqrt_bias_correction2 + eps);
    }
}
