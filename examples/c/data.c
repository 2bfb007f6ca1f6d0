#include "data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_LINE = 4096 };

/* Appends one row parsed from `line`; false (with the reason) if it is not `features` + 1 numbers. */
static bool parse_row(const char *line, size_t number, dataset *data, size_t *capacity, char *error, size_t cap) {
    if (data->rows == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 256;
        double *x = realloc(data->x, grown * data->features * sizeof *x);
        if (x != NULL) data->x = x;
        double *y = realloc(data->y, grown * sizeof *y);
        if (y != NULL) data->y = y;
        if (x == NULL || y == NULL) {
            snprintf(error, cap, "out of memory at line %zu", number);
            return false;
        }
        *capacity = grown;
    }
    const char *p = line;
    for (size_t column = 0; column <= data->features; column++) {
        char *end;
        errno = 0;
        double value = strtod(p, &end);
        char expected = column == data->features ? '\0' : ',';
        if (end == p || errno != 0 || (*end != expected && !(expected == '\0' && (*end == '\n' || *end == '\r')))) {
            snprintf(error, cap, "line %zu, column %zu: expected a number", number, column + 1);
            return false;
        }
        if (column == data->features) {
            if (value != 0.0 && value != 1.0) {
                snprintf(error, cap, "line %zu: the label must be 0 or 1, got %g", number, value);
                return false;
            }
            data->y[data->rows] = value;
        } else {
            data->x[data->rows * data->features + column] = value;
        }
        p = end + 1;
    }
    data->rows++;
    return true;
}

bool dataset_read(const char *path, dataset *data, char *error, size_t error_cap) {
    memset(data, 0, sizeof *data);
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(error, error_cap, "%s: %s", path, strerror(errno));
        return false;
    }
    char line[MAX_LINE];
    bool ok = fgets(line, sizeof line, file) != NULL;
    if (!ok) snprintf(error, error_cap, "%s: empty file", path);
    for (const char *c = line; ok && *c; c++) data->features += *c == ',';
    if (ok && data->features == 0) {
        snprintf(error, error_cap, "%s: the header names no feature columns", path);
        ok = false;
    }
    size_t capacity = 0;
    for (size_t number = 2; ok && fgets(line, sizeof line, file) != NULL; number++) {
        if (strchr(line, '\n') == NULL && !feof(file)) {
            snprintf(error, error_cap, "%s: line %zu is longer than %d bytes", path, number, MAX_LINE - 2);
            ok = false;
            break;
        }
        if (line[0] == '\n' || line[0] == '\r' || line[0] == '\0') continue;
        ok = parse_row(line, number, data, &capacity, error, error_cap);
    }
    if (ok && ferror(file)) {
        snprintf(error, error_cap, "%s: read error", path);
        ok = false;
    }
    if (ok && data->rows == 0) {
        snprintf(error, error_cap, "%s: no rows", path);
        ok = false;
    }
    fclose(file);
    if (!ok) dataset_free(data);
    return ok;
}

void dataset_free(dataset *data) {
    free(data->x);
    free(data->y);
    memset(data, 0, sizeof *data);
}
