/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The master key that seals every private key in the store (AES-256-GCM, see envelope.h), and the
 * key ring used to open envelopes while a rotation is between two keys.
 *
 * Sources, first match wins (docs/store.md):
 *   1. --master-key-file F   (a file of 64 hex characters and an optional newline, mode 0600)
 *   2. AEGIS_MASTER_KEY      (64 hex characters)
 *   3. <state>/master.key    (made on first use, 0600, when no sealed record exists yet)
 * Giving both 1 and 2 is an error (which one is meant is not guessable). A key id names a key
 * without revealing it: the first 8 bytes of SHA-256("aegis-master-key-id/v1" || 0x00 || key).
 */
#ifndef AEGIS_MASTERKEY_H
#define AEGIS_MASTERKEY_H

#include <stdbool.h>
#include <stddef.h>

#include "aegis/err.h"

#define MASTERKEY_BYTES 32
#define MASTERKEY_HEX_LEN 64 /* 2 * MASTERKEY_BYTES */
#define MASTERKEY_ID_BYTES 8
#define MASTERKEY_ID_HEX_LEN 16 /* 2 * MASTERKEY_ID_BYTES */
/* Keys a ring holds: the current one, the next one of a rotation, and a few more to read. */
#define MASTERKEY_RING_MAX 4

#define MASTERKEY_ENV "AEGIS_MASTER_KEY"
/* The new key for `aegisctl store rotate-key` when it is not given as --new-key-file. */
#define MASTERKEY_NEW_ENV "AEGIS_NEW_MASTER_KEY"
#define MASTERKEY_STATE_FILE "master.key"
#define MASTERKEY_STATE_NEXT_FILE "master.key.next"

struct aegis_masterkey {
    unsigned char key[MASTERKEY_BYTES];
    unsigned char id[MASTERKEY_ID_BYTES];
};

/* Where the current key of a ring came from; decides how rotation switches keys. */
enum masterkey_origin {
    MASTERKEY_ORIGIN_NONE,
    MASTERKEY_ORIGIN_FILE,  /* --master-key-file */
    MASTERKEY_ORIGIN_ENV,   /* AEGIS_MASTER_KEY */
    MASTERKEY_ORIGIN_STATE, /* <state>/master.key, generated or earlier */
    MASTERKEY_ORIGIN_MEMORY /* given by the caller (tests, tools) */
};

struct aegis_keyring {
    struct aegis_masterkey keys[MASTERKEY_RING_MAX];
    size_t n; /* keys[0] is the current key (seals); all of them open */
    enum masterkey_origin origin;
    bool has_next; /* <state>/master.key.next was found: a rotation is unfinished */
};

/* Parses exactly 64 hex characters (either case) into mk and computes its id. */
int masterkey_from_hex(struct aegis_masterkey *mk, const char *hex, size_t len,
                       struct aegis_err *err);
/*
 * Reads a key file: 64 hex characters and an optional "\n". Refuses a file readable or writable
 * by group or others, and one that is not a regular file; messages name the path (err->where).
 */
int masterkey_load_file(struct aegis_masterkey *mk, const char *path, struct aegis_err *err);
/* A fresh random key (RAND_bytes). */
int masterkey_generate(struct aegis_masterkey *mk, struct aegis_err *err);
/* Sets mk from 32 raw bytes and computes the id. */
void masterkey_set(struct aegis_masterkey *mk, const unsigned char key[MASTERKEY_BYTES]);
/* buf (>= MASTERKEY_HEX_LEN + 1) receives the key as lowercase hex. */
void masterkey_to_hex(const struct aegis_masterkey *mk, char *buf, size_t size);
/* buf (>= MASTERKEY_ID_HEX_LEN + 1) receives the id as lowercase hex. */
void masterkey_id_hex(const unsigned char id[MASTERKEY_ID_BYTES], char *buf, size_t size);
/* Overwrites the key bytes. */
void masterkey_cleanse(struct aegis_masterkey *mk);
/*
 * Writes mk as "<hex>\n" to path atomically (temp file in the same directory, fsync, then a
 * hard link so an existing file is never replaced unless replace is set, fsync of the
 * directory), mode 0600. Returns -EEXIST when path exists and replace is false.
 */
int masterkey_write_file(const struct aegis_masterkey *mk, const char *path, bool replace,
                         struct aegis_err *err);

void masterkey_ring_init(struct aegis_keyring *ring);
/* Cleanses every key. */
void masterkey_ring_dispose(struct aegis_keyring *ring);
/* Appends mk (copied) unless a key with its id is there; -AEGIS_E_LIMIT when full. */
int masterkey_ring_add(struct aegis_keyring *ring, const struct aegis_masterkey *mk,
                       struct aegis_err *err);
/* The key with this id, or NULL. */
const struct aegis_masterkey *masterkey_ring_find(const struct aegis_keyring *ring,
                                                  const unsigned char id[MASTERKEY_ID_BYTES]);
/* The sealing key, or NULL for an empty ring. */
const struct aegis_masterkey *masterkey_ring_current(const struct aegis_keyring *ring);

/* What masterkey_ring_load looks at; every pointer is borrowed. */
struct masterkey_source {
    const char *state_dir; /* required */
    const char *key_file;  /* --master-key-file, or NULL */
    bool create;           /* make <state>/master.key when no key is found and nothing is sealed */
};

/*
 * Builds the ring from the sources above (AEGIS_MASTER_KEY read from the environment). With the
 * state-directory key, <state>/master.key.next (an unfinished rotation) is added so that every
 * record opens. Without any key: when sealed records exist, an error naming their key id; else,
 * when src->create, a new key is written to <state>/master.key; else -AEGIS_E_NOTFOUND.
 */
int masterkey_ring_load(struct aegis_keyring *ring, const struct masterkey_source *src,
                        struct aegis_err *err);

#endif
