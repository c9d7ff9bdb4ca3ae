/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The filesystem store backend (store.h), under the state directory:
 *
 *   <state>/master.key                       the generated master key (masterkey.c), 0600
 *   <state>/master.key.next                  the next key while a rotation runs
 *   <state>/store/.lock                      flock: shared while a store is open, exclusive
 *                                            while a rotation runs
 *   <state>/store/<kind>/<ns>/<name>/current.json
 *   <state>/store/<kind>/<ns>/<name>/history/<revision>.json
 *
 * A record file is one JSON object: the identity, the metadata, the chain and CSR PEM, and the
 * sealed key as a base64 envelope. One file per version means one atomic rename publishes a
 * whole version. Directories are 0700 and files 0600 whatever the umask (chmod after create).
 * See docs/store.md for the format and the rotation procedure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aegis/alloc.h"
#include "aegis/envelope.h"
#include "aegis/limits.h"
#include "aegis/store.h"

#define STORE_FORMAT 1
#define STORE_SUBDIR "store"
#define CURRENT_FILE "current.json"
#define HISTORY_DIR "history"
#define LOCK_FILE ".lock"
/* Marks a rotation to a key kept outside the state directory; holds the new key's id only. */
#define ROTATING_FILE "master.key.rotating"

struct store_fs {
    struct store base; /* first: a struct store * is a struct store_fs * */
    char *dir;         /* the state directory */
    char *root;        /* <dir>/store */
    int lockfd;
};

/* ---- files --------------------------------------------------------------------------------- */

static char *dirname_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return aegis_strdup(".");
    if (slash == path)
        return aegis_strdup("/");
    return aegis_strndup(path, (size_t)(slash - path));
}

int store__fsync_parent(const char *path, struct aegis_err *err)
{
    char *dir = dirname_of(path);
    int fd, rc = 0;

    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = aegis_err_set(err, -errno, dir, "cannot sync the directory: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;

    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int store__write_file(const char *path, const void *data, size_t len, bool replace,
                      struct aegis_err *err)
{
    return store__write_file_flags(path, data, len, replace ? STORE_WRITE_REPLACE : 0, err);
}

int store__write_file_flags(const char *path, const void *data, size_t len, unsigned flags,
                            struct aegis_err *err)
{
    bool replace = (flags & STORE_WRITE_REPLACE) != 0, sync = (flags & STORE_WRITE_NO_SYNC) == 0;
    const char *slash = strrchr(path, '/');
    char *dir = dirname_of(path);
    char *tmp = aegis_asprintf("%s/.%s.tmp.XXXXXX", dir, slash ? slash + 1 : path);
    int fd = -1, rc = 0;

    fd = mkstemp(tmp);
    if (fd < 0) {
        rc =
            aegis_err_set(err, -errno, path, "cannot create a temporary file: %s", strerror(errno));
        free(tmp);
        tmp = NULL;
        goto out;
    }
    /* mkstemp makes 0600 less the umask; set it exactly. */
    if (fchmod(fd, 0600) != 0) {
        rc = aegis_err_set(err, -errno, path, "cannot chmod: %s", strerror(errno));
        goto out;
    }
    rc = write_all(fd, data, len);
    if (rc < 0) {
        aegis_err_set(err, rc, path, "cannot write: %s", strerror(-rc));
        goto out;
    }
    if (sync && fsync(fd) != 0) {
        rc = aegis_err_set(err, -errno, path, "cannot sync: %s", strerror(errno));
        goto out;
    }
    close(fd);
    fd = -1;
    if (replace) {
        if (rename(tmp, path) != 0) {
            rc = aegis_err_set(err, -errno, path, "cannot rename into place: %s", strerror(errno));
            goto out;
        }
        free(tmp);
        tmp = NULL;
    } else if (link(tmp, path) != 0) {
        /* link, unlike rename, never replaces: the first writer of a new file wins. */
        rc = errno == EEXIST
                 ? -EEXIST
                 : aegis_err_set(err, -errno, path, "cannot link into place: %s", strerror(errno));
        goto out;
    }
    if (sync)
        rc = store__fsync_parent(path, err);
out:
    if (fd >= 0)
        close(fd);
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    free(dir);
    return rc;
}

static int mkdir_one(const char *path, struct aegis_err *err)
{
    struct stat sb;

    if (mkdir(path, 0700) == 0) {
        /* mkdir applies the umask; 0700 exactly is wanted. */
        if (chmod(path, 0700) != 0)
            return aegis_err_set(err, -errno, path, "cannot chmod: %s", strerror(errno));
        return 1;
    }
    if (errno != EEXIST)
        return aegis_err_set(err, -errno, path, "cannot create the directory: %s", strerror(errno));
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return aegis_err_set(err, -ENOTDIR, path, "exists and is not a directory");
    return 0;
}

int store__mkdir_private(const char *dir, struct aegis_err *err)
{
    char *p = aegis_strdup(dir);
    int rc = 0, made = 0;

    for (char *s = p + 1; *s != '\0'; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        rc = mkdir_one(p, err);
        *s = '/';
        if (rc < 0)
            goto out;
        made |= rc;
    }
    rc = mkdir_one(p, err);
    if (rc < 0)
        goto out;
    made |= rc;
    rc = made ? store__fsync_parent(p, err) : 0;
out:
    free(p);
    return rc;
}

/* Reads a whole regular file of at most max bytes (not following a final symlink). */
static int read_file(const char *path, size_t max, char **data, size_t *len, struct aegis_err *err)
{
    struct stat sb;
    char *buf = NULL;
    size_t got = 0;
    int fd, rc = 0;

    *data = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return -AEGIS_E_NOTFOUND;
        return aegis_err_set(err, -errno, path, "cannot open: %s", strerror(errno));
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, path, "not a regular file");
        goto out;
    }
    if ((size_t)sb.st_size > max) {
        rc = aegis_err_set(err, -AEGIS_E_LIMIT, path, "larger than the %zu-byte limit", max);
        goto out;
    }
    buf = aegis_malloc((size_t)sb.st_size + 1);
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb.st_size - got);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = aegis_err_set(err, -errno, path, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

/* ---- base64 (one line, no newlines) -------------------------------------------------------- */

static char *b64_encode(const unsigned char *in, size_t n)
{
    char *out = aegis_malloc(4 * ((n + 2) / 3) + 1);

    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

static int b64_decode(const char *in, unsigned char **out, size_t *outlen)
{
    size_t n = strlen(in), pad = 0;
    unsigned char *buf;
    int r;

    *out = NULL;
    *outlen = 0;
    if (n == 0 || n % 4 != 0 || n > 2 * AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES)
        return -AEGIS_E_INVALID;
    if (in[n - 1] == '=')
        pad++;
    if (in[n - 2] == '=')
        pad++;
    buf = aegis_malloc(n / 4 * 3 + 1);
    r = EVP_DecodeBlock(buf, (const unsigned char *)in, (int)n);
    if (r < 0 || (size_t)r < pad) {
        free(buf);
        return -AEGIS_E_INVALID;
    }
    *out = buf;
    *outlen = (size_t)r - pad;
    return 0;
}

/* ---- paths --------------------------------------------------------------------------------- */

static char *record_dir(const struct store_fs *fs, const struct store_id *id)
{
    return aegis_asprintf("%s/%s/%s/%s", fs->root, id->kind, id->ns, id->name);
}

static char *current_path(const struct store_fs *fs, const struct store_id *id)
{
    return aegis_asprintf("%s/%s/%s/%s/" CURRENT_FILE, fs->root, id->kind, id->ns, id->name);
}

static char *history_dir(const struct store_fs *fs, const struct store_id *id)
{
    return aegis_asprintf("%s/%s/%s/%s/" HISTORY_DIR, fs->root, id->kind, id->ns, id->name);
}

static char *history_path(const struct store_fs *fs, const struct store_id *id, uint64_t rev)
{
    return aegis_asprintf("%s/%s/%s/%s/" HISTORY_DIR "/%llu.json", fs->root, id->kind, id->ns,
                          id->name, (unsigned long long)rev);
}

/* ---- record files -------------------------------------------------------------------------- */

/* Loads and checks a record file: -AEGIS_E_NOTFOUND when absent, else it must name id. */
static int load_record(const char *path, const struct store_id *id, json_t **out,
                       struct aegis_err *err)
{
    json_error_t jerr;
    json_t *root = NULL;
    char *data = NULL;
    size_t len = 0;
    int rc;

    *out = NULL;
    rc = read_file(path, AEGIS_LIMIT_STORE_RECORD_BYTES, &data, &len, err);
    if (rc < 0)
        goto out;
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL || !json_is_object(root)) {
        rc = aegis_err_set(err, -AEGIS_E_SYNTAX, path, "the record file is not a JSON object: %s",
                           root ? "" : jerr.text);
        goto out;
    }
    if (json_integer_value(json_object_get(root, "format")) != STORE_FORMAT) {
        rc = aegis_err_set(err, -AEGIS_E_UNSUPPORTED, path,
                           "the record file has an unknown format (this build reads format %d)",
                           STORE_FORMAT);
        goto out;
    }
    /* The path names the record; a file copied under another name is refused. */
    if (id != NULL && (!json_is_string(json_object_get(root, "kind")) ||
                       !json_is_string(json_object_get(root, "namespace")) ||
                       !json_is_string(json_object_get(root, "name")) ||
                       strcmp(json_string_value(json_object_get(root, "kind")), id->kind) != 0 ||
                       strcmp(json_string_value(json_object_get(root, "namespace")), id->ns) != 0 ||
                       strcmp(json_string_value(json_object_get(root, "name")), id->name) != 0)) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, path,
                           "the record file names another record than its path");
        goto out;
    }
    *out = root;
    root = NULL;
out:
    json_decref(root);
    free(data);
    return rc;
}

static int dump_record(const char *path, const json_t *root, bool replace, struct aegis_err *err)
{
    char *text = json_dumps(root, JSON_INDENT(2));
    int rc;

    if (text == NULL)
        return aegis_err_set(err, -AEGIS_E_INVALID, path, "cannot encode the record as JSON");
    /* Refused now rather than written and then unreadable. */
    if (strlen(text) > AEGIS_LIMIT_STORE_RECORD_BYTES) {
        free(text);
        return aegis_err_set(err, -AEGIS_E_LIMIT, path,
                             "the record would be larger than the %zu-byte limit",
                             AEGIS_LIMIT_STORE_RECORD_BYTES);
    }
    rc = store__write_file(path, text, strlen(text), replace, err);
    free(text);
    return rc;
}

/* The sealed field's envelope bytes, or NULL (rc 0) when the record has no such field. */
static int sealed_bytes(const json_t *root, const char *field, const char *path,
                        unsigned char **env, size_t *len, struct aegis_err *err)
{
    const json_t *sealed = json_object_get(root, "sealed"), *val;

    *env = NULL;
    *len = 0;
    if (sealed == NULL)
        return 0;
    val = json_object_get(sealed, field);
    if (val == NULL)
        return 0;
    if (!json_is_string(val) || b64_decode(json_string_value(val), env, len) < 0)
        return aegis_err_set(err, -AEGIS_E_INVALID, path, "sealed.%s is not a base64 envelope",
                             field);
    return 0;
}

static bool rotating_marker(const struct store_fs *fs, char *idhex, size_t size)
{
    char *path = aegis_asprintf("%s/" ROTATING_FILE, fs->dir);
    char *data = NULL;
    size_t len = 0;
    bool found = read_file(path, 64, &data, &len, NULL) == 0;

    if (found)
        snprintf(idhex, size, "%.*s", (int)strcspn(data, "\n"), data);
    free(data);
    free(path);
    return found;
}

/* Opens the sealed key of a loaded record; *key_pem is NULL when the record has none. */
static int open_key(struct store_fs *fs, const struct store_id *id, const json_t *root,
                    const char *path, char **key_pem, struct aegis_err *err)
{
    unsigned char *env = NULL, *pt = NULL;
    char aad[STORE_ID_STR_MAX + 16], next[MASTERKEY_ID_HEX_LEN + 1];
    size_t envlen = 0, ptlen = 0;
    int rc;

    *key_pem = NULL;
    rc = sealed_bytes(root, STORE_FIELD_KEY, path, &env, &envlen, err);
    if (rc < 0 || env == NULL)
        goto out;
    store__aad(id, STORE_FIELD_KEY, aad, sizeof(aad));
    rc = envelope_open(&fs->base.ring, aad, env, envlen, &pt, &ptlen, err);
    if (rc == -AEGIS_E_NOTFOUND && err != NULL && rotating_marker(fs, next, sizeof(next))) {
        size_t used = strlen(err->msg);

        snprintf(err->msg + used, sizeof(err->msg) - used,
                 " (a rotation to master key id %s was interrupted: re-run `aegisctl store "
                 "rotate-key --new-key-file FILE` with that key to finish it)",
                 next);
    }
    if (rc < 0)
        goto out;
    /* A key PEM is text; an embedded NUL would silently truncate it. */
    if (strlen((char *)pt) != ptlen) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, aad, "the sealed key is not PEM text");
        goto out;
    }
    *key_pem = (char *)pt;
    pt = NULL;
out:
    envelope_free_plaintext(pt, ptlen);
    free(env);
    return rc;
}

static char *json_str_dup(const json_t *root, const char *key)
{
    const json_t *v = json_object_get(root, key);

    return json_is_string(v) ? aegis_strdup(json_string_value(v)) : NULL;
}

static int decode_record(struct store_fs *fs, const struct store_id *id, const json_t *root,
                         const char *path, bool with_key, struct store_record *rec,
                         struct aegis_err *err)
{
    int rc;

    store_record_init(rec);
    rc = store__meta_from_json(&rec->meta, json_object_get(root, "meta"), err);
    if (rc < 0)
        return rc;
    rec->chain_pem = json_str_dup(root, "certificate");
    rec->csr_pem = json_str_dup(root, "csr");
    if (!with_key)
        return 0;
    rc = open_key(fs, id, root, path, &rec->key_pem, err);
    if (rc < 0)
        store_record_dispose(rec);
    return rc;
}

/* ---- walking the records ------------------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted entry names of a directory that are valid record name parts (no dot files). */
static int list_dir(const char *path, char ***names, size_t *n, struct aegis_err *err)
{
    DIR *d = opendir(path);
    struct dirent *de;
    size_t cap = 0;

    *names = NULL;
    *n = 0;
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return aegis_err_set(err, -errno, path, "cannot read the directory: %s", strerror(errno));
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || strlen(de->d_name) > STORE_NAME_MAX)
            continue;
        if (*n >= AEGIS_LIMIT_STORE_RECORDS)
            break;
        aegis_grow((void **)names, &cap, *n + 1, sizeof(**names));
        (*names)[(*n)++] = aegis_strdup(de->d_name);
    }
    closedir(d);
    if (*n > 1)
        qsort(*names, *n, sizeof(**names), name_cmp);
    return 0;
}

static void names_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/*
 * Calls fn for every record (a directory holding current.json) of kind, or of every kind when
 * kind is NULL, in id order. fn returns < 0 to fail, > 0 to stop early, 0 to go on.
 */
static int walk_records(const char *root, const char *kind,
                        int (*fn)(void *arg, const struct store_id *id), void *arg,
                        struct aegis_err *err)
{
    char **kinds = NULL, **nss = NULL, **names = NULL;
    size_t nk = 0, nn = 0, nm = 0;
    char *path = NULL;
    struct store_id id;
    struct stat sb;
    int rc = 0;

    if (kind != NULL) {
        kinds = aegis_malloc(sizeof(*kinds));
        kinds[0] = aegis_strdup(kind);
        nk = 1;
    } else {
        rc = list_dir(root, &kinds, &nk, err);
        if (rc < 0)
            goto out;
    }
    for (size_t k = 0; k < nk && rc == 0; k++) {
        free(path);
        path = aegis_asprintf("%s/%s", root, kinds[k]);
        names_free(nss, nn);
        rc = list_dir(path, &nss, &nn, err);
        for (size_t s = 0; s < nn && rc == 0; s++) {
            free(path);
            path = aegis_asprintf("%s/%s/%s", root, kinds[k], nss[s]);
            names_free(names, nm);
            rc = list_dir(path, &names, &nm, err);
            for (size_t m = 0; m < nm && rc == 0; m++) {
                free(path);
                path =
                    aegis_asprintf("%s/%s/%s/%s/" CURRENT_FILE, root, kinds[k], nss[s], names[m]);
                /* Stray names (not valid ids) and records being deleted are skipped. */
                if (lstat(path, &sb) != 0 || !S_ISREG(sb.st_mode) ||
                    store_id_set(&id, kinds[k], nss[s], names[m], NULL) < 0)
                    continue;
                rc = fn(arg, &id);
            }
        }
    }
out:
    names_free(kinds, nk);
    names_free(nss, nn);
    names_free(names, nm);
    free(path);
    return rc < 0 ? rc : 0;
}

/* The history revisions of a record, ascending. */
static int history_revs(const struct store_fs *fs, const struct store_id *id, uint64_t **revs,
                        size_t *n, struct aegis_err *err)
{
    char *dir = history_dir(fs, id);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    int rc;

    *revs = NULL;
    *n = 0;
    rc = list_dir(dir, &names, &nn, err);
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(names[i], &end, 10);
        if (errno != 0 || end == names[i] || strcmp(end, ".json") != 0 || names[i][0] == '0')
            continue;
        aegis_grow((void **)revs, &cap, *n + 1, sizeof(**revs));
        (*revs)[(*n)++] = (uint64_t)v;
    }
    /* Numeric order: list_dir sorted the names as text. */
    for (size_t i = 1; i < *n; i++)
        for (size_t j = i; j > 0 && (*revs)[j - 1] > (*revs)[j]; j--) {
            uint64_t t = (*revs)[j];

            (*revs)[j] = (*revs)[j - 1];
            (*revs)[j - 1] = t;
        }
    names_free(names, nn);
    free(dir);
    return rc;
}

/* ---- the operations ------------------------------------------------------------------------ */

static struct store_fs *fs_of(struct store *st)
{
    return (struct store_fs *)st;
}

static void fs_close(struct store *st)
{
    struct store_fs *fs = fs_of(st);

    if (fs->lockfd >= 0)
        close(fs->lockfd);
    masterkey_ring_dispose(&fs->base.ring);
    free(fs->dir);
    free(fs->root);
    free(fs);
}

static json_t *record_json(const struct store_id *id, const struct store_meta *meta,
                           const struct store_record *rec, const char *sealed_b64)
{
    json_t *root = json_object();

    json_object_set_new(root, "format", json_integer(STORE_FORMAT));
    json_object_set_new(root, "kind", json_string(id->kind));
    json_object_set_new(root, "namespace", json_string(id->ns));
    json_object_set_new(root, "name", json_string(id->name));
    json_object_set_new(root, "meta", store__meta_to_json(meta));
    if (rec->chain_pem != NULL)
        json_object_set_new(root, "certificate", json_string(rec->chain_pem));
    if (rec->csr_pem != NULL)
        json_object_set_new(root, "csr", json_string(rec->csr_pem));
    if (sealed_b64 != NULL) {
        json_t *sealed = json_object();

        json_object_set_new(sealed, STORE_FIELD_KEY, json_string(sealed_b64));
        json_object_set_new(root, "sealed", sealed);
    }
    return root;
}

/* Keeps at most AEGIS_LIMIT_STORE_HISTORY entries, dropping the oldest. */
static int history_trim(struct store_fs *fs, const struct store_id *id, struct aegis_err *err)
{
    uint64_t *revs = NULL;
    size_t n = 0;
    char *path = NULL;
    int rc = history_revs(fs, id, &revs, &n, err);

    for (size_t i = 0;
         rc == 0 && n > AEGIS_LIMIT_STORE_HISTORY && i < n - AEGIS_LIMIT_STORE_HISTORY; i++) {
        free(path);
        path = history_path(fs, id, revs[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = aegis_err_set(err, -errno, path, "cannot remove: %s", strerror(errno));
    }
    free(path);
    free(revs);
    return rc;
}

/*
 * Keeps the current version in the history by a hard link: no copy, and the link survives the
 * rename that replaces current.json. A link already there (a crash after linking) is fine.
 */
static int history_keep(struct store_fs *fs, const struct store_id *id, uint64_t rev,
                        struct aegis_err *err)
{
    char *dir = history_dir(fs, id), *cur = current_path(fs, id);
    char *dst = history_path(fs, id, rev);
    int rc = mkdir_one(dir, err);

    if (rc < 0)
        goto out;
    if (link(cur, dst) != 0 && errno != EEXIST) {
        rc = aegis_err_set(err, -errno, dst, "cannot keep the previous version: %s",
                           strerror(errno));
        goto out;
    }
    rc = store__fsync_parent(dst, err);
    if (rc == 0)
        rc = history_trim(fs, id, err);
out:
    free(dir);
    free(cur);
    free(dst);
    return rc;
}

static int fs_put(struct store *st, const struct store_id *id, const struct store_record *rec,
                  struct aegis_err *err)
{
    struct store_fs *fs = fs_of(st);
    struct store_meta meta, old_meta;
    json_t *old = NULL, *root = NULL;
    unsigned char *env = NULL;
    char *dir = record_dir(fs, id), *path = current_path(fs, id), *b64 = NULL;
    char aad[STORE_ID_STR_MAX + 16];
    size_t envlen = 0;
    int rc;

    store_meta_init(&old_meta);
    store_meta_copy(&meta, &rec->meta);
    /* The certificate facts come from the chain when the caller did not fill them. */
    if (rec->chain_pem != NULL && meta.fingerprint[0] == '\0') {
        rc = store_meta_from_pem(&meta, rec->chain_pem, err);
        if (rc < 0)
            goto out;
    }
    rc = store__mkdir_private(dir, err);
    if (rc < 0)
        goto out;
    rc = load_record(path, id, &old, err);
    /* A damaged record is not overwritten: whatever it still holds may be needed. */
    if (rc < 0 && rc != -AEGIS_E_NOTFOUND)
        goto out;
    if (rc == 0) {
        rc = store__meta_from_json(&old_meta, json_object_get(old, "meta"), err);
        if (rc < 0)
            goto out;
    }
    meta.revision = old_meta.revision + 1;
    if (meta.updated_at == 0)
        meta.updated_at = (int64_t)time(NULL);
    if (rec->key_pem != NULL) {
        if (st->ring.n == 0) {
            rc = aegis_err_set(err, -AEGIS_E_STATE, NULL,
                               "the store was opened without a master key; cannot seal a key");
            goto out;
        }
        store__aad(id, STORE_FIELD_KEY, aad, sizeof(aad));
        rc = envelope_seal(masterkey_ring_current(&st->ring), aad, rec->key_pem,
                           strlen(rec->key_pem), &env, &envlen, err);
        if (rc < 0)
            goto out;
        b64 = b64_encode(env, envlen);
    }
    if (old != NULL && json_object_get(old, "certificate") != NULL &&
        strcmp(old_meta.fingerprint, meta.fingerprint) != 0) {
        rc = history_keep(fs, id, old_meta.revision, err);
        if (rc < 0)
            goto out;
    }
    root = record_json(id, &meta, rec, b64);
    rc = dump_record(path, root, true, err);
out:
    json_decref(old);
    json_decref(root);
    store_meta_dispose(&meta);
    store_meta_dispose(&old_meta);
    free(env);
    free(b64);
    free(dir);
    free(path);
    return rc;
}

static int not_found(const struct store_id *id, struct aegis_err *err)
{
    char s[STORE_ID_STR_MAX];

    store_id_format(id, s, sizeof(s));
    return aegis_err_set(err, -AEGIS_E_NOTFOUND, s, "no such record in the store");
}

static int fs_get(struct store *st, const struct store_id *id, bool with_key,
                  struct store_record *rec, struct aegis_err *err)
{
    struct store_fs *fs = fs_of(st);
    char *path = current_path(fs, id);
    json_t *root = NULL;
    int rc = load_record(path, id, &root, err);

    if (rc == -AEGIS_E_NOTFOUND)
        rc = not_found(id, err);
    if (rc == 0)
        rc = decode_record(fs, id, root, path, with_key, rec, err);
    json_decref(root);
    free(path);
    return rc;
}

static int fs_get_meta(struct store *st, const struct store_id *id, struct store_meta *meta,
                       struct aegis_err *err)
{
    char *path = current_path(fs_of(st), id);
    json_t *root = NULL;
    int rc = load_record(path, id, &root, err);

    if (rc == -AEGIS_E_NOTFOUND)
        rc = not_found(id, err);
    if (rc == 0)
        rc = store__meta_from_json(meta, json_object_get(root, "meta"), err);
    json_decref(root);
    free(path);
    return rc;
}

struct id_list {
    struct store_id *v;
    size_t n, cap;
};

static int collect_id(void *arg, const struct store_id *id)
{
    struct id_list *l = arg;

    aegis_grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v));
    l->v[l->n++] = *id;
    return 0;
}

static int fs_list(struct store *st, const char *kind, struct store_id **ids, size_t *n,
                   struct aegis_err *err)
{
    struct id_list l = {NULL, 0, 0};
    int rc = walk_records(fs_of(st)->root, kind, collect_id, &l, err);

    if (rc < 0) {
        free(l.v);
        return rc;
    }
    /* walk_records goes in sorted directory order, which is store_id_cmp order. */
    *ids = l.v;
    *n = l.n;
    return 0;
}

static int remove_history(struct store_fs *fs, const struct store_id *id, struct aegis_err *err)
{
    uint64_t *revs = NULL;
    size_t n = 0;
    char *path = NULL, *dir = history_dir(fs, id);
    int rc = history_revs(fs, id, &revs, &n, err);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        free(path);
        path = history_path(fs, id, revs[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = aegis_err_set(err, -errno, path, "cannot remove: %s", strerror(errno));
    }
    if (rc == 0 && rmdir(dir) != 0 && errno != ENOENT)
        rc = aegis_err_set(err, -errno, dir, "cannot remove: %s", strerror(errno));
    free(path);
    free(dir);
    free(revs);
    return rc;
}

/*
 * Removes the temp files a killed writer left in dir (".<name>.tmp.XXXXXX"). Only called where
 * no other writer can be at work: deleting a record, and under the rotation's exclusive lock.
 */
static void sweep_temps(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp.") != NULL) {
            char *t = aegis_asprintf("%s/%s", dir, de->d_name);

            unlink(t);
            free(t);
        }
    }
    if (d != NULL)
        closedir(d);
}

static int fs_del(struct store *st, const struct store_id *id, struct aegis_err *err)
{
    struct store_fs *fs = fs_of(st);
    char *path = current_path(fs, id), *dir = record_dir(fs, id), *up = NULL;
    int rc = 0;

    /* Removing current.json first deletes the record at once; the rest is tidying up. */
    if (unlink(path) != 0) {
        rc = errno == ENOENT
                 ? not_found(id, err)
                 : aegis_err_set(err, -errno, path, "cannot remove: %s", strerror(errno));
        goto out;
    }
    rc = store__fsync_parent(path, err);
    if (rc == 0)
        rc = remove_history(fs, id, err);
    if (rc < 0)
        goto out;
    sweep_temps(dir);
    rmdir(dir);
    /* Empty namespace and kind directories go too; a non-empty one stays (ENOTEMPTY). */
    up = aegis_asprintf("%s/%s/%s", fs->root, id->kind, id->ns);
    if (rmdir(up) == 0) {
        free(up);
        up = aegis_asprintf("%s/%s", fs->root, id->kind);
        rmdir(up);
    }
out:
    free(path);
    free(dir);
    free(up);
    return rc;
}

static int fs_history_list(struct store *st, const struct store_id *id, struct store_meta **metas,
                           size_t *n, struct aegis_err *err)
{
    struct store_fs *fs = fs_of(st);
    uint64_t *revs = NULL;
    size_t nrev = 0;
    char *path = NULL;
    json_t *root = NULL;
    int rc = history_revs(fs, id, &revs, &nrev, err);

    if (rc < 0 || nrev == 0)
        goto out;
    *metas = aegis_calloc(nrev, sizeof(**metas));
    for (size_t i = 0; i < nrev; i++) {
        free(path);
        path = history_path(fs, id, revs[i]);
        json_decref(root);
        root = NULL;
        rc = load_record(path, id, &root, err);
        if (rc == -AEGIS_E_NOTFOUND) {
            /* Pruned meanwhile. */
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = store__meta_from_json(&(*metas)[*n], json_object_get(root, "meta"), err);
        if (rc < 0)
            goto out;
        (*n)++;
    }
out:
    if (rc < 0) {
        store_meta_array_free(*metas, *n);
        *metas = NULL;
        *n = 0;
    }
    json_decref(root);
    free(path);
    free(revs);
    return rc;
}

static int fs_history_get(struct store *st, const struct store_id *id, uint64_t revision,
                          struct store_record *rec, struct aegis_err *err)
{
    struct store_fs *fs = fs_of(st);
    char *path = history_path(fs, id, revision);
    json_t *root = NULL;
    int rc = load_record(path, id, &root, err);

    if (rc == -AEGIS_E_NOTFOUND)
        rc = aegis_err_set(err, rc, path, "no history entry with revision %llu",
                           (unsigned long long)revision);
    if (rc == 0)
        rc = decode_record(fs, id, root, path, true, rec, err);
    json_decref(root);
    free(path);
    return rc;
}

struct prune_ctx {
    struct store_fs *fs;
    int64_t now;
    size_t removed;
    struct aegis_err *err;
};

static int prune_one(void *arg, const struct store_id *id)
{
    struct prune_ctx *c = arg;
    uint64_t *revs = NULL;
    size_t n = 0;
    char *path = NULL;
    json_t *root = NULL;
    struct store_meta meta;
    int rc = history_revs(c->fs, id, &revs, &n, c->err);

    store_meta_init(&meta);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        free(path);
        path = history_path(c->fs, id, revs[i]);
        json_decref(root);
        root = NULL;
        store_meta_dispose(&meta);
        rc = load_record(path, id, &root, c->err);
        if (rc == -AEGIS_E_NOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0)
            rc = store__meta_from_json(&meta, json_object_get(root, "meta"), c->err);
        if (rc < 0)
            break;
        /* Expired: nobody can still be using it. */
        if (meta.not_after > c->now)
            continue;
        if (unlink(path) != 0 && errno != ENOENT) {
            rc = aegis_err_set(c->err, -errno, path, "cannot remove: %s", strerror(errno));
            break;
        }
        c->removed++;
    }
    if (rc == 0 && n > 0)
        rc = store__fsync_parent(path, c->err);
    store_meta_dispose(&meta);
    json_decref(root);
    free(path);
    free(revs);
    return rc;
}

static int fs_history_prune(struct store *st, const struct store_id *id, int64_t now,
                            size_t *removed, struct aegis_err *err)
{
    struct prune_ctx c = {fs_of(st), now, 0, err};
    int rc;

    if (id != NULL) {
        char *path = current_path(c.fs, id);
        struct stat sb;

        /* A record's history outlives nothing: without the record there is none. */
        rc = lstat(path, &sb) == 0 ? prune_one(&c, id) : not_found(id, err);
        free(path);
    } else {
        rc = walk_records(c.fs->root, NULL, prune_one, &c, err);
    }
    if (removed != NULL)
        *removed = c.removed;
    return rc;
}

/* ---- rotation ------------------------------------------------------------------------------ */

struct rotate_ctx {
    struct store_fs *fs;
    const struct aegis_masterkey *new_key;
    int (*progress)(void *arg, const struct store_id *id, size_t done);
    void *arg;
    size_t done;
    struct aegis_err *err;
};

/* Re-seals one record file under the new key unless it is already; 1 when rewritten. */
static int reseal_file(struct rotate_ctx *c, const struct store_id *id, const char *path)
{
    json_t *root = NULL;
    unsigned char *env = NULL, *pt = NULL, *out = NULL;
    unsigned char kid[MASTERKEY_ID_BYTES];
    char aad[STORE_ID_STR_MAX + 16], *b64 = NULL;
    size_t envlen = 0, ptlen = 0, outlen = 0;
    int rc = load_record(path, id, &root, c->err);

    if (rc == -AEGIS_E_NOTFOUND) {
        rc = 0;
        goto out;
    }
    if (rc == 0)
        rc = sealed_bytes(root, STORE_FIELD_KEY, path, &env, &envlen, c->err);
    if (rc < 0 || env == NULL)
        goto out;
    if (envelope_key_id(env, envlen, kid) < 0) {
        rc = aegis_err_set(c->err, -AEGIS_E_INVALID, path, "sealed.%s is not an envelope",
                           STORE_FIELD_KEY);
        goto out;
    }
    if (CRYPTO_memcmp(kid, c->new_key->id, MASTERKEY_ID_BYTES) == 0)
        goto out;
    store__aad(id, STORE_FIELD_KEY, aad, sizeof(aad));
    rc = envelope_open(&c->fs->base.ring, aad, env, envlen, &pt, &ptlen, c->err);
    if (rc == 0)
        rc = envelope_seal(c->new_key, aad, pt, ptlen, &out, &outlen, c->err);
    if (rc < 0)
        goto out;
    b64 = b64_encode(out, outlen);
    json_object_set_new(json_object_get(root, "sealed"), STORE_FIELD_KEY, json_string(b64));
    rc = dump_record(path, root, true, c->err);
    if (rc == 0)
        rc = 1;
out:
    envelope_free_plaintext(pt, ptlen);
    json_decref(root);
    free(env);
    free(out);
    free(b64);
    return rc;
}

static int rotate_one(void *arg, const struct store_id *id)
{
    struct rotate_ctx *c = arg;
    uint64_t *revs = NULL;
    size_t n = 0;
    char *path = current_path(c->fs, id), *dir = record_dir(c->fs, id);
    int rc = history_revs(c->fs, id, &revs, &n, c->err);

    sweep_temps(dir);
    free(dir);
    dir = history_dir(c->fs, id);
    sweep_temps(dir);
    free(dir);
    /* The current version first, then each history entry. */
    for (size_t i = 0; rc == 0 && i <= n; i++) {
        if (i > 0) {
            free(path);
            path = history_path(c->fs, id, revs[i - 1]);
        }
        rc = reseal_file(c, id, path);
        if (rc == 1) {
            c->done++;
            rc = c->progress ? c->progress(c->arg, id, c->done) : 0;
            if (rc > 0)
                rc = -rc;
        }
    }
    free(path);
    free(revs);
    return rc;
}

static int lock_store(struct store_fs *fs, int op, struct aegis_err *err)
{
    while (flock(fs->lockfd, op | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            return aegis_err_set(err, -AEGIS_E_STATE, fs->dir,
                                 op == LOCK_EX ? "another process has this store open; stop the "
                                                 "controller (and other aegisctl commands) first"
                                               : "a master key rotation is running on this store; "
                                                 "wait for it to finish");
        return aegis_err_set(err, -errno, fs->dir, "cannot lock the store: %s", strerror(errno));
    }
    return 0;
}

static int fs_rotate_key(struct store *st, const struct aegis_masterkey *new_key,
                         int (*progress)(void *arg, const struct store_id *id, size_t done),
                         void *arg, struct aegis_err *err)
{
    struct store_fs *fs = fs_of(st);
    struct aegis_masterkey next;
    struct rotate_ctx c;
    char *next_path = aegis_asprintf("%s/" MASTERKEY_STATE_NEXT_FILE, fs->dir);
    char *cur_path = aegis_asprintf("%s/" MASTERKEY_STATE_FILE, fs->dir);
    char *marker = aegis_asprintf("%s/" ROTATING_FILE, fs->dir);
    char idhex[MASTERKEY_ID_HEX_LEN + 2];
    bool in_state = st->ring.origin == MASTERKEY_ORIGIN_STATE;
    enum masterkey_origin origin;
    struct stat sb;
    int rc;

    memset(&next, 0, sizeof(next));
    if (st->ring.n == 0) {
        rc = aegis_err_set(err, -AEGIS_E_STATE, NULL, "no current master key to rotate from");
        goto out;
    }
    rc = lock_store(fs, LOCK_EX, err);
    if (rc < 0)
        goto out;
    if (in_state && lstat(next_path, &sb) == 0) {
        /* An interrupted rotation: finish it with the key it started with. */
        rc = masterkey_load_file(&next, next_path, err);
        if (rc < 0)
            goto out;
        if (new_key != NULL && CRYPTO_memcmp(new_key->id, next.id, MASTERKEY_ID_BYTES) != 0) {
            masterkey_id_hex(next.id, idhex, sizeof(idhex));
            rc = aegis_err_set(err, -AEGIS_E_STATE, next_path,
                               "a rotation to master key id %s is unfinished; run rotate-key "
                               "without a new key to finish it first",
                               idhex);
            goto out;
        }
    } else if (new_key != NULL) {
        next = *new_key;
    } else if (in_state) {
        rc = masterkey_generate(&next, err);
        if (rc < 0)
            goto out;
    } else {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "the master key comes from outside the state directory; give the "
                           "new key with --new-key-file FILE or %s",
                           MASTERKEY_NEW_ENV);
        goto out;
    }
    if (CRYPTO_memcmp(next.id, masterkey_ring_current(&st->ring)->id, MASTERKEY_ID_BYTES) == 0) {
        rc = aegis_err_set(err, -AEGIS_E_INVALID, NULL,
                           "the new master key is the current one; nothing to rotate");
        goto out;
    }
    /* The new key is made durable before anything is sealed with it. */
    if (in_state) {
        rc = masterkey_write_file(&next, next_path, false, err);
        if (rc == -EEXIST)
            rc = 0;
    } else {
        masterkey_id_hex(next.id, idhex, sizeof(idhex));
        idhex[MASTERKEY_ID_HEX_LEN] = '\n';
        rc = store__write_file(marker, idhex, (size_t)MASTERKEY_ID_HEX_LEN + 1, true, err);
    }
    if (rc < 0)
        goto out;
    rc = masterkey_ring_add(&st->ring, &next, err);
    if (rc < 0)
        goto out;
    c = (struct rotate_ctx){fs, &next, progress, arg, 0, err};
    rc = progress ? progress(arg, NULL, 0) : 0;
    if (rc > 0)
        rc = -rc;
    if (rc == 0)
        rc = walk_records(fs->root, NULL, rotate_one, &c, err);
    if (rc < 0)
        goto out;
    /* Every record is sealed with the new key: only now does it become the current one. */
    if (in_state) {
        if (rename(next_path, cur_path) != 0) {
            rc = aegis_err_set(err, -errno, cur_path, "cannot replace the master key: %s",
                               strerror(errno));
            goto out;
        }
        rc = store__fsync_parent(cur_path, err);
    } else if (unlink(marker) == 0) {
        rc = store__fsync_parent(marker, err);
    }
    if (rc < 0)
        goto out;
    origin = st->ring.origin;
    masterkey_ring_dispose(&st->ring);
    st->ring.origin = origin;
    rc = masterkey_ring_add(&st->ring, &next, err);
out:
    if (fs->lockfd >= 0)
        (void)flock(fs->lockfd, LOCK_SH);
    masterkey_cleanse(&next);
    free(next_path);
    free(cur_path);
    free(marker);
    return rc;
}

static const struct store_ops fs_ops = {
    .name = "fs",
    .close = fs_close,
    .put = fs_put,
    .get = fs_get,
    .get_meta = fs_get_meta,
    .list = fs_list,
    .del = fs_del,
    .history_list = fs_history_list,
    .history_get = fs_history_get,
    .history_prune = fs_history_prune,
    .rotate_key = fs_rotate_key,
};

/* ---- opening ------------------------------------------------------------------------------- */

struct find_ctx {
    const char *root;
    bool *found;
    unsigned char *id;
    struct store_id *which;
};

static int find_in_file(struct find_ctx *c, const struct store_id *id, const char *path)
{
    json_t *root = NULL;
    unsigned char *env = NULL;
    size_t len = 0;
    int rc = load_record(path, id, &root, NULL);

    /* Unreadable files are reported when used, not here: this only looks for a key id. */
    if (rc == 0 && sealed_bytes(root, STORE_FIELD_KEY, path, &env, &len, NULL) == 0 &&
        env != NULL && envelope_key_id(env, len, c->id) == 0) {
        *c->found = true;
        *c->which = *id;
    }
    json_decref(root);
    free(env);
    return *c->found ? 1 : 0;
}

static int find_one(void *arg, const struct store_id *id)
{
    struct find_ctx *c = arg;
    struct store_fs tmp = {.root = (char *)c->root};
    uint64_t *revs = NULL;
    size_t n = 0;
    char *path = current_path(&tmp, id);
    int rc = find_in_file(c, id, path);

    if (rc == 0 && history_revs(&tmp, id, &revs, &n, NULL) == 0)
        for (size_t i = 0; rc == 0 && i < n; i++) {
            free(path);
            path = history_path(&tmp, id, revs[i]);
            rc = find_in_file(c, id, path);
        }
    free(path);
    free(revs);
    return rc;
}

int store_fs_find_sealed(const char *state_dir, bool *found, unsigned char id[MASTERKEY_ID_BYTES],
                         struct store_id *which, struct aegis_err *err)
{
    char *root = aegis_asprintf("%s/" STORE_SUBDIR, state_dir);
    struct find_ctx c = {root, found, id, which};
    int rc;

    *found = false;
    memset(which, 0, sizeof(*which));
    rc = walk_records(root, NULL, find_one, &c, err);
    free(root);
    return rc;
}

const char *store_fs_state_dir(const struct store *st)
{
    if (st == NULL || st->ops != &fs_ops)
        return NULL;
    return ((const struct store_fs *)st)->dir;
}

int store_open_fs(const char *state_dir, const struct aegis_keyring *ring, struct store **st,
                  struct aegis_err *err)
{
    struct store_fs *fs = NULL;
    struct store_id which;
    unsigned char id[MASTERKEY_ID_BYTES];
    char idhex[MASTERKEY_ID_HEX_LEN + 1], idstr[STORE_ID_STR_MAX], next[MASTERKEY_ID_HEX_LEN + 1];
    char *lock = NULL;
    bool found = false;
    int rc;

    *st = NULL;
    fs = aegis_calloc(1, sizeof(*fs));
    fs->base.ops = &fs_ops;
    if (ring != NULL)
        fs->base.ring = *ring;
    fs->lockfd = -1;
    fs->dir = aegis_strdup(state_dir);
    fs->root = aegis_asprintf("%s/" STORE_SUBDIR, state_dir);
    rc = store__mkdir_private(fs->root, err);
    if (rc < 0)
        goto out;
    /* The store directory is ours alone, whatever made it. */
    if (chmod(fs->root, 0700) != 0) {
        rc = aegis_err_set(err, -errno, fs->root, "cannot chmod: %s", strerror(errno));
        goto out;
    }
    lock = aegis_asprintf("%s/" LOCK_FILE, fs->root);
    fs->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fs->lockfd < 0) {
        rc = aegis_err_set(err, -errno, lock, "cannot open the lock file: %s", strerror(errno));
        goto out;
    }
    rc = lock_store(fs, LOCK_SH, err);
    if (rc < 0)
        goto out;
    /* A wrong key is reported now, with the id that is needed, not at the first renewal. */
    if (fs->base.ring.n == 0)
        goto done;
    rc = store_fs_find_sealed(state_dir, &found, id, &which, err);
    if (rc < 0)
        goto out;
    if (found && masterkey_ring_find(ring, id) == NULL) {
        masterkey_id_hex(id, idhex, sizeof(idhex));
        store_id_format(&which, idstr, sizeof(idstr));
        if (rotating_marker(fs, next, sizeof(next)))
            rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, state_dir,
                               "records in %s (%s, ...) are sealed with master key id %s, not "
                               "the configured key; a rotation to key id %s was interrupted: "
                               "re-run `aegisctl store rotate-key --new-key-file FILE` with that "
                               "key to finish it",
                               state_dir, idstr, idhex, next);
        else
            rc = aegis_err_set(err, -AEGIS_E_NOTFOUND, state_dir,
                               "records in %s (%s, ...) were sealed with master key id %s, not "
                               "the configured key; set AEGIS_MASTER_KEY or --master-key-file to "
                               "that key",
                               state_dir, idstr, idhex);
        goto out;
    }
done:
    *st = &fs->base;
    fs = NULL;
out:
    if (fs != NULL)
        fs_close(&fs->base);
    free(lock);
    return rc;
}
