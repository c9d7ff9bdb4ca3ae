/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dataplane's control state, behind the admin API (admin_api.h's backend): the configuration
 * being served and since when, the server (created by the first configuration, swapped by the
 * next ones), which certificate each host has been serving since when, and the encrypted last
 * good configuration written after every change. PUT /config, SIGHUP and the start-up
 * configuration all go through it, one at a time.
 */
#ifndef DP_ADMIN_CONTROL_H
#define DP_ADMIN_CONTROL_H

#include <stdbool.h>

#include "admin_api.h"
#include "aegis/err.h"
#include "aegis/masterkey.h"
#include "aegis/rconf.h"

struct dp_control;

struct dp_control_opts {
    unsigned workers;                 /* --workers; 0: the configuration's, else the cores */
    const char *state_dir;            /* where the last good configuration goes; NULL: nowhere */
    const struct aegis_keyring *ring; /* seals it (borrowed; required with state_dir) */
};

struct dp_control *dp_control_new(const struct dp_control_opts *o);
/* The admin API backend over c. */
void dp_control_backend(struct dp_control *c, struct dp_admin_backend *b);
/* Serves rc (validated, parsed from doc/len) as the first configuration, or swaps to it. */
int dp_control_apply(struct dp_control *c, struct rconf *rc, const char *doc, size_t len,
                     struct aegis_err *err);
/* True once a configuration is served. */
bool dp_control_serving(struct dp_control *c);
/* Stops the server gracefully (dp_server_stop); true when every connection finished. */
bool dp_control_stop(struct dp_control *c);
void dp_control_free(struct dp_control *c);

/* admin_tlstest.c: the test-upstream-tls handshake with host h's first upstream through its
 * vhost's upstream TLS context (upstream_ssl, may be NULL: not TLS). A new JSON string. */
struct dp_vhost;
char *dp_admin_test_upstream_tls(const struct dp_vhost *v);

#endif
