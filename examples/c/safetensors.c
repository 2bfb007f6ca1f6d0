#include "safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

bool st_buffer_append(st_buffer *buffer, const void *bytes, size_t count) {
    if (count > SIZE_MAX - buffer->length) return false;
    if (buffer->length + count > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 256;
        while (capacity < buffer->length + count) {
            if (capacity > SIZE_MAX / 2) return false;
            capacity *= 2;
        }
        char *grown = realloc(buffer->data, capacity);
        if (grown == NULL) return false;
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    if (count > 0) memcpy(buffer->data + buffer->length, bytes, count);
    buffer->length += count;
    return true;
}

void st_buffer_free(st_buffer *buffer) {
    free(buffer->data);
    buffer->data = NULL;
    buffer->length = buffer->capacity = 0;
}

static long long element_count(const st_tensor *tensor) {
    long long n = 1;
    for (int i = 0; i < tensor->rank; i++) n *= tensor->shape[i];
    return n;
}

/* printf into the buffer. */
static bool append_format(st_buffer *out, const char *format, long long a, long long b) {
    char text[64];
    int n = snprintf(text, sizeof text, format, a, b);
    return n > 0 && (size_t)n < sizeof text && st_buffer_append(out, text, (size_t)n);
}

static bool append_text(st_buffer *out, const char *text) { return st_buffer_append(out, text, strlen(text)); }

static bool encode_header(const st_tensor *tensors, size_t count, const char *const *keys,
                          const char *const *values, size_t metadata_count, st_buffer *header) {
    bool ok = append_text(header, "{\"__metadata__\":{");
    for (size_t i = 0; ok && i < metadata_count; i++) {
        ok = append_text(header, i ? ",\"" : "\"") && append_text(header, keys[i]) &&
             append_text(header, "\":\"") && append_text(header, values[i]) && append_text(header, "\"");
    }
    ok = ok && append_text(header, "}");
    long long offset = 0;
    for (size_t i = 0; ok && i < count; i++) {
        const st_tensor *t = &tensors[i];
        ok = append_text(header, ",\"") && append_text(header, t->name) &&
             append_text(header, "\":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; ok && d < t->rank; d++) ok = append_format(header, d ? ",%lld" : "%lld", t->shape[d], 0);
        long long bytes = element_count(t) * 4;
        ok = ok && append_format(header, "],\"data_offsets\":[%lld,%lld]}", offset, offset + bytes);
        offset += bytes;
    }
    ok = ok && append_text(header, "}");
    while (ok && header->length % 8 != 0) ok = append_text(header, " "); /* keeps the data 8-aligned */
    return ok;
}

bool st_encode(const st_tensor *tensors, size_t count, const char *const *metadata_keys,
               const char *const *metadata_values, size_t metadata_count, st_buffer *out) {
    st_buffer header = {0};
    bool ok = encode_header(tensors, count, metadata_keys, metadata_values, metadata_count, &header);
    unsigned char length[8];
    for (int i = 0; i < 8; i++) length[i] = (unsigned char)((uint64_t)header.length >> (8 * i));
    ok = ok && st_buffer_append(out, length, 8) && st_buffer_append(out, header.data, header.length);
    for (size_t i = 0; ok && i < count; i++) {
        for (long long k = 0; ok && k < element_count(&tensors[i]); k++) {
            uint32_t bits;
            memcpy(&bits, &tensors[i].values[k], 4);
            unsigned char le[4] = {(unsigned char)bits, (unsigned char)(bits >> 8), (unsigned char)(bits >> 16),
                                   (unsigned char)(bits >> 24)};
            ok = st_buffer_append(out, le, 4);
        }
    }
    st_buffer_free(&header);
    return ok;
}

/* One header entry that is not __metadata__: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
typedef struct {
    char dtype[16];
    int rank;
    long long shape[8];
    long long begin, end;
} entry;

static bool read_entry(json_cursor *cur, entry *e) {
    e->rank = -1;
    e->begin = e->end = -1;
    e->dtype[0] = '\0';
    if (!json_take(cur, '{')) return false;
    if (json_take(cur, '}')) return true;
    do {
        char key[32];
        if (!json_string(cur, key, sizeof key) || !json_take(cur, ':')) return false;
        if (strcmp(key, "dtype") == 0) {
            if (!json_string(cur, e->dtype, sizeof e->dtype)) return false;
        } else if (strcmp(key, "shape") == 0) {
            if (!json_take(cur, '[')) return false;
            e->rank = 0;
            if (!json_take(cur, ']')) {
                do {
                    if (e->rank == 8 || !json_integer(cur, &e->shape[e->rank])) return false;
                    e->rank++;
                } while (json_take(cur, ','));
                if (!json_take(cur, ']')) return false;
            }
        } else if (strcmp(key, "data_offsets") == 0) {
            if (!json_take(cur, '[') || !json_integer(cur, &e->begin) || !json_take(cur, ',') ||
                !json_integer(cur, &e->end) || !json_take(cur, ']'))
                return false;
        } else if (!json_skip(cur)) {
            return false;
        }
    } while (json_take(cur, ','));
    return json_take(cur, '}');
}

/* Copies an entry's values into the tensor it names, after checking dtype, shape and range. */
static bool fill(const entry *e, const char *name, st_tensor *t, const char *data, size_t data_length,
                 char *error, size_t error_cap) {
    bool same_shape = e->rank == t->rank;
    for (int d = 0; same_shape && d < t->rank; d++) same_shape = e->shape[d] == t->shape[d];
    long long bytes = element_count(t) * 4;
    if (strcmp(e->dtype, "F32") != 0 || !same_shape) {
        snprintf(error, error_cap, "tensor %s: expected F32 of the parameter's shape, got %s", name, e->dtype);
        return false;
    }
    if (e->begin < 0 || e->end - e->begin != bytes || (unsigned long long)e->end > data_length) {
        snprintf(error, error_cap, "tensor %s: byte range [%lld, %lld) does not fit", name, e->begin, e->end);
        return false;
    }
    const unsigned char *p = (const unsigned char *)data + e->begin;
    for (long long k = 0; k < element_count(t); k++, p += 4) {
        uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&t->values[k], &bits, 4);
    }
    return true;
}

static bool read_metadata(json_cursor *cur, long long *step) {
    if (!json_take(cur, '{')) return false;
    if (json_take(cur, '}')) return true;
    do {
        char key[256], value[4096];
        if (!json_string(cur, key, sizeof key) || !json_take(cur, ':') || !json_string(cur, value, sizeof value))
            return false;
        if (step != NULL && strcmp(key, "step") == 0) *step = strtoll(value, NULL, 10);
    } while (json_take(cur, ','));
    return json_take(cur, '}');
}

bool st_decode(const char *body, size_t length, st_tensor *tensors, size_t count, long long *step,
               char *error, size_t error_cap) {
    if (length < 8) {
        snprintf(error, error_cap, "body of %zu bytes is shorter than a safetensors header length", length);
        return false;
    }
    uint64_t header_length = 0;
    for (int i = 0; i < 8; i++) header_length |= (uint64_t)(unsigned char)body[i] << (8 * i);
    if (header_length > length - 8) {
        snprintf(error, error_cap, "header length %llu runs past the body", (unsigned long long)header_length);
        return false;
    }
    json_cursor cur = {body + 8, body + 8 + header_length};
    const char *data = cur.end;
    size_t data_length = length - 8 - (size_t)header_length;
    bool *found = calloc(count ? count : 1, sizeof *found);
    if (found == NULL) {
        snprintf(error, error_cap, "out of memory");
        return false;
    }
    bool ok = json_take(&cur, '{');
    if (ok && !json_take(&cur, '}')) {
        do {
            char name[256];
            ok = json_string(&cur, name, sizeof name) && json_take(&cur, ':');
            if (ok && strcmp(name, "__metadata__") == 0) {
                ok = read_metadata(&cur, step);
                continue;
            }
            entry e;
            ok = ok && read_entry(&cur, &e);
            for (size_t i = 0; ok && i < count; i++) {
                if (strcmp(tensors[i].name, name) == 0) {
                    ok = fill(&e, name, &tensors[i], data, data_length, error, error_cap);
                    found[i] = true;
                    if (!ok) goto done;
                }
            }
        } while (ok && json_take(&cur, ','));
        ok = ok && json_take(&cur, '}');
    }
    if (!ok) snprintf(error, error_cap, "malformed safetensors header");
    for (size_t i = 0; ok && i < count; i++) {
        if (!found[i]) {
            snprintf(error, error_cap, "tensor %s missing from the answer", tensors[i].name);
            ok = false;
        }
    }
done:
    free(found);
    return ok;
}
