#include "sgd_kernel.h"

#include "kernel_lanes.h"
#include "kernel_variant.h"

// Every operation is rounded on its own, as in Swift's `SGDKernel.scalar` (no FMA contraction).
#pragma STDC FP_CONTRACT OFF

// One element-wise step on any vector width: weight decay, momentum with dampening, Nesterov.
#define SGD_VECTOR_STEP(V, UV, i, gradient_in)                                                     \
    do {                                                                                           \
        V old = *(const UV *)(parameter + (i));                                                    \
        V g = (gradient_in) * (V)(c.gradient_scale);                                               \
        if (decays) g = g + (V)(c.weight_decay) * old;                                             \
        if (momentum) {                                                                            \
            V m = first_step ? g                                                                   \
                             : *(const UV *)(buffer + (i)) * (V)(c.momentum) + (V)(c.one_minus_dampening) * g; \
            *(UV *)(buffer + (i)) = m;                                                             \
            g = nesterov ? g + (V)(c.momentum) * m : m;                                            \
        }                                                                                          \
        V p = old - (V)(c.lr) * g;                                                                 \
        *(UV *)(parameter + (i)) = p;                                                              \
        V delta = p - old;                                                                         \
        KERNEL_ADD_PRODUCT(V, lanes, delta, delta);                                                \
    } while (0)

// The loop for one combination of the options (constants at every call site): 16 elements at a
// time, then 8, then one by one, with (Δθ)² in 8 Double lanes as in `adam_kernel.c`.
static inline __attribute__((always_inline)) double sgd_loop(float *parameter, const float *gradient, float *buffer,
                                                              size_t count, struct optimizerd_sgd_coefficients c,
                                                              bool decays, bool momentum, bool first_step,
                                                              bool nesterov) {
    size_t i = 0;
    double update;
    KERNEL_VECTOR_LOOP(SGD_VECTOR_STEP, gradient, i, count, update);
    double tail = 0;
    for (; i < count; i++) {
        float old = parameter[i];
        float g = gradient[i] * c.gradient_scale;
        if (decays) g = g + c.weight_decay * old;
        if (momentum) {
            float m = first_step ? g : buffer[i] * c.momentum + c.one_minus_dampening * g;
            buffer[i] = m;
            g = nesterov ? g + c.momentum * m : m;
        }
        float p = old - c.lr * g;
        parameter[i] = p;
        double d = (double)(p - old);
        tail += d * d;
    }
    return update + tail;
}

static inline __attribute__((always_inline)) double sgd_dispatch(float *parameter, const float *gradient, float *buffer,
                                                                  size_t count,
                                                                  const struct optimizerd_sgd_coefficients *c) {
#define SGD_LOOP(decays, momentum, first, nesterov)                                                \
    sgd_loop(parameter, gradient, buffer, count, *c, decays, momentum, first, nesterov)
#define SGD_MOMENTUM(decays)                                                                       \
    (buffer == NULL    ? SGD_LOOP(decays, false, false, false)                                     \
     : c->first_step   ? (c->nesterov ? SGD_LOOP(decays, true, true, true) : SGD_LOOP(decays, true, true, false)) \
     : c->nesterov     ? SGD_LOOP(decays, true, false, true)                                       \
                       : SGD_LOOP(decays, true, false, false))
    return c->weight_decay != 0 ? SGD_MOMENTUM(true) : SGD_MOMENTUM(false);
#undef SGD_MOMENTUM
#undef SGD_LOOP
}


KERNEL_VARIANTS(double, optimizerd_sgd, sgd_dispatch,
                (float *parameter, const float *gradient, float *momentum_buffer, size_t count,
                 const struct optimizerd_sgd_coefficients *coefficients),
                (parameter, gradient, momentum_buffer, count, coefficients))
