#include "json.h"

#include <limits.h>
#include <string.h>

static void skip_space(json_cursor *cur) {
    while (cur->p < cur->end && (*cur->p == ' ' || *cur->p == '\t' || *cur->p == '\n' || *cur->p == '\r')) {
        cur->p++;
    }
}

bool json_take(json_cursor *cur, char c) {
    skip_space(cur);
    if (cur->p < cur->end && *cur->p == c) {
        cur->p++;
        return true;
    }
    return false;
}

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(json_cursor *cur, unsigned *out) {
    if (cur->end - cur->p < 4) return false;
    unsigned value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(cur->p[i]);
        if (digit < 0) return false;
        value = value * 16 + (unsigned)digit;
    }
    cur->p += 4;
    *out = value;
    return true;
}

/* Appends `code` as UTF-8; false if it does not fit. */
static bool put_utf8(char *out, size_t cap, size_t *n, unsigned code) {
    char bytes[4];
    size_t count;
    if (code < 0x80) {
        bytes[0] = (char)code;
        count = 1;
    } else if (code < 0x800) {
        bytes[0] = (char)(0xC0 | (code >> 6));
        bytes[1] = (char)(0x80 | (code & 0x3F));
        count = 2;
    } else if (code < 0x10000) {
        bytes[0] = (char)(0xE0 | (code >> 12));
        bytes[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        bytes[2] = (char)(0x80 | (code & 0x3F));
        count = 3;
    } else {
        bytes[0] = (char)(0xF0 | (code >> 18));
        bytes[1] = (char)(0x80 | ((code >> 12) & 0x3F));
        bytes[2] = (char)(0x80 | ((code >> 6) & 0x3F));
        bytes[3] = (char)(0x80 | (code & 0x3F));
        count = 4;
    }
    if (*n + count >= cap) return false;
    memcpy(out + *n, bytes, count);
    *n += count;
    return true;
}

/* A \u escape (the "\u" already read), with a surrogate pair's second half if there is one. */
static bool read_unicode_escape(json_cursor *cur, char *out, size_t cap, size_t *n) {
    unsigned code;
    if (!read_hex4(cur, &code)) return false;
    if (code >= 0xD800 && code <= 0xDBFF) {
        unsigned low;
        if (cur->end - cur->p < 2 || cur->p[0] != '\\' || cur->p[1] != 'u') return false;
        cur->p += 2;
        if (!read_hex4(cur, &low) || low < 0xDC00 || low > 0xDFFF) return false;
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    } else if (code >= 0xDC00 && code <= 0xDFFF) {
        return false;
    }
    return put_utf8(out, cap, n, code);
}

bool json_string(json_cursor *cur, char *out, size_t cap) {
    if (cap == 0 || !json_take(cur, '"')) return false;
    size_t n = 0;
    while (cur->p < cur->end) {
        char c = *cur->p++;
        if (c == '"') {
            out[n] = '\0';
            return true;
        }
        if ((unsigned char)c < 0x20) return false;
        if (c == '\\') {
            if (cur->p >= cur->end) return false;
            char e = *cur->p++;
            static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
            const char *found = NULL;
            for (size_t i = 0; i + 1 < sizeof escapes; i += 2) {
                if (escapes[i] == e) found = &escapes[i + 1];
            }
            if (found != NULL) {
                c = *found;
            } else if (e == 'u') {
                if (!read_unicode_escape(cur, out, cap, &n)) return false;
                continue;
            } else {
                return false;
            }
        }
        if (n + 1 >= cap) return false;
        out[n++] = c;
    }
    return false;
}

bool json_integer(json_cursor *cur, long long *out) {
    skip_space(cur);
    bool negative = json_take(cur, '-');
    if (cur->p >= cur->end || *cur->p < '0' || *cur->p > '9') return false;
    unsigned long long value = 0;
    while (cur->p < cur->end && *cur->p >= '0' && *cur->p <= '9') {
        unsigned digit = (unsigned)(*cur->p++ - '0');
        if (value > (ULLONG_MAX - digit) / 10) return false;
        value = value * 10 + digit;
    }
    if (cur->p < cur->end && (*cur->p == '.' || *cur->p == 'e' || *cur->p == 'E')) return false;
    if (value > (unsigned long long)LLONG_MAX) return false;
    *out = negative ? -(long long)value : (long long)value;
    return true;
}

static bool skip_value(json_cursor *cur, int depth) {
    if (depth > 64) return false;
    skip_space(cur);
    if (cur->p >= cur->end) return false;
    char c = *cur->p;
    if (c == '"') {
        char scratch[4096];
        return json_string(cur, scratch, sizeof scratch);
    }
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        cur->p++;
        if (json_take(cur, close)) return true;
        do {
            if (c == '{') {
                char key[4096];
                if (!json_string(cur, key, sizeof key) || !json_take(cur, ':')) return false;
            }
            if (!skip_value(cur, depth + 1)) return false;
        } while (json_take(cur, ','));
        return json_take(cur, close);
    }
    /* A number, true, false or null: the characters such a token can hold. */
    const char *start = cur->p;
    while (cur->p < cur->end && strchr("+-.0123456789eEtrufalsn", *cur->p) != NULL) cur->p++;
    return cur->p > start;
}

bool json_skip(json_cursor *cur) { return skip_value(cur, 0); }

bool json_find_string(const char *text, size_t length, const char *key, char *out, size_t cap) {
    json_cursor cur = {text, text + length};
    if (!json_take(&cur, '{') || json_take(&cur, '}')) return false;
    do {
        char name[256];
        if (!json_string(&cur, name, sizeof name) || !json_take(&cur, ':')) return false;
        if (strcmp(name, key) == 0) return json_string(&cur, out, cap);
        if (!json_skip(&cur)) return false;
    } while (json_take(&cur, ','));
    return false;
}
