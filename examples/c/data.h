/* The data set: a CSV with a header line, numeric features and a 0/1 label in the last column. */
#ifndef OPTIMIZERD_EXAMPLE_DATA_H
#define OPTIMIZERD_EXAMPLE_DATA_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    size_t rows;
    size_t features;
    double *x; /* rows × features, row-major */
    double *y; /* rows labels, 0 or 1 */
} dataset;

/* Reads `path`; on failure writes a reason (naming the line) to `error` and returns false. */
bool dataset_read(const char *path, dataset *data, char *error, size_t error_cap);
void dataset_free(dataset *data);

#endif
