/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sealed last good configuration (lastgood.h).
 */
#include "lastgood.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
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
#include "log.h"

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

/* ---- the saver --------------------------------------------------------------------------------- */

struct dp_lastgood_saver {
    const char *dir;
    const struct aegis_keyring *ring;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char *pending; /* the newest document not written yet; NULL: none */
    size_t pending_len;
    bool writing; /* the thread is writing a document */
    bool stop;
    char error[AEGIS_ERR_MSG_MAX + AEGIS_ERR_WHERE_MAX + 8]; /* of the last write; "" */
};

static void *saver_run(void *arg)
{
    struct dp_lastgood_saver *s = arg;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        char *doc;
        size_t len;
        struct aegis_err err;
        int r;

        while (s->pending == NULL && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->pending == NULL)
            break; /* stopping with nothing left to write */
        doc = s->pending;
        len = s->pending_len;
        s->pending = NULL;
        s->writing = true;
        pthread_mutex_unlock(&s->lock);

        memset(&err, 0, sizeof(err));
        r = dp_lastgood_save(s->dir, s->ring, doc, len, &err);
        dp_lastgood_free(doc, len);
        if (r < 0)
            dp_log(DP_LOG_ERROR, "last good configuration not saved: %s: %s", err.where, err.msg);

        pthread_mutex_lock(&s->lock);
        s->writing = false;
        if (r < 0)
            snprintf(s->error, sizeof(s->error), "%s: %s", err.where, err.msg);
        else
            s->error[0] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int dp_lastgood_saver_new(const char *dir, const struct aegis_keyring *ring,
                          struct dp_lastgood_saver **out, struct aegis_err *err)
{
    struct dp_lastgood_saver *s = aegis_calloc(1, sizeof(*s));
    int r;

    s->dir = dir;
    s->ring = ring;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    r = pthread_create(&s->thread, NULL, saver_run, s);
    if (r != 0) {
        pthread_cond_destroy(&s->cond);
        pthread_mutex_destroy(&s->lock);
        free(s);
        return aegis_err_set(err, -r, dir, "cannot start the last good saver: %s", strerror(r));
    }
    *out = s;
    return 0;
}

void dp_lastgood_saver_submit(struct dp_lastgood_saver *s, const char *doc, size_t len)
{
    char *copy = aegis_malloc(len + 1);

    memcpy(copy, doc, len);
    copy[len] = '\0';
    pthread_mutex_lock(&s->lock);
    dp_lastgood_free(s->pending, s->pending_len);
    s->pending = copy;
    s->pending_len = len;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

const char *dp_lastgood_saver_state(struct dp_lastgood_saver *s, char *err, size_t errsize)
{
    const char *state;

    pthread_mutex_lock(&s->lock);
    err[0] = '\0';
    if (s->pending != NULL || s->writing) {
        state = "saving";
    } else if (s->error[0] != '\0') {
        state = "error";
        snprintf(err, errsize, "%s", s->error);
    } else {
        state = "saved";
    }
    pthread_mutex_unlock(&s->lock);
    return state;
}

void dp_lastgood_saver_free(struct dp_lastgood_saver *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}
