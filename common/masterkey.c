/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The master key and the key ring (masterkey.h): parsing and loading keys from the flag, the
 * environment or the state directory, generating the state-directory key on first use, and
 * the ids that name keys in envelopes without revealing them. Key bytes are cleansed from every
 * temporary buffer; no message ever quotes a key or a part of one.
 */
#include "aegis/masterkey.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "aegis/store.h"

/* Domain separation: the id is a hash of the key, never usable as the key or for another hash. */
static const char id_domain[] = "aegis-master-key-id/v1";

void masterkey_set(struct aegis_masterkey *mk, const unsigned char key[MASTERKEY_BYTES])
{
    unsigned char buf[sizeof(id_domain) + MASTERKEY_BYTES];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok;

    memcpy(mk->key, key, MASTERKEY_BYTES);
    /* sizeof(id_domain) includes the NUL, which separates the label from the key. */
    memcpy(buf, id_domain, sizeof(id_domain));
    memcpy(buf + sizeof(id_domain), key, MASTERKEY_BYTES);
    ok = EVP_Digest(buf, sizeof(buf), md, &mdlen, EVP_sha256(), NULL);
    /* SHA-256 of a small buffer fails only when OpenSSL itself is broken. */
    if (ok != 1 || mdlen < MASTERKEY_ID_BYTES)
        abort();
    memcpy(mk->id, md, MASTERKEY_ID_BYTES);
    OPENSSL_cleanse(buf, sizeof(buf));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int from_hex_where(struct aegis_masterkey *mk, const char *hex, size_t len,
                          const char *where, struct aegis_err *err)
{
    unsigned char key[MASTERKEY_BYTES];
    int rc = 0;

    if (len != MASTERKEY_HEX_LEN)
        return aegis_err_set(err, -AEGIS_E_INVALID, where,
                             "a master key is %d hex characters (32 bytes), this one has %zu; "
                             "make one with `openssl rand -hex 32`",
                             MASTERKEY_HEX_LEN, len);
    for (size_t i = 0; i < MASTERKEY_BYTES; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            /* The position only: quoting the character would reveal part of the key. */
            rc = aegis_err_set(err, -AEGIS_E_INVALID, where,
                               "the master key is not hex: character %zu is not one of "
                               "0-9a-fA-F",
                               2 * i + (hi < 0 ? 1 : 2));
            goto out;
        }
        key[i] = (unsigned char)(hi << 4 | lo);
    }
    masterkey_set(mk, key);
out:
    OPENSSL_cleanse(key, sizeof(key));
    return rc;
}

int masterkey_from_hex(struct aegis_masterkey *mk, const char *hex, size_t len,
                       struct aegis_err *err)
{
    return from_hex_where(mk, hex, len, NULL, err);
}

int masterkey_load_file(struct aegis_masterkey *mk, const char *path, struct aegis_err *err)
{
    char buf[AEGIS_LIMIT_MASTERKEY_FILE_BYTES + 1];
    struct stat sb;
    size_t len = 0;
    int fd = -1, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = aegis_err_set(err, -errno, path, "cannot open the master key file: %s",
                           strerror(errno));
        goto out;
    }
    if (fstat(fd, &sb) != 0) {
        rc = aegis_err_set(err, -errno, path, "cannot stat the master key file: %s",
                           strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, path, "the master key file is not a file");
        goto out;
    }
    if ((sb.st_mode & 077) != 0) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, path,
                           "the master key file is accessible by group or others (mode %04o); "
                           "run `chmod 600 %s`",
                           (unsigned)(sb.st_mode & 07777), path);
        goto out;
    }
    while (len < sizeof(buf)) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = aegis_err_set(err, -errno, path, "cannot read the master key file: %s",
                               strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > AEGIS_LIMIT_MASTERKEY_FILE_BYTES) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, path,
                           "the master key file is too long: it should hold %d hex characters "
                           "and an optional newline",
                           MASTERKEY_HEX_LEN);
        goto out;
    }
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    rc = from_hex_where(mk, buf, len, path, err);
out:
    OPENSSL_cleanse(buf, sizeof(buf));
    if (fd >= 0)
        close(fd);
    return rc;
}

int masterkey_generate(struct aegis_masterkey *mk, struct aegis_err *err)
{
    unsigned char key[MASTERKEY_BYTES];

    if (RAND_bytes(key, sizeof(key)) != 1)
        return aegis_err_set(err, -AEGIS_E_CRYPTO, NULL,
                             "the random generator failed to make a master key");
    masterkey_set(mk, key);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

void masterkey_to_hex(const struct aegis_masterkey *mk, char *buf, size_t size)
{
    static const char digits[] = "0123456789abcdef";

    if (size < MASTERKEY_HEX_LEN + 1) {
        if (size > 0)
            buf[0] = '\0';
        return;
    }
    for (size_t i = 0; i < MASTERKEY_BYTES; i++) {
        buf[2 * i] = digits[mk->key[i] >> 4];
        buf[2 * i + 1] = digits[mk->key[i] & 0xf];
    }
    buf[MASTERKEY_HEX_LEN] = '\0';
}

void masterkey_id_hex(const unsigned char id[MASTERKEY_ID_BYTES], char *buf, size_t size)
{
    static const char digits[] = "0123456789abcdef";

    if (size < MASTERKEY_ID_HEX_LEN + 1) {
        if (size > 0)
            buf[0] = '\0';
        return;
    }
    for (size_t i = 0; i < MASTERKEY_ID_BYTES; i++) {
        buf[2 * i] = digits[id[i] >> 4];
        buf[2 * i + 1] = digits[id[i] & 0xf];
    }
    buf[MASTERKEY_ID_HEX_LEN] = '\0';
}

void masterkey_cleanse(struct aegis_masterkey *mk)
{
    OPENSSL_cleanse(mk, sizeof(*mk));
}

int masterkey_write_file(const struct aegis_masterkey *mk, const char *path, bool replace,
                         struct aegis_err *err)
{
    char hex[MASTERKEY_HEX_LEN + 2];
    int rc;

    masterkey_to_hex(mk, hex, sizeof(hex));
    hex[MASTERKEY_HEX_LEN] = '\n';
    hex[MASTERKEY_HEX_LEN + 1] = '\0';
    rc = store__write_file(path, hex, MASTERKEY_HEX_LEN + 1, replace, err);
    OPENSSL_cleanse(hex, sizeof(hex));
    return rc;
}

void masterkey_ring_init(struct aegis_keyring *ring)
{
    memset(ring, 0, sizeof(*ring));
}

void masterkey_ring_dispose(struct aegis_keyring *ring)
{
    OPENSSL_cleanse(ring, sizeof(*ring));
    ring->n = 0;
    ring->origin = MASTERKEY_ORIGIN_NONE;
    ring->has_next = false;
}

const struct aegis_masterkey *masterkey_ring_find(const struct aegis_keyring *ring,
                                                  const unsigned char id[MASTERKEY_ID_BYTES])
{
    for (size_t i = 0; i < ring->n; i++)
        if (CRYPTO_memcmp(ring->keys[i].id, id, MASTERKEY_ID_BYTES) == 0)
            return &ring->keys[i];
    return NULL;
}

const struct aegis_masterkey *masterkey_ring_current(const struct aegis_keyring *ring)
{
    return ring->n > 0 ? &ring->keys[0] : NULL;
}

int masterkey_ring_add(struct aegis_keyring *ring, const struct aegis_masterkey *mk,
                       struct aegis_err *err)
{
    if (masterkey_ring_find(ring, mk->id) != NULL)
        return 0;
    if (ring->n >= MASTERKEY_RING_MAX)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "a key ring holds at most %d keys",
                             MASTERKEY_RING_MAX);
    ring->keys[ring->n++] = *mk;
    return 0;
}

static bool file_exists(const char *path)
{
    struct stat sb;

    return lstat(path, &sb) == 0;
}

/* No key anywhere: refuse when something is sealed (a new key would open none of it). */
static int load_state_key_missing(struct aegis_keyring *ring, const struct masterkey_source *src,
                                  const char *path, struct aegis_err *err)
{
    struct aegis_masterkey mk;
    struct store_id which;
    unsigned char id[MASTERKEY_ID_BYTES];
    char idhex[MASTERKEY_ID_HEX_LEN + 1], idstr[STORE_ID_STR_MAX];
    bool found = false;
    int rc;

    memset(&mk, 0, sizeof(mk));
    rc = store_fs_find_sealed(src->state_dir, &found, id, &which, err);
    if (rc < 0)
        goto out;
    if (found) {
        masterkey_id_hex(id, idhex, sizeof(idhex));
        store_id_format(&which, idstr, sizeof(idstr));
        rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, src->state_dir,
                           "records in %s were sealed with master key id %s (%s, ...) but there "
                           "is no %s there; set AEGIS_MASTER_KEY or --master-key-file to that "
                           "key",
                           src->state_dir, idhex, idstr, MASTERKEY_STATE_FILE);
        goto out;
    }
    if (!src->create) {
        rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, src->state_dir,
                           "no master key: set AEGIS_MASTER_KEY or --master-key-file, or let "
                           "the controller make %s on first run",
                           path);
        goto out;
    }
    rc = store__mkdir_private(src->state_dir, err);
    if (rc < 0)
        goto out;
    rc = masterkey_generate(&mk, err);
    if (rc < 0)
        goto out;
    rc = masterkey_write_file(&mk, path, false, err);
    if (rc == -EEXIST) {
        /* Another process made it first: use theirs, so both seal with one key. */
        rc = masterkey_load_file(&mk, path, err);
    }
    if (rc < 0)
        goto out;
    rc = masterkey_ring_add(ring, &mk, err);
out:
    masterkey_cleanse(&mk);
    return rc;
}

int masterkey_ring_load(struct aegis_keyring *ring, const struct masterkey_source *src,
                        struct aegis_err *err)
{
    struct aegis_masterkey mk;
    const char *env = getenv(MASTERKEY_ENV);
    char *path = NULL, *next = NULL;
    int rc = 0;

    masterkey_ring_init(ring);
    memset(&mk, 0, sizeof(mk));
    if (env != NULL && env[0] == '\0')
        env = NULL;
    if (src->key_file != NULL && env != NULL) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "both %s and --master-key-file are set; give the master key once",
                           MASTERKEY_ENV);
        goto out;
    }
    if (src->key_file != NULL) {
        rc = masterkey_load_file(&mk, src->key_file, err);
        if (rc < 0)
            goto out;
        ring->origin = MASTERKEY_ORIGIN_FILE;
        rc = masterkey_ring_add(ring, &mk, err);
        goto out;
    }
    if (env != NULL) {
        rc = from_hex_where(&mk, env, strlen(env), MASTERKEY_ENV, err);
        if (rc < 0)
            goto out;
        ring->origin = MASTERKEY_ORIGIN_ENV;
        rc = masterkey_ring_add(ring, &mk, err);
        goto out;
    }
    path = aegis_asprintf("%s/%s", src->state_dir, MASTERKEY_STATE_FILE);
    next = aegis_asprintf("%s/%s", src->state_dir, MASTERKEY_STATE_NEXT_FILE);
    if (file_exists(path)) {
        rc = masterkey_load_file(&mk, path, err);
        if (rc == 0)
            rc = masterkey_ring_add(ring, &mk, err);
    } else {
        rc = load_state_key_missing(ring, src, path, err);
    }
    if (rc < 0)
        goto out;
    ring->origin = MASTERKEY_ORIGIN_STATE;
    /* An interrupted rotation left records sealed with the next key: they must open too. */
    if (file_exists(next)) {
        rc = masterkey_load_file(&mk, next, err);
        if (rc == 0)
            rc = masterkey_ring_add(ring, &mk, err);
        if (rc < 0)
            goto out;
        ring->has_next = true;
    }
out:
    masterkey_cleanse(&mk);
    free(path);
    free(next);
    if (rc < 0)
        masterkey_ring_dispose(ring);
    return rc;
}
