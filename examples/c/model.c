#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double logistic_loss(const dataset *data, const double *params, double *grad) {
    size_t d = data->features;
    if (grad != NULL) memset(grad, 0, (d + 1) * sizeof *grad);
    double total = 0.0;
    for (size_t i = 0; i < data->rows; i++) {
        const double *x = &data->x[i * d];
        double z = params[d];
        for (size_t j = 0; j < d; j++) z += x[j] * params[j];
        /* log(1 + e^z) - y·z, written so that it never overflows */
        total += (z > 0 ? z + log1p(exp(-z)) : log1p(exp(z))) - data->y[i] * z;
        if (grad != NULL) {
            double residual = 1.0 / (1.0 + exp(-z)) - data->y[i];
            for (size_t j = 0; j < d; j++) grad[j] += residual * x[j];
            grad[d] += residual;
        }
    }
    if (grad != NULL) {
        for (size_t j = 0; j <= d; j++) grad[j] /= (double)data->rows;
    }
    return total / (double)data->rows;
}

int adam_init(adam_reference *adam, size_t size, double lr) {
    *adam = (adam_reference){.size = size, .lr = lr, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    adam->m = calloc(size, sizeof *adam->m);
    adam->v = calloc(size, sizeof *adam->v);
    if (adam->m == NULL || adam->v == NULL) {
        adam_free(adam);
        return 0;
    }
    return 1;
}

void adam_step(adam_reference *adam, double *params, const double *grad) {
    adam->t++;
    double bc1 = 1.0 - pow(adam->beta1, (double)adam->t);
    double bc2 = 1.0 - pow(adam->beta2, (double)adam->t);
    for (size_t i = 0; i < adam->size; i++) {
        adam->m[i] += (1.0 - adam->beta1) * (grad[i] - adam->m[i]);
        adam->v[i] = adam->beta2 * adam->v[i] + (1.0 - adam->beta2) * grad[i] * grad[i];
        double denom = sqrt(adam->v[i]) / sqrt(bc2) + adam->eps;
        params[i] -= adam->lr / bc1 * adam->m[i] / denom;
    }
}

void adam_free(adam_reference *adam) {
    free(adam->m);
    free(adam->v);
    adam->m = adam->v = NULL;
}
