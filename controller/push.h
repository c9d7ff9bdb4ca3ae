/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pusher: sends a rendered configuration to a dataplane's admin API (docs/dataplane.md,
 * "Admin API") with libcurl - over the dataplane's unix socket (mode 0600), or over TCP with
 * mutual TLS - and reads its status back. The document holds private keys, so plain TCP is not
 * offered.
 *
 * Answers are turned into messages a user can act on: a refused configuration names the first
 * errors the dataplane listed (path and message), a generation conflict names both generations,
 * an unreachable dataplane names the socket or URL.
 */
#ifndef AEGIS_PUSH_H
#define AEGIS_PUSH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"

/* Largest answer read from a dataplane; the status of 10,000 hosts is well below. */
#define PUSH_ANSWER_MAX (8 * 1024 * 1024)
#define PUSH_TIMEOUT_MS_DEFAULT 30000

struct push_target {
    const char *unix_socket; /* the dataplane's admin socket; NULL: url over mutual TLS */
    const char *url;         /* "https://dp-0.internal:9443"; ignored with unix_socket */
    const char *cert_file;   /* client certificate and key for mutual TLS */
    const char *key_file;
    const char *ca_file; /* the CA the dataplane's certificate chains to */
    long timeout_ms;     /* 0: PUSH_TIMEOUT_MS_DEFAULT */
};

/*
 * PUT /config with json (len bytes). Returns 0 when the dataplane serves it (or already served
 * the same document), -AEGIS_E_INVALID when it refused the document (err: the first errors),
 * -AEGIS_E_STATE for a generation conflict, -AEGIS_E_UNSUPPORTED for another answer, or -EIO
 * (err: why) when it could not be reached.
 */
int push_config(const struct push_target *t, const char *json, size_t len, struct aegis_err *err);

/* GET /status into *status (a new reference). Errors as push_config. */
int push_status(const struct push_target *t, json_t **status, struct aegis_err *err);

/* The name of the target for messages: the socket path or the URL. */
const char *push_target_name(const struct push_target *t);

#endif
