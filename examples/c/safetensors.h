/* safetensors, the daemon's wire format (DESIGN §2), for float32 tensors: a u64 little-endian
 * header length, a JSON header naming each tensor's dtype, shape and byte range, then the raw
 * little-endian values. */
#ifndef OPTIMIZERD_EXAMPLE_SAFETENSORS_H
#define OPTIMIZERD_EXAMPLE_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>

/* One float32 tensor: a name, a shape of up to 4 dimensions, and its values. */
typedef struct {
    const char *name;
    int rank;
    long long shape[4];
    float *values;
} st_tensor;

/* A growable byte buffer (the bodies sent and received). */
typedef struct {
    char *data;
    size_t length;
    size_t capacity;
} st_buffer;

bool st_buffer_append(st_buffer *buffer, const void *bytes, size_t count);
void st_buffer_free(st_buffer *buffer);

/* Encodes `tensors` (F32) with `__metadata__` from `metadata_keys`/`metadata_values` (both of
 * `metadata_count` entries; plain ASCII without quotes or backslashes) into `out`. */
bool st_encode(const st_tensor *tensors, size_t count, const char *const *metadata_keys,
               const char *const *metadata_values, size_t metadata_count, st_buffer *out);

/* Decodes `body`, fills each of `tensors` (matched by name; the shape must be the one given and
 * the dtype F32) and, if `step` is not NULL, reads `__metadata__["step"]` into it. On failure
 * writes a reason to `error` (of `error_cap` bytes) and returns false. */
bool st_decode(const char *body, size_t length, st_tensor *tensors, size_t count, long long *step,
               char *error, size_t error_cap);

#endif
