/* Logistic regression and the float64 reference of Adam it is checked against. */
#ifndef OPTIMIZERD_EXAMPLE_MODEL_H
#define OPTIMIZERD_EXAMPLE_MODEL_H

#include <stddef.h>

#include "data.h"

/* Mean binary cross-entropy of sigmoid(x·w + b) and, if `grad` is not NULL, its gradient:
 * grad[0..features) for w, grad[features] for b. `params` is w followed by b. */
double logistic_loss(const dataset *data, const double *params, double *grad);

/* Adam as torch.optim.Adam (algorithms.md §1, without weight decay) in float64. */
typedef struct {
    size_t size;
    double lr, beta1, beta2, eps;
    long long t;
    double *m, *v;
} adam_reference;

/* Zeroed moments for `size` parameters; returns 0 if out of memory. */
int adam_init(adam_reference *adam, size_t size, double lr);
void adam_step(adam_reference *adam, double *params, const double *grad);
void adam_free(adam_reference *adam);

#endif
