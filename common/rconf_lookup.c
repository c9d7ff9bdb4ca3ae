/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The lookups of a rendered-configuration snapshot (rconf.h): its hash tables, and on them the
 * certificate selection for a server name, the host for a Host header and the ACME token - each a
 * constant number of probes whatever the number of hosts.
 */
#include "aegis/rconf.h"

#include <string.h>

#include "aegis/alloc.h"
#include "aegis/err.h"
#include "rconf_internal.h"

/* ---- hash tables ------------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static struct rconf_slot *table_find_slot(const struct rconf_table *t, const void *key, size_t len,
                                          uint64_t h)
{
    size_t mask, i;

    if (t->cap == 0)
        return NULL;
    mask = t->cap - 1;
    for (i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct rconf_slot *s = &t->slots[i];

        if (s->key == NULL)
            return s;
        if (s->hash == h && s->klen == len && memcmp(s->key, key, len) == 0)
            return s;
    }
}

void *rconf__table_get(const struct rconf_table *t, const void *key, size_t len)
{
    struct rconf_slot *s = table_find_slot(t, key, len, hash_bytes(key, len));

    return s != NULL && s->key != NULL ? s->val : NULL;
}

static void table_grow(struct rconf_table *t)
{
    struct rconf_table bigger = {NULL, t->cap ? t->cap * 2 : 16, 0};

    bigger.slots = aegis_calloc(bigger.cap, sizeof(*bigger.slots));
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i].key != NULL) {
            *table_find_slot(&bigger, t->slots[i].key, t->slots[i].klen, t->slots[i].hash) =
                t->slots[i];
            bigger.n++;
        }
    }
    free(t->slots);
    *t = bigger;
}

void *rconf__table_put(struct rconf_table *t, const void *key, size_t len, void *val)
{
    uint64_t h = hash_bytes(key, len);
    struct rconf_slot *s;

    if ((t->n + 1) * 4 > t->cap * 3)
        table_grow(t);
    s = table_find_slot(t, key, len, h);
    if (s->key != NULL)
        return s->val;
    s->hash = h;
    s->key = key;
    s->klen = len;
    s->val = val;
    t->n++;
    return NULL;
}

void rconf__table_set(struct rconf_table *t, const void *key, size_t len, void *val)
{
    struct rconf_slot *s = table_find_slot(t, key, len, hash_bytes(key, len));

    if (s != NULL && s->key != NULL)
        s->val = val;
}

void rconf__table_dispose(struct rconf_table *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

/* ---- lookups ---------------------------------------------------------------------------------- */

size_t rconf_name_normalize(const char *name, size_t len, char *buf, size_t size)
{
    if (name == NULL)
        return 0;
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0 || len >= size)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        buf[i] = c;
    }
    buf[len] = '\0';
    return len;
}

/* Looks key up in t, exactly, then as the wildcard one label up ("*.rest"). */
static void *lookup_name(const struct rconf_table *t, const char *key, size_t len)
{
    char wild[256];
    const char *dot;
    void *v = rconf__table_get(t, key, len);

    if (v != NULL)
        return v;
    dot = memchr(key, '.', len);
    if (dot == NULL || dot == key || len + 1 > sizeof(wild))
        return NULL;
    wild[0] = '*';
    memcpy(wild + 1, dot, len - (size_t)(dot - key));
    return rconf__table_get(t, wild, 1 + len - (size_t)(dot - key));
}

static const struct rconf_host *find_host_normalized(const struct rconf *rc, const char *key,
                                                     size_t len, bool tls_only)
{
    const struct rconf_host *h = rconf__table_get(&rc->index_->host_names, key, len);
    char wild[256];
    const char *dot;

    /* An exact name belongs to its host even when that host has no TLS. */
    if (h == NULL) {
        dot = memchr(key, '.', len);
        if (dot == NULL || dot == key || len + 1 > sizeof(wild))
            return NULL;
        wild[0] = '*';
        memcpy(wild + 1, dot, len - (size_t)(dot - key));
        h = rconf__table_get(&rc->index_->host_names, wild, 1 + len - (size_t)(dot - key));
    }
    if (h != NULL && tls_only && !h->tls)
        return NULL;
    return h;
}

const struct rconf_host *rconf_find_host(const struct rconf *rc, const char *name, size_t len,
                                         bool tls_only)
{
    char key[256];
    size_t n = rconf_name_normalize(name, len, key, sizeof(key));

    if (n == 0)
        return NULL;
    return find_host_normalized(rc, key, n, tls_only);
}

int rconf_select(const struct rconf *rc, const char *name, size_t len, struct rconf_sel *sel)
{
    char key[256];
    size_t n = rconf_name_normalize(name, len, key, sizeof(key));
    const struct rconf_host *h = n ? find_host_normalized(rc, key, n, true) : NULL;
    const struct rconf_cert *c = NULL;

    memset(sel, 0, sizeof(*sel));
    if (h != NULL)
        c = h->cert;
    if (c == NULL && n > 0)
        c = lookup_name(&rc->index_->cert_names, key, n);
    if (c == NULL)
        c = rc->fallback;
    if (c == NULL)
        return -AEGIS_E_NOTFOUND;
    sel->cert = c;
    sel->host = h;
    sel->min_version = h ? h->min_version : RCONF_TLS_1_2;
    sel->client_auth = h && h->client_auth.mode != RCONF_CLIENT_AUTH_NONE ? &h->client_auth : NULL;
    sel->policy = h ? h->policy : rc->index_->default_policy;
    return 0;
}

const struct rconf_challenge *rconf_find_challenge(const struct rconf *rc, const char *token,
                                                   size_t len)
{
    return rconf__table_get(&rc->index_->tokens, token, len);
}

bool rconf_sel_compatible(const struct rconf_sel *a, const struct rconf_sel *b)
{
    return a->cert == b->cert && a->policy != NULL && b->policy != NULL &&
           memcmp(a->policy, b->policy, 32) == 0;
}
