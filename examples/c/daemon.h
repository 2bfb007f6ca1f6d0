/* The daemon's HTTP API through libcurl: create a session, upload its parameters, step, delete.
 * A refused request (status 4xx/5xx) is reported with the problem+json `detail` the daemon sent. */
#ifndef OPTIMIZERD_EXAMPLE_DAEMON_H
#define OPTIMIZERD_EXAMPLE_DAEMON_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

#include "safetensors.h"

typedef struct {
    CURL *curl;
    char url[256];
    char id[64];
    char authorization[256];
} od_session;

/* POST /v1/sessions with `json` (e.g. {"optimizer": "adam", "hyperparameters": {"lr": 0.05}}). */
bool od_create(od_session *session, const char *url, const char *json, char *error, size_t error_cap);
/* PUT /v1/sessions/{id}/parameters with a safetensors body. */
bool od_upload(od_session *session, const st_buffer *body, char *error, size_t error_cap);
/* POST /v1/sessions/{id}/step: gradients in, updated parameters (safetensors) out in `answer`. */
bool od_step(od_session *session, const st_buffer *body, st_buffer *answer, char *error, size_t error_cap);
/* DELETE /v1/sessions/{id}, then frees the connection. */
bool od_close(od_session *session, char *error, size_t error_cap);

#endif
