/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: where certificates, their private keys and the issuers' keys (local CA, ACME
 * accounts) are kept. One interface (struct store_ops, a vtable) with backends behind it: the
 * filesystem backend here (store_fs.c, under the state directory) and, later, Kubernetes Secrets.
 *
 * A record is named by (kind, namespace, name) and holds
 *   - the certificate chain PEM, leaf first (public, kept in plain text; may be absent),
 *   - an optional CSR PEM (public; the CSR flow keeps it until the signed certificate comes),
 *   - the private key PEM, only ever kept sealed (envelope.h) with the associated data
 *     "<kind>/<namespace>/<name>/tls.key", so it cannot be moved to another record,
 *   - metadata, readable without opening any key (store_get_meta): SANs, issuer, serial,
 *     validity, SHA-256 fingerprint, source, revision, updatedAt, and free-form public "extra"
 *     JSON for an issuer's own non-secret state.
 * A put that changes the certificate keeps the previous one (with its sealed key) in the
 * record's history until it expires, so in-flight users of the old certificate keep working;
 * store_history_prune drops expired entries against an injected clock.
 *
 * All functions return 0 or a negative code (err.h) and fill err when given. Nothing here
 * prints; no message ever contains key material.
 */
#ifndef AEGIS_STORE_H
#define AEGIS_STORE_H

#include <jansson.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"

/* Record kinds in use; a kind is 1-31 of [a-z0-9-]. */
#define STORE_KIND_CERTIFICATE "certificate"
#define STORE_KIND_CA "ca"
#define STORE_KIND_ACME_ACCOUNT "acme-account"
/* An ACME order in flight: its URLs in meta.extra, the new private key sealed (issuer/acme.h). */
#define STORE_KIND_ACME_ORDER "acme-order"

/* The default state directory and the environment variable that overrides it. */
#define STORE_STATE_DIR_DEFAULT "./.aegis"
#define STORE_STATE_DIR_ENV "AEGIS_STATE_DIR"

#define STORE_KIND_MAX 31
#define STORE_NS_MAX 63
#define STORE_NAME_MAX 253
/* "kind/ns/name" plus a NUL. */
#define STORE_ID_STR_MAX (STORE_KIND_MAX + STORE_NS_MAX + STORE_NAME_MAX + 3)

/* The one sealed field of a record, as named in its associated data. */
#define STORE_FIELD_KEY "tls.key"

/*
 * A record's name. namespace and name are 1-253 (namespace 1-63) of [A-Za-z0-9._-], not
 * starting with '.'; build one with store_id_set or store_id_parse, which check it.
 */
struct store_id {
    char kind[STORE_KIND_MAX + 1];
    char ns[STORE_NS_MAX + 1];
    char name[STORE_NAME_MAX + 1];
};

/* Public facts about a record's certificate. Every pointer is owned (store_meta_dispose). */
struct store_meta {
    char **dns_names; /* subjectAltName DNS entries, in certificate order */
    size_t n_dns_names;
    char **ip_addresses; /* subjectAltName IP entries, textual */
    size_t n_ip_addresses;
    char *subject;        /* one-line DN (RFC 2253 order), NULL without a certificate */
    char *issuer;         /* one-line DN of the issuer */
    char *serial;         /* uppercase hex, no separators */
    int64_t not_before;   /* unix seconds; 0 without a certificate */
    int64_t not_after;    /* unix seconds; 0 without a certificate */
    char fingerprint[65]; /* SHA-256 of the leaf's DER, lowercase hex; "" without one */
    char *source;         /* who made it: "ca", "selfSigned", "custom", "csr", "acme", ... */
    uint64_t revision;    /* set by store_put: the previous revision + 1, from 1 */
    int64_t updated_at;   /* unix seconds; store_put uses the caller's value, or now if 0 */
    json_t *extra;        /* a JSON object of public issuer state, or NULL; owned */
};

struct store_record {
    char *chain_pem; /* certificate chain, leaf first; NULL when none yet */
    char *csr_pem;   /* NULL when none */
    char *key_pem;   /* private key PEM, plain text in memory only; NULL when none */
    struct store_meta meta;
};

struct store;

/* A backend. Every entry is required; the store_* functions below check arguments first. */
struct store_ops {
    const char *name; /* "fs" */
    void (*close)(struct store *st);
    int (*put)(struct store *st, const struct store_id *id, const struct store_record *rec,
               struct aegis_err *err);
    /* with_key false: the key is not opened and rec->key_pem stays NULL. */
    int (*get)(struct store *st, const struct store_id *id, bool with_key, struct store_record *rec,
               struct aegis_err *err);
    int (*get_meta)(struct store *st, const struct store_id *id, struct store_meta *meta,
                    struct aegis_err *err);
    int (*list)(struct store *st, const char *kind, struct store_id **ids, size_t *n,
                struct aegis_err *err);
    int (*del)(struct store *st, const struct store_id *id, struct aegis_err *err);
    int (*history_list)(struct store *st, const struct store_id *id, struct store_meta **metas,
                        size_t *n, struct aegis_err *err);
    int (*history_get)(struct store *st, const struct store_id *id, uint64_t revision,
                       struct store_record *rec, struct aegis_err *err);
    int (*history_prune)(struct store *st, const struct store_id *id, int64_t now, size_t *removed,
                         struct aegis_err *err);
    int (*rotate_key)(struct store *st, const struct aegis_masterkey *new_key,
                      int (*progress)(void *arg, const struct store_id *id, size_t done), void *arg,
                      struct aegis_err *err);
};

/* The part every backend's handle starts with. */
struct store {
    const struct store_ops *ops;
    struct aegis_keyring ring; /* a copy; cleansed on close */
};

/* ---- ids ---- */

/* Checks and copies the three parts; -AEGIS_E_INVALID with a message naming the bad part. */
int store_id_set(struct store_id *id, const char *kind, const char *ns, const char *name,
                 struct aegis_err *err);
/* Parses "kind/namespace/name". */
int store_id_parse(struct store_id *id, const char *s, struct aegis_err *err);
/* Writes "kind/namespace/name" into buf (STORE_ID_STR_MAX bytes are always enough). */
void store_id_format(const struct store_id *id, char *buf, size_t size);
/* strcmp-style order: kind, then namespace, then name. */
int store_id_cmp(const struct store_id *a, const struct store_id *b);

/* ---- records and metadata (caller's storage) ---- */

void store_meta_init(struct store_meta *meta);
void store_meta_dispose(struct store_meta *meta);
/* Deep copy of src into dst (initialised here). */
void store_meta_copy(struct store_meta *dst, const struct store_meta *src);
/* Frees an array of n metas from store_history_list (each disposed); accepts NULL. */
void store_meta_array_free(struct store_meta *metas, size_t n);
/*
 * Fills the certificate facts of meta (SANs, subject, issuer, serial, validity, fingerprint)
 * from cert, replacing earlier values; source, revision, updated_at and extra are untouched.
 */
int store_meta_from_x509(struct store_meta *meta, X509 *cert, struct aegis_err *err);
/* Same, from the first certificate of a PEM chain. */
int store_meta_from_pem(struct store_meta *meta, const char *chain_pem, struct aegis_err *err);

void store_record_init(struct store_record *rec);
/* Cleanses the key and frees everything. */
void store_record_dispose(struct store_record *rec);

/* ---- the store ---- */

/* The state directory: $AEGIS_STATE_DIR when set and non-empty, else "./.aegis". */
const char *store_state_dir_default(void);

/*
 * Opens (creating it 0700 when missing) the filesystem store under state_dir; ring is copied.
 * Fails early with a clear message when a sealed record in the directory names a key id the
 * ring does not hold. ring may be NULL or empty for metadata-only use (list, get_meta): then
 * puts of a key and opening keys fail. The store holds a shared lock on the directory until
 * store_close (rotation needs it exclusively). *st is freed by store_close.
 */
int store_open_fs(const char *state_dir, const struct aegis_keyring *ring, struct store **st,
                  struct aegis_err *err);
/* Closes and frees; accepts NULL. */
void store_close(struct store *st);
/*
 * The state directory of a store from store_open_fs (borrowed, valid until store_close), for
 * files kept beside the store such as the local CA's lock; NULL for a store of another backend.
 */
const char *store_fs_state_dir(const struct store *st);

/*
 * Writes the record (borrowed): the chain and CSR as given, the key sealed under the current
 * master key, the metadata as given except revision (previous + 1) and updated_at (now when 0).
 * When the record existed with a certificate of another fingerprint, that version moves to the
 * history. The write is atomic: a reader sees the old record or the new one.
 */
int store_put(struct store *st, const struct store_id *id, const struct store_record *rec,
              struct aegis_err *err);
/* Reads and opens a record into rec (initialised here); -AEGIS_E_NOTFOUND when absent. */
int store_get(struct store *st, const struct store_id *id, struct store_record *rec,
              struct aegis_err *err);
/* Reads the chain, CSR and metadata (rec initialised here) without opening the key. */
int store_get_public(struct store *st, const struct store_id *id, struct store_record *rec,
                     struct aegis_err *err);
/* Reads only the metadata (initialised here); never opens a key. */
int store_get_meta(struct store *st, const struct store_id *id, struct store_meta *meta,
                   struct aegis_err *err);
/*
 * Lists the records of kind (every kind when NULL), sorted by store_id_cmp. *ids (the caller
 * frees it with free()) holds *n ids; NULL when there are none.
 */
int store_list(struct store *st, const char *kind, struct store_id **ids, size_t *n,
               struct aegis_err *err);
/* Removes a record and its history; -AEGIS_E_NOTFOUND when absent. */
int store_delete(struct store *st, const struct store_id *id, struct aegis_err *err);
/* The metadata of every history entry of id, oldest revision first (store_meta_array_free). */
int store_history_list(struct store *st, const struct store_id *id, struct store_meta **metas,
                       size_t *n, struct aegis_err *err);
/* Reads and opens the history entry with that revision. */
int store_history_get(struct store *st, const struct store_id *id, uint64_t revision,
                      struct store_record *rec, struct aegis_err *err);
/*
 * Drops history entries of id (every record when id is NULL) whose notAfter <= now (unix
 * seconds). *removed (may be NULL) receives how many were dropped.
 */
int store_history_prune(struct store *st, const struct store_id *id, int64_t now, size_t *removed,
                        struct aegis_err *err);

/*
 * Re-seals every key of every record and history entry under new_key, one atomic rewrite at a
 * time; every record opens at every moment with a ring holding the old and the new key.
 * For a ring from <state>/master.key: new_key (or, when NULL, a key generated here) is first
 * written to <state>/master.key.next, and only after the last record does it replace
 * master.key. A found master.key.next (an interrupted rotation) is reused and new_key must be
 * NULL or equal to it. For a key from outside the state directory new_key is required and the
 * caller switches AEGIS_MASTER_KEY / --master-key-file afterwards.
 * progress (may be NULL) is called with done = 0 once the new key is safe, then after each
 * rewrite; a non-zero return stops the rotation with that code (it can be resumed).
 * On success the store seals with the new key from then on.
 */
int store_rotate_key(struct store *st, const struct aegis_masterkey *new_key,
                     int (*progress)(void *arg, const struct store_id *id, size_t done), void *arg,
                     struct aegis_err *err);

/*
 * For masterkey_ring_load: whether any sealed record exists under state_dir, and the key id and
 * record of the first one found. Returns 0 (with *found set) or a negative code.
 */
int store_fs_find_sealed(const char *state_dir, bool *found, unsigned char id[MASTERKEY_ID_BYTES],
                         struct store_id *which, struct aegis_err *err);

/* ---- for backends (store.c) ---- */

/* The associated data of a sealed field: "<kind>/<ns>/<name>/<field>". */
void store__aad(const struct store_id *id, const char *field, char *buf, size_t size);
/* Metadata to and from the JSON object of the on-disk/Secret form. */
json_t *store__meta_to_json(const struct store_meta *meta);
int store__meta_from_json(struct store_meta *meta, const json_t *obj, struct aegis_err *err);
/* Checks an id's parts (a backend builds paths or object names from them). */
int store__id_check(const struct store_id *id, struct aegis_err *err);

/* ---- files (store_fs.c; masterkey.c uses them for key files) ---- */

/*
 * Writes len bytes to path atomically, mode 0600 whatever the umask: a temp file in the same
 * directory, fsync, then rename (replace) or link (!replace: -EEXIST when path exists), then
 * fsync of the directory.
 */
/*
 * The same with flags: STORE_WRITE_REPLACE as replace above; STORE_WRITE_NO_SYNC skips both
 * fsyncs, for derived files that are rebuilt after a crash (status files): still atomic (a
 * reader sees the old or the new file), only not durable.
 */
#define STORE_WRITE_REPLACE 0x1u
#define STORE_WRITE_NO_SYNC 0x2u
int store__write_file_flags(const char *path, const void *data, size_t len, unsigned flags,
                            struct aegis_err *err);
int store__write_file(const char *path, const void *data, size_t len, bool replace,
                      struct aegis_err *err);
/* Creates dir and its missing parents with mode 0700 (existing ones are left as they are). */
int store__mkdir_private(const char *dir, struct aegis_err *err);
/* fsyncs the directory that holds path, so a rename or link in it is durable. */
int store__fsync_parent(const char *path, struct aegis_err *err);

#endif
