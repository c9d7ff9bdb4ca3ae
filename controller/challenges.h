/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP-01 challenges the dataplanes must answer: a set of token -> key authorization with a
 * version that grows on every change. The ACME issuer adds and removes tokens through the
 * struct issuer_http01 this module provides (from any thread); the reconciler renders the set
 * into the configuration's acmeChallenges when its version changed, and after the dataplane
 * acknowledged a push tells the set which version that push carried. A token is published once
 * an acknowledged push carried a version that held it: only then may the CA be asked to validate.
 *
 * A wake callback (the daemon's eventfd) is called on every change, so the loop renders at once
 * instead of at its next due time. Thread-safe: one mutex.
 */
#ifndef AEGIS_CHALLENGES_H
#define AEGIS_CHALLENGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"
#include "issuer/issuer.h"
#include "render.h"

struct challenges;

/* wake (may be NULL) is called, without the lock held, after every change. */
struct challenges *challenges_new(void (*wake)(void *ctx), void *wake_ctx);
void challenges_free(struct challenges *c);

/* The publisher for issuers (valid for c's life). */
const struct issuer_http01 *challenges_http01(struct challenges *c);

/* The current version (0 for the empty set never changed). */
uint64_t challenges_version(struct challenges *c);

/*
 * A copy of the set for rendering: *v (n entries, challenges_snapshot_free) and the version it
 * is. Tokens in token order, so the same set renders to the same bytes.
 */
struct challenges_snapshot {
    struct render_challenge *v;
    size_t n;
    uint64_t version;
};
void challenges_snapshot(struct challenges *c, struct challenges_snapshot *s);
void challenges_snapshot_free(struct challenges_snapshot *s);

/* A push holding the set of version was acknowledged by the dataplane(s). */
void challenges_acknowledged(struct challenges *c, uint64_t version);

/* The same operations as the publisher's, for tests. */
int challenges_present(struct challenges *c, const char *token, const char *key_authorization,
                       struct aegis_err *err);
bool challenges_published(struct challenges *c, const char *token);
void challenges_cleanup(struct challenges *c, const char *token);

#endif
