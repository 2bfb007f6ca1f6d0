#include "daemon.h"

#include <stdio.h>
#include <string.h>

#include "json.h"

static size_t collect(char *bytes, size_t size, size_t count, void *target) {
    return st_buffer_append(target, bytes, size * count) ? size * count : 0;
}

/* One request: `method` to `url + path` with an optional body; the answer goes to `answer`. */
static bool request(od_session *s, const char *method, const char *path, const char *content_type,
                    const char *body, size_t body_length, st_buffer *answer, char *error, size_t error_cap) {
    char url[512];
    if (snprintf(url, sizeof url, "%s%s", s->url, path) >= (int)sizeof url) {
        snprintf(error, error_cap, "URL too long");
        return false;
    }
    struct curl_slist *headers = NULL, *more;
    char content[128];
    snprintf(content, sizeof content, "Content-Type: %s", content_type ? content_type : "application/octet-stream");
    const char *lines[] = {content, s->authorization, "Expect:"}; /* no 100-continue round trip */
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        if (lines[i][0] == '\0') continue;
        if ((more = curl_slist_append(headers, lines[i])) == NULL) {
            curl_slist_free_all(headers);
            snprintf(error, error_cap, "out of memory");
            return false;
        }
        headers = more;
    }
    answer->length = 0;
    curl_easy_reset(s->curl);
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT, 60L);
    if (body != NULL) {
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
    }
    CURLcode code = curl_easy_perform(s->curl);
    curl_slist_free_all(headers);
    if (code != CURLE_OK) {
        snprintf(error, error_cap, "%s %s: %s", method, url, curl_easy_strerror(code));
        return false;
    }
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) return true;
    char detail[1024] = "(no problem detail)";
    json_find_string(answer->data, answer->length, "detail", detail, sizeof detail);
    snprintf(error, error_cap, "%s %s: %ld %s", method, url, status, detail);
    return false;
}

bool od_create(od_session *s, const char *url, const char *json, char *error, size_t error_cap) {
    memset(s, 0, sizeof *s);
    if (snprintf(s->url, sizeof s->url, "%s", url) >= (int)sizeof s->url) {
        snprintf(error, error_cap, "URL too long");
        return false;
    }
    if ((s->curl = curl_easy_init()) == NULL) {
        snprintf(error, error_cap, "curl_easy_init failed");
        return false;
    }
    st_buffer answer = {0};
    char token[200];
    bool ok = request(s, "POST", "/v1/sessions", "application/json", json, strlen(json), &answer, error, error_cap);
    if (ok && !(json_find_string(answer.data, answer.length, "id", s->id, sizeof s->id) &&
                json_find_string(answer.data, answer.length, "token", token, sizeof token))) {
        snprintf(error, error_cap, "the creation answer has no id and token");
        ok = false;
    }
    if (ok) snprintf(s->authorization, sizeof s->authorization, "Authorization: Bearer %s", token);
    st_buffer_free(&answer);
    if (!ok) {
        curl_easy_cleanup(s->curl);
        s->curl = NULL;
    }
    return ok;
}

static void session_path(const od_session *s, const char *tail, char *out, size_t cap) {
    snprintf(out, cap, "/v1/sessions/%s%s", s->id, tail);
}

bool od_upload(od_session *s, const st_buffer *body, char *error, size_t error_cap) {
    char path[128];
    session_path(s, "/parameters", path, sizeof path);
    st_buffer answer = {0};
    bool ok = request(s, "PUT", path, NULL, body->data, body->length, &answer, error, error_cap);
    st_buffer_free(&answer);
    return ok;
}

bool od_step(od_session *s, const st_buffer *body, st_buffer *answer, char *error, size_t error_cap) {
    char path[128];
    session_path(s, "/step", path, sizeof path);
    return request(s, "POST", path, NULL, body->data, body->length, answer, error, error_cap);
}

bool od_close(od_session *s, char *error, size_t error_cap) {
    if (s->curl == NULL) return true;
    char path[128];
    session_path(s, "", path, sizeof path);
    st_buffer answer = {0};
    bool ok = request(s, "DELETE", path, NULL, NULL, 0, &answer, error, error_cap);
    st_buffer_free(&answer);
    curl_easy_cleanup(s->curl);
    s->curl = NULL;
    return ok;
}
