/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What common/rconf.c (parsing) and common/rconf_lookup.c (hash tables and lookups) share, and no
 * one else: the tables of a snapshot. Cross-file internals carry the rconf__ prefix.
 */
#ifndef AEGIS_RCONF_INTERNAL_H
#define AEGIS_RCONF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Open addressing with linear probing over a power-of-two array; keys are borrowed from the
 * snapshot. Lookups come from peers (server names, Host headers, tokens) but never insert, so the
 * layout is fixed by the configuration and a peer cannot degrade it.
 */
struct rconf_slot {
    uint64_t hash;
    const void *key; /* NULL: empty */
    size_t klen;
    void *val;
};

struct rconf_table {
    struct rconf_slot *slots;
    size_t cap; /* 0 or a power of two */
    size_t n;
};

struct rconf_index {
    struct rconf_table host_names;    /* hostname or "*.suffix" -> struct rconf_host */
    struct rconf_table host_ids;      /* Host resource name -> struct rconf_host */
    struct rconf_table cert_names;    /* SAN of a stored certificate -> struct rconf_cert */
    struct rconf_table cert_ids;      /* stored certificate name -> struct rconf_stored_cert */
    struct rconf_table certs;         /* digest -> every struct rconf_cert of the snapshot */
    struct rconf_table tokens;        /* ACME token -> struct rconf_challenge */
    unsigned char default_policy[32]; /* the policy of names no TLS host serves */
};

/* The value of key, or NULL. */
void *rconf__table_get(const struct rconf_table *t, const void *key, size_t len);
/* Inserts key -> val unless key is present; returns the value already there, or NULL. */
void *rconf__table_put(struct rconf_table *t, const void *key, size_t len, void *val);
/* Replaces the value of a present key. */
void rconf__table_set(struct rconf_table *t, const void *key, size_t len, void *val);
void rconf__table_dispose(struct rconf_table *t);

#endif
