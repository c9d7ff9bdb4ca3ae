/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed last good configuration (lastgood.h).
 */
#include "lastgood.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "aegis/alloc.h"
#include "aegis/envelope.h"
#include "aegis/limits.h"
#include "aegis/store.h"

#define MAGIC "AEGLG1\n"
#define MAGIC_BYTES 8
#define FILE_ID_BYTES 16
#define HEADER_BYTES (MAGIC_BYTES + FILE_ID_BYTES + 4)
#define CHUNK_BYTES AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES
/* The largest file a valid configuration makes: every chunk's envelope and length prefix. */
#define MAX_FILE_BYTES                                                                             \
    (HEADER_BYTES + AEGIS_LIMIT_RCONF_BYTES +                                                      \
     (AEGIS_LIMIT_RCONF_BYTES / CHUNK_BYTES + 1) * (ENVELOPE_OVERHEAD + 4))

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void chunk_aad(const unsigned char *id, uint32_t i, uint32_t n, char *buf, size_t size)
{
    char hex[2 * FILE_ID_BYTES + 1];

    for (size_t k = 0; k < FILE_ID_BYTES; k++)
        snprintf(hex + 2 * k, 3, "%02x", id[k]);
    snprintf(buf, size, "aegis-dataplane/last-good/%s/%u/%u", hex, i, n);
}

static char *file_path(const char *dir)
{
    return aegis_asprintf("%s/%s", dir, DP_LASTGOOD_FILE);
}

int dp_lastgood_save(const char *dir, const struct aegis_keyring *ring, const char *doc, size_t len,
                     struct aegis_err *err)
{
    const struct aegis_masterkey *mk = masterkey_ring_current(ring);
    uint32_t n = (uint32_t)(len / CHUNK_BYTES + (len % CHUNK_BYTES != 0 || len == 0));
    unsigned char *buf = NULL, id[FILE_ID_BYTES];
    size_t cap = HEADER_BYTES + len + n * (ENVELOPE_OVERHEAD + 4), off = 0;
    char *path = file_path(dir), aad[128];
    int r;

    if (mk == NULL) {
        r = aegis_err_set(err, -AEGIS_E_STATE, path, "no master key to seal with");
        goto out;
    }
    if (RAND_bytes(id, sizeof(id)) != 1) {
        r = aegis_err_set(err, -AEGIS_E_CRYPTO, path, "no random bytes for the file id");
        goto out;
    }
    buf = aegis_malloc(cap);
    memcpy(buf, MAGIC, MAGIC_BYTES);
    memcpy(buf + MAGIC_BYTES, id, FILE_ID_BYTES);
    put32(buf + MAGIC_BYTES + FILE_ID_BYTES, n);
    off = HEADER_BYTES;
    for (uint32_t i = 0; i < n; i++) {
        size_t at = (size_t)i * CHUNK_BYTES, clen = len - at < CHUNK_BYTES ? len - at : CHUNK_BYTES;
        unsigned char *env = NULL;
        size_t elen = 0;

        chunk_aad(id, i, n, aad, sizeof(aad));
        r = envelope_seal(mk, aad, doc + at, clen, &env, &elen, err);
        if (r < 0)
            goto out;
        put32(buf + off, (uint32_t)elen);
        memcpy(buf + off + 4, env, elen);
        off += 4 + elen;
        free(env);
    }
    r = store__mkdir_private(dir, err);
    if (r == 0)
        r = store__write_file(path, buf, off, true, err);
out:
    free(buf);
    free(path);
    return r;
}

static int read_all(const char *path, unsigned char **out, size_t *len, struct aegis_err *err)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;

    *out = NULL;
    if (fd < 0)
        return errno == ENOENT
                   ? -ENOENT
                   : aegis_err_set(err, -errno, path, "cannot open: %s", strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE_BYTES) {
        r = aegis_err_set(err, -AEGIS_E_INVALID, path,
                          "not a regular file of at most the configuration size limit");
        goto out;
    }
    buf = aegis_malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = aegis_err_set(err, n < 0 ? -errno : -AEGIS_E_INVALID, path, "cannot read: %s",
                              n < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)n;
    }
    *out = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return r;
}

int dp_lastgood_load(const char *dir, const struct aegis_keyring *ring, char **doc, size_t *len,
                     struct aegis_err *err)
{
    char *path = file_path(dir), aad[128];
    unsigned char *file = NULL, *pt = NULL;
    char *out = NULL;
    size_t flen = 0, off = HEADER_BYTES, olen = 0, ptlen = 0;
    uint32_t n;
    int r;

    *doc = NULL;
    *len = 0;
    r = read_all(path, &file, &flen, err);
    if (r < 0)
        goto out;
    if (flen < HEADER_BYTES || memcmp(file, MAGIC, MAGIC_BYTES) != 0) {
        r = aegis_err_set(err, -AEGIS_E_INVALID, path,
                          "not a sealed last-good configuration; remove it to start without one");
        goto out;
    }
    n = get32(file + MAGIC_BYTES + FILE_ID_BYTES);
    if (n == 0 || n > AEGIS_LIMIT_RCONF_BYTES / CHUNK_BYTES + 1) {
        r = aegis_err_set(err, -AEGIS_E_INVALID, path, "damaged header (chunk count %u)", n);
        goto out;
    }
    out = aegis_malloc(flen + 1); /* the plaintext is shorter than the file */
    for (uint32_t i = 0; i < n; i++) {
        size_t elen = flen - off >= 4 ? get32(file + off) : 0;

        if (flen - off < 4 || elen > flen - off - 4) {
            r = aegis_err_set(err, -AEGIS_E_INVALID, path, "truncated (chunk %u of %u)", i + 1, n);
            goto out;
        }
        chunk_aad(file + MAGIC_BYTES, i, n, aad, sizeof(aad));
        r = envelope_open(ring, aad, file + off + 4, elen, &pt, &ptlen, err);
        if (r < 0) {
            /* envelope_open names the key id or the failure; add the file and the way out. */
            char msg[AEGIS_ERR_MSG_MAX + 64]; /* the message and a hint; aegis_err_set truncates */

            snprintf(msg, sizeof(msg), "%s (is --master-key-file the key it was sealed with?)",
                     err != NULL ? err->msg : aegis_strerror(r));
            aegis_err_set(err, r, path, "%s", msg);
            goto out;
        }
        memcpy(out + olen, pt, ptlen);
        olen += ptlen;
        envelope_free_plaintext(pt, ptlen);
        pt = NULL;
        off += 4 + elen;
    }
    if (off != flen) {
        r = aegis_err_set(err, -AEGIS_E_INVALID, path, "trailing bytes after the last chunk");
        goto out;
    }
    out[olen] = '\0';
    *doc = out;
    *len = olen;
    out = NULL;
out:
    if (out != NULL) {
        OPENSSL_cleanse(out, olen);
        free(out);
    }
    free(file);
    free(path);
    return r;
}

void dp_lastgood_free(char *doc, size_t len)
{
    if (doc == NULL)
        return;
    OPENSSL_cleanse(doc, len);
    free(doc);
}
