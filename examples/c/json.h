/* A small JSON reader: just enough to walk a safetensors header and the daemon's JSON answers.
 * It reads from a bounded buffer (never past `end`), decodes strings with their escapes, reads
 * integers and skips any value it is not asked about. */
#ifndef OPTIMIZERD_EXAMPLE_JSON_H
#define OPTIMIZERD_EXAMPLE_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    const char *p;
    const char *end;
} json_cursor;

/* Skips whitespace; then true (and consumes it) if the next character is `c`. */
bool json_take(json_cursor *cur, char c);
/* Reads a string into `out` (NUL-terminated, at most `cap` - 1 bytes); false if malformed or longer. */
bool json_string(json_cursor *cur, char *out, size_t cap);
/* Reads an integer (no fraction, no exponent) that fits a long long. */
bool json_integer(json_cursor *cur, long long *out);
/* Skips one value of any kind (objects and arrays nested at most 64 deep). */
bool json_skip(json_cursor *cur);
/* Finds the string member `key` of the top-level object in `text` and copies its value to `out`. */
bool json_find_string(const char *text, size_t length, const char *key, char *out, size_t cap);

#endif
