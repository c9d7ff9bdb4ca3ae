/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret references resolved to files (directory mode): <secrets dir>/<ns>/<name>/<key>, the
 * layout of a mounted Kubernetes Secret volume. Reads are bounded and never follow a path part
 * that could climb out of the secrets directory; the buffers may hold keys, so they are cleansed
 * when freed (pki_secret_free).
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "aegis/alloc.h"
#include "aegis/api_types.gen.h"
#include "aegis/limits.h"

/* A path part must name one entry of its directory: no separators, no "." or "..". */
static int part_ok(const char *s)
{
    return s != NULL && *s != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 &&
           strcmp(s, "..") != 0;
}

int secret_read_file(const char *path, const char *what, char **buf, size_t *len,
                     struct aegis_err *err)
{
    int fd = -1, rc = 0;
    struct stat stbuf;
    char *data = NULL;
    size_t size = 0;

    *buf = NULL;
    if (len != NULL)
        *len = 0;
    /* Symlinks are followed: a mounted Secret's keys are links into its ..data directory. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT)
            rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, path, "%s: the file %s does not exist", what,
                               path);
        else
            aegis_err_set(err, rc, path, "%s: cannot open %s: %s", what, path, strerror(-rc));
        goto out;
    }
    if (fstat(fd, &stbuf) != 0) {
        rc = -errno;
        aegis_err_set(err, rc, path, "%s: cannot stat %s: %s", what, path, strerror(-rc));
        goto out;
    }
    if (!S_ISREG(stbuf.st_mode)) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, path, "%s: %s is not a regular file", what, path);
        goto out;
    }
    if (stbuf.st_size > (off_t)AEGIS_LIMIT_SECRET_BYTES) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, path, "%s: %s is %lld bytes, over the limit of %u",
                           what, path, (long long)stbuf.st_size, AEGIS_LIMIT_SECRET_BYTES);
        goto out;
    }
    /* Read up to one byte past the limit, in case the file grew after fstat. */
    data = aegis_malloc(AEGIS_LIMIT_SECRET_BYTES + 2);
    for (;;) {
        ssize_t n = read(fd, data + size, AEGIS_LIMIT_SECRET_BYTES + 1 - size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            aegis_err_set(err, rc, path, "%s: cannot read %s: %s", what, path, strerror(-rc));
            goto out;
        }
        if (n == 0)
            break;
        size += (size_t)n;
        if (size > AEGIS_LIMIT_SECRET_BYTES) {
            rc = aegis_err_set(err, -AEGIS_E_LIMIT, path, "%s: %s is over the limit of %u bytes",
                               what, path, AEGIS_LIMIT_SECRET_BYTES);
            goto out;
        }
    }
    data[size] = '\0';
    *buf = aegis_malloc(size + 1);
    memcpy(*buf, data, size + 1);
    if (len != NULL)
        *len = size;
out:
    if (data != NULL) {
        OPENSSL_cleanse(data, size);
        free(data);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

int secret_read(const char *secrets_dir, const char *ns, const char *name, const char *key,
                char **buf, size_t *len, struct aegis_err *err)
{
    char *path = NULL, *what = NULL;
    int rc;

    *buf = NULL;
    if (len != NULL)
        *len = 0;
    if (!part_ok(ns) || !part_ok(name) || !part_ok(key)) {
        return aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                             "secret reference %s/%s key %s is not valid (each part must be "
                             "non-empty, without '/', and not \".\" or \"..\")",
                             ns ? ns : "", name ? name : "", key ? key : "");
    }
    if (secrets_dir == NULL)
        return aegis_err_set(err, -AEGIS_E_STATE, NULL,
                             "secret %s/%s key %s: no secrets directory is configured", ns, name,
                             key);
    path = aegis_asprintf("%s/%s/%s/%s", secrets_dir, ns, name, key);
    what = aegis_asprintf("secret %s/%s key %s", ns, name, key);
    rc = secret_read_file(path, what, buf, len, err);
    free(path);
    free(what);
    return rc;
}

int secret_read_pem_source(const struct aegis_pem_source *src, const char *ns,
                           const char *secrets_dir, const char *what, char **buf, size_t *len,
                           struct aegis_err *err)
{
    *buf = NULL;
    if (len != NULL)
        *len = 0;
    if (src->pem != NULL) {
        size_t n = strlen(src->pem);
        if (n > AEGIS_LIMIT_SECRET_BYTES)
            return aegis_err_set(err, -AEGIS_E_LIMIT, what, "%s: inline PEM over %u bytes", what,
                                 AEGIS_LIMIT_SECRET_BYTES);
        *buf = aegis_strndup(src->pem, n);
        if (len != NULL)
            *len = n;
        return 0;
    }
    if (src->file != NULL)
        return secret_read_file(src->file, what, buf, len, err);
    if (src->secret_ref.name != NULL) {
        if (src->secret_ref.key == NULL)
            return aegis_err_set(err, -AEGIS_E_INVALID, what, "%s: secretRef needs a key", what);
        return secret_read(secrets_dir, ns, src->secret_ref.name, src->secret_ref.key, buf, len,
                           err);
    }
    return aegis_err_set(err, -AEGIS_E_INVALID, what, "%s: give pem, file or secretRef", what);
}
