/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP-01 challenge set (challenges.h). Small (a few tokens per issuance in flight, at most
 * AEGIS_LIMIT_RCONF_CHALLENGES): a sorted array under one mutex.
 */
#include "challenges.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"

struct entry {
    char *token, *keyauth;
    uint64_t added; /* the set's version when it was added (or changed) */
};

struct challenges {
    pthread_mutex_t lock;
    struct entry *v;
    size_t n, cap;
    uint64_t version, acked;
    void (*wake)(void *ctx);
    void *wake_ctx;
    struct issuer_http01 http01;
};

static int c_present(void *ctx, const char *token, const char *keyauth, struct aegis_err *err)
{
    return challenges_present(ctx, token, keyauth, err);
}

static bool c_published(void *ctx, const char *token)
{
    return challenges_published(ctx, token);
}

static void c_cleanup(void *ctx, const char *token)
{
    challenges_cleanup(ctx, token);
}

struct challenges *challenges_new(void (*wake)(void *ctx), void *wake_ctx)
{
    struct challenges *c = aegis_calloc(1, sizeof(*c));

    pthread_mutex_init(&c->lock, NULL);
    c->wake = wake;
    c->wake_ctx = wake_ctx;
    c->http01 = (struct issuer_http01){c, c_present, c_published, c_cleanup};
    return c;
}

void challenges_free(struct challenges *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].token);
        free(c->v[i].keyauth);
    }
    free(c->v);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

const struct issuer_http01 *challenges_http01(struct challenges *c)
{
    return &c->http01;
}

uint64_t challenges_version(struct challenges *c)
{
    uint64_t v;

    pthread_mutex_lock(&c->lock);
    v = c->version;
    pthread_mutex_unlock(&c->lock);
    return v;
}

/* The index of token, or where it would go (*found false). Lock held. */
static size_t find(const struct challenges *c, const char *token, bool *found)
{
    size_t lo = 0, hi = c->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(c->v[mid].token, token);

        if (cmp == 0) {
            *found = true;
            return mid;
        }
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

int challenges_present(struct challenges *c, const char *token, const char *keyauth,
                       struct aegis_err *err)
{
    bool found, changed = false;
    size_t at;

    if (strlen(token) >= AEGIS_LIMIT_RCONF_TOKEN_BYTES ||
        strlen(keyauth) >= AEGIS_LIMIT_RCONF_KEYAUTH_BYTES)
        return aegis_err_set(err, -AEGIS_E_LIMIT, "acme",
                             "the CA's challenge token is longer than the dataplane accepts");
    pthread_mutex_lock(&c->lock);
    at = find(c, token, &found);
    if (found && strcmp(c->v[at].keyauth, keyauth) != 0) {
        free(c->v[at].keyauth);
        c->v[at].keyauth = aegis_strdup(keyauth);
        c->v[at].added = ++c->version;
        changed = true;
    } else if (!found) {
        if (c->n >= AEGIS_LIMIT_RCONF_CHALLENGES) {
            pthread_mutex_unlock(&c->lock);
            return aegis_err_set(err, -AEGIS_E_LIMIT, "acme",
                                 "%d HTTP-01 challenges are already pending: try again later",
                                 AEGIS_LIMIT_RCONF_CHALLENGES);
        }
        aegis_grow((void **)&c->v, &c->cap, c->n + 1, sizeof(*c->v));
        memmove(c->v + at + 1, c->v + at, (c->n - at) * sizeof(*c->v));
        c->v[at] = (struct entry){aegis_strdup(token), aegis_strdup(keyauth), ++c->version};
        c->n++;
        changed = true;
    }
    pthread_mutex_unlock(&c->lock);
    if (changed && c->wake != NULL)
        c->wake(c->wake_ctx);
    return 0;
}

bool challenges_published(struct challenges *c, const char *token)
{
    bool found, published;
    size_t at;

    pthread_mutex_lock(&c->lock);
    at = find(c, token, &found);
    published = found && c->acked >= c->v[at].added;
    pthread_mutex_unlock(&c->lock);
    return published;
}

void challenges_cleanup(struct challenges *c, const char *token)
{
    bool found;
    size_t at;

    pthread_mutex_lock(&c->lock);
    at = find(c, token, &found);
    if (found) {
        free(c->v[at].token);
        free(c->v[at].keyauth);
        memmove(c->v + at, c->v + at + 1, (c->n - at - 1) * sizeof(*c->v));
        c->n--;
        c->version++;
    }
    pthread_mutex_unlock(&c->lock);
    if (found && c->wake != NULL)
        c->wake(c->wake_ctx);
}

void challenges_snapshot(struct challenges *c, struct challenges_snapshot *s)
{
    pthread_mutex_lock(&c->lock);
    s->n = c->n;
    s->version = c->version;
    s->v = aegis_calloc(c->n + 1, sizeof(*s->v));
    for (size_t i = 0; i < c->n; i++) {
        s->v[i].token = aegis_strdup(c->v[i].token);
        s->v[i].key_authorization = aegis_strdup(c->v[i].keyauth);
    }
    pthread_mutex_unlock(&c->lock);
}

void challenges_snapshot_free(struct challenges_snapshot *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free((char *)s->v[i].token);
        free((char *)s->v[i].key_authorization);
    }
    free(s->v);
    memset(s, 0, sizeof(*s));
}

void challenges_acknowledged(struct challenges *c, uint64_t version)
{
    pthread_mutex_lock(&c->lock);
    if (version > c->acked)
        c->acked = version;
    pthread_mutex_unlock(&c->lock);
}
