/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The directory source (--watch): YAML files below watched paths, kept current with inotify(7)
 * through libinotifytools, debounced, following symlink swaps, with per-file last-good versions
 * and reference-counted snapshots. The contract is in watch.h; the behaviour for users in
 * docs/watching.md.
 *
 * How it works. Events are hints, never the truth: an event only marks a path "dirty" (or a
 * whole watched path for a full rescan), and a reload re-reads what is marked and compares it
 * with what is known (stat identity first, then a SHA-256 of the content). A lost event, a
 * queue overflow or a restart of libinotifytools is therefore healed by a rescan. Each reload
 * stages its results per watched path and commits them only if no event that could have swapped
 * the tree (a symlink replaced, the path itself renamed) arrived while it was reading.
 *
 * libinotifytools. Its state (the inotify descriptor, the watch tables, the event buffer) is
 * process-global and unguarded, which a clean design would not choose; the project requires it,
 * so it is used for what it does well - adding and removing watches and reading events - and
 * kept behind this module: one watch_source per process, one thread. Its gaps are worked
 * around here: it does not hand out its descriptor (found below, then wrapped in an epoll
 * descriptor that stays the same for the caller), it keeps a record for every watch the kernel
 * drops (a deleted directory) until inotifytools_cleanup() (so after AEGIS_LIMIT_WATCH_DEAD_RECORDS
 * of them it is restarted and everything rescanned), it does not return the descriptor of a new
 * watch (asked of the kernel with the same mask, which changes nothing), and it keeps one
 * record per inode (so an inode already watched is never added twice).
 */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <inotifytools/inotifytools.h>
#include <openssl/evp.h>

#include "aegis/alloc.h"
#include "aegis/limits.h"
#include "aegis/log.h"

#define MOD "watch"

/* What a watched directory reports. IN_ONLYDIR: a path that stopped being a directory between
 * the stat and the watch is refused rather than watched as a file. */
#define WATCH_MASK                                                                                 \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_MODIFY | IN_CLOSE_WRITE |            \
     IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_EXCL_UNLINK)

/* A file modified this recently may be modified again within the file system's timestamp
 * granularity without its stat changing, so a rescan re-reads it (git's "racy" files). */
#define RACY_NS (2LL * 1000 * 1000 * 1000)
/* Symlinks followed while resolving one watched path, as the kernel's MAXSYMLINKS. */
#define MAX_LINKS 40
/* Attempts at the first read when the tree keeps being swapped during it. */
#define INITIAL_ATTEMPTS 5
#define HASH_LEN 32

static const char *const file_state_names[] = {
#define WATCH_FILE_STATE_NAME(e, name) name,
    WATCH_FILE_STATES(WATCH_FILE_STATE_NAME)
#undef WATCH_FILE_STATE_NAME
};

static const char *const change_names[] = {
#define WATCH_CHANGE_NAME(e, name) name,
    WATCH_CHANGES(WATCH_CHANGE_NAME)
#undef WATCH_CHANGE_NAME
};

/* ---- a small chained hash table ------------------------------------------------------------ */

struct hnode {
    struct hnode *next;
    uint64_t h;
    void *val;
};

struct htab {
    struct hnode **b;
    size_t nb;
    size_t n;
};

typedef bool (*heq_fn)(const void *val, const void *key);

static uint64_t hash_mix(uint64_t h, const void *p, size_t n)
{
    const unsigned char *s = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3ULL; /* FNV-1a */
    return h;
}

static uint64_t hash_str(const char *s)
{
    return hash_mix(0xcbf29ce484222325ULL, s, strlen(s));
}

static void htab_dispose(struct htab *t)
{
    for (size_t i = 0; i < t->nb; i++) {
        struct hnode *n = t->b[i];

        while (n != NULL) {
            struct hnode *next = n->next;

            free(n);
            n = next;
        }
    }
    free(t->b);
    memset(t, 0, sizeof(*t));
}

static void *htab_get(const struct htab *t, uint64_t h, heq_fn eq, const void *key)
{
    if (t->nb == 0)
        return NULL;
    for (struct hnode *n = t->b[h % t->nb]; n != NULL; n = n->next) {
        if (n->h == h && eq(n->val, key))
            return n->val;
    }
    return NULL;
}

static void htab_put(struct htab *t, uint64_t h, void *val)
{
    struct hnode *n;

    if (t->n >= t->nb) {
        size_t nb = t->nb != 0 ? t->nb * 2 : 64;
        struct hnode **b = aegis_calloc(nb, sizeof(*b));

        for (size_t i = 0; i < t->nb; i++) {
            while (t->b[i] != NULL) {
                n = t->b[i];
                t->b[i] = n->next;
                n->next = b[n->h % nb];
                b[n->h % nb] = n;
            }
        }
        free(t->b);
        t->b = b;
        t->nb = nb;
    }
    n = aegis_malloc(sizeof(*n));
    n->h = h;
    n->val = val;
    n->next = t->b[h % t->nb];
    t->b[h % t->nb] = n;
    t->n++;
}

static void htab_del(struct htab *t, uint64_t h, heq_fn eq, const void *key)
{
    if (t->nb == 0)
        return;
    for (struct hnode **p = &t->b[h % t->nb]; *p != NULL; p = &(*p)->next) {
        struct hnode *n = *p;

        if (n->h == h && eq(n->val, key)) {
            *p = n->next;
            free(n);
            t->n--;
            return;
        }
    }
}

/* ---- state --------------------------------------------------------------------------------- */

/* One read of one file: shared by the source and the snapshots that show it. */
struct wver {
    atomic_uint refs;
    char *name; /* the display path */
    struct aegis_resource_set set;
    struct aegis_diags diags;
    unsigned char hash[HASH_LEN];
    bool readok; /* hash is the content's; false when the file could not be read */
    int64_t read_ms;
};

struct fid {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
};

struct wfile {
    char *rel;           /* below the watched path; "" when the path is the file */
    struct wver *served; /* never NULL */
    struct wver *latest; /* may be served */
    enum watch_file_state state;
    struct fid id; /* of the latest read */
    bool racy;
    uint64_t seen; /* the scan that last found it */
};

struct wdirty {
    char *rel;
    bool forced; /* named by an event: read even if its stat did not change */
};

struct wroot {
    char *path;           /* as given, trailing slashes removed */
    char *real;           /* resolved by the last full scan; NULL while missing */
    struct wfile **files; /* sorted by cmp_rel when !unsorted */
    size_t nfiles, files_cap;
    bool unsorted;
    struct htab files_by_rel;
    bool full; /* a full rescan is due */
    struct wdirty **dirty;
    size_t ndirty, dirty_cap;
    struct htab dirty_by_rel;
    struct htab writing; /* rel (char *) of files modified and not yet closed */
    uint64_t structural; /* bumped by events that may swap the tree */
    int64_t retry_at;    /* a full rescan is due then; WATCH_NO_DEADLINE for none */
    struct aegis_diags diags;
};

/* Who uses a watched directory: a directory of a tree, or the parent of a path part. */
struct wuse {
    unsigned root;
    bool parent; /* rel is then the name of the entry watched in this directory */
    char *rel;
    uint64_t seen;
};

struct wdir {
    int wd;
    size_t idx; /* in watch_source.dirs */
    dev_t dev;
    ino_t ino;
    bool moved; /* IN_MOVE_SELF seen: alive, but no longer where the library thinks */
    struct wuse *uses;
    size_t nuses, uses_cap;
};

struct watch_snapshot {
    atomic_uint refs;
    uint64_t generation;
    struct aegis_resource_set set; /* a view: v and ghosts point into vers */
    struct watch_file *files;
    size_t nfiles;
    struct wver **vers;
    size_t nvers;
    struct watch_change *changes;
    size_t nchanges;
    struct aegis_diags diags;
};

struct watch_source {
    struct watch_opts opts;
    int fd;   /* libinotifytools' descriptor: found, not owned */
    int epfd; /* what the caller polls */
    bool lib_open;
    bool broken; /* inotify could not be restarted */
    char *cwd;
    struct wroot *roots;
    size_t nroots;
    struct wdir **dirs;
    size_t ndirs, dirs_cap;
    struct htab dirs_by_wd, dirs_by_ino;
    size_t dead; /* libinotifytools records of watches the kernel dropped */
    bool pending;
    int64_t first_ms, last_ms;
    uint64_t scan;
    uint64_t generation;
    struct watch_change *changes; /* since the last snapshot; paths owned */
    size_t nchanges, changes_cap;
    struct watch_snapshot *snap;
    struct watch_stats stats;
};

static bool lib_in_use; /* libinotifytools' state is global: one source per process */

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static bool eq_wd(const void *val, const void *key)
{
    return ((const struct wdir *)val)->wd == *(const int *)key;
}

static bool eq_ino(const void *val, const void *key)
{
    const struct wdir *d = val;
    const struct stat *st = key;

    return d->dev == st->st_dev && d->ino == st->st_ino;
}

static bool eq_file_rel(const void *val, const void *key)
{
    return strcmp(((const struct wfile *)val)->rel, key) == 0;
}

static bool eq_dirty_rel(const void *val, const void *key)
{
    return strcmp(((const struct wdirty *)val)->rel, key) == 0;
}

static bool eq_str(const void *val, const void *key)
{
    return strcmp(val, key) == 0;
}

static uint64_t hash_wd(int wd)
{
    return hash_mix(0xcbf29ce484222325ULL, &wd, sizeof(wd));
}

static uint64_t hash_ino(const struct stat *st)
{
    uint64_t h = hash_mix(0xcbf29ce484222325ULL, &st->st_dev, sizeof(st->st_dev));

    return hash_mix(h, &st->st_ino, sizeof(st->st_ino));
}

/* Orders paths as a directory walk in name order does: "a/x" before "a.yaml". */
static int cmp_rel(const char *a, const char *b)
{
    for (;; a++, b++) {
        int x = *a == '/' ? 1 : (unsigned char)*a;
        int y = *b == '/' ? 1 : (unsigned char)*b;

        if (x != y)
            return x - y;
        if (x == 0)
            return 0;
    }
}

/* Whether rel is prefix itself or below it ("" is above everything). */
static bool under(const char *rel, const char *prefix)
{
    size_t n = strlen(prefix);

    return n == 0 || (strncmp(rel, prefix, n) == 0 && (rel[n] == '\0' || rel[n] == '/'));
}

static char *join(const char *dir, const char *name)
{
    if (*name == '\0')
        return aegis_strdup(dir);
    if (*dir == '\0')
        return aegis_strdup(name);
    return aegis_asprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", name);
}

static bool is_yaml_name(const char *name)
{
    size_t n = strlen(name);

    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static void log_diag(const struct aegis_diag *dg)
{
    char line[AEGIS_LOG_LINE_MAX];

    aegis_diag_format(dg, line, sizeof(line));
    aegis_log(dg->sev == AEGIS_SEV_ERROR ? AEGIS_LOG_ERROR : AEGIS_LOG_WARN, MOD, "%s", line);
}

static void diags_copy_one(struct aegis_diags *to, const struct aegis_diag *dg)
{
    struct aegis_diag_loc loc = {dg->file, dg->mark, dg->kind, dg->ns, dg->name, dg->path};

    aegis_diags_add(to, dg->sev, &loc, "%s", dg->msg);
}

static void diags_copy(struct aegis_diags *to, const struct aegis_diags *from)
{
    for (size_t i = 0; i < from->n; i++)
        diags_copy_one(to, &from->v[i]);
}

static bool diags_has(const struct aegis_diags *d, const char *file, const char *msg)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->v[i].msg, msg) == 0 &&
            strcmp(d->v[i].file != NULL ? d->v[i].file : "", file) == 0)
            return true;
    }
    return false;
}

/* ---- libinotifytools ------------------------------------------------------------------------ */

/* The process's inotify descriptors, from /proc/self/fd. */
static int inotify_fds(int *fds, size_t max, size_t *n)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    *n = 0;
    if (d == NULL)
        return -errno;
    while ((de = readdir(d)) != NULL) {
        char link[64], target[64];
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        ssize_t len;

        if (end == de->d_name || *end != '\0')
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%ld", fd);
        len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
            continue;
        target[len] = '\0';
        if (strcmp(target, "anon_inode:inotify") == 0 && *n < max)
            fds[(*n)++] = (int)fd;
    }
    closedir(d);
    return 0;
}

/*
 * Starts libinotifytools and finds its descriptor, which it keeps to itself: the inotify
 * descriptor that /proc/self/fd lists after the start and not before (without /proc: the lowest
 * free descriptor, which inotify_init() takes). It is made close-on-exec (the library does not,
 * and the controller starts the dataplane) and non-blocking, and must stay below FD_SETSIZE
 * because the library select()s on it.
 */
static int lib_start(struct watch_source *w, struct aegis_err *err)
{
    struct epoll_event ev = {.events = EPOLLIN};
    int before[64], after[64];
    size_t nbefore = 0, nafter = 0, nnew = 0;
    bool proc;
    int probe, fd = -1, flags;

    proc = inotify_fds(before, 64, &nbefore) == 0;
    probe = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (probe < 0)
        return aegis_err_set(err, -errno, NULL, "cannot open /dev/null: %s", strerror(errno));
    close(probe);
    if (!inotifytools_initialize()) {
        int e = inotifytools_error();

        return aegis_err_set(err, -AEGIS_E_STATE, NULL, "cannot start inotify: %s%s",
                             strerror(e != 0 ? e : EIO),
                             e == EMFILE ? " (raise fs.inotify.max_user_instances)" : "");
    }
    fd = probe;
    if (proc && inotify_fds(after, 64, &nafter) == 0) {
        for (size_t i = 0; i < nafter; i++) {
            bool old = false;

            for (size_t j = 0; j < nbefore && !old; j++)
                old = before[j] == after[i];
            if (!old) {
                fd = after[i];
                nnew++;
            }
        }
        if (nnew != 1) {
            inotifytools_cleanup();
            return aegis_err_set(err, -AEGIS_E_STATE, NULL,
                                 "cannot tell libinotifytools' inotify descriptor apart");
        }
    }
    if (fd >= FD_SETSIZE) {
        inotifytools_cleanup();
        return aegis_err_set(err, -AEGIS_E_STATE, NULL,
                             "the inotify descriptor %d is above FD_SETSIZE, which "
                             "libinotifytools cannot select() on; start the watcher earlier",
                             fd);
    }
    flags = fcntl(fd, F_GETFL);
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 || flags < 0 ||
        fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev)) {
        int e = errno;

        inotifytools_cleanup();
        return aegis_err_set(err, -e, NULL, "cannot set up the inotify descriptor: %s",
                             strerror(e));
    }
    w->fd = fd;
    w->lib_open = true;
    return 0;
}

static void lib_stop(struct watch_source *w)
{
    if (!w->lib_open)
        return;
    /* The library's event buffer is static and outlives inotifytools_cleanup(): drain it, or a
     * later instance would be handed this one's events. Bounded, because a busy directory can
     * keep it full; a stale event left over would only cause a needless rescan. */
    for (int i = 0; i < AEGIS_LIMIT_WATCH_EVENTS_STEP; i++) {
        if (inotifytools_next_events(0, 1) == NULL)
            break;
    }
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    inotifytools_cleanup(); /* closes the descriptor and frees every record */
    w->fd = -1;
    w->lib_open = false;
}

/* Adds a watch on the directory path; *wd gets its descriptor. */
static int lib_add(struct watch_source *w, const char *path, int *wd)
{
    int e;

    if (!inotifytools_watch_file(path, WATCH_MASK)) {
        e = inotifytools_error();
        return -(e != 0 ? e : EIO);
    }
    /* The library does not say which descriptor it got; the kernel gives the same one again for
     * the same inode and mask, and changes nothing. */
    *wd = inotify_add_watch(w->fd, path, WATCH_MASK);
    if (*wd < 0)
        return -errno;
    if (inotifytools_filename_from_wd(*wd) == NULL) {
        /* The path was replaced between the two calls: this watch has no library record, and
         * the library's record is for an inode nobody uses now. */
        inotify_rm_watch(w->fd, *wd);
        w->dead++;
        return -EAGAIN;
    }
    return 0;
}

/* ---- versions and files -------------------------------------------------------------------- */

static struct wver *wver_new(const char *name, int64_t now_ms)
{
    struct wver *v = aegis_calloc(1, sizeof(*v));

    atomic_init(&v->refs, 1);
    v->name = aegis_strdup(name);
    resource_set_init(&v->set);
    aegis_diags_init(&v->diags);
    v->read_ms = now_ms;
    return v;
}

static struct wver *wver_ref(struct wver *v)
{
    atomic_fetch_add(&v->refs, 1);
    return v;
}

static void wver_unref(struct wver *v)
{
    if (v == NULL || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    resource_set_dispose(&v->set);
    aegis_diags_dispose(&v->diags);
    free(v->name);
    free(v);
}

static void wfile_free(struct wfile *f)
{
    if (f == NULL)
        return;
    wver_unref(f->served);
    wver_unref(f->latest);
    free(f->rel);
    free(f);
}

static struct wfile *root_file(const struct wroot *r, const char *rel)
{
    return htab_get(&r->files_by_rel, hash_str(rel), eq_file_rel, rel);
}

static char *display_name(const struct wroot *r, const char *rel)
{
    if (*rel == '\0')
        return aegis_strdup(r->path);
    return aegis_asprintf("%s%s%s", r->path, r->path[strlen(r->path) - 1] == '/' ? "" : "/", rel);
}

static void fid_of(const struct stat *st, struct fid *id)
{
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mtime = st->st_mtim;
    id->ctime = st->st_ctim;
}

static bool fid_eq(const struct fid *a, const struct fid *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static bool fid_racy(const struct fid *id)
{
    struct timespec now;
    const struct timespec *t = &id->mtime;

    if (id->ctime.tv_sec > t->tv_sec ||
        (id->ctime.tv_sec == t->tv_sec && id->ctime.tv_nsec > t->tv_nsec))
        t = &id->ctime;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)(now.tv_sec - t->tv_sec) * 1000000000LL + (now.tv_nsec - t->tv_nsec) <
           RACY_NS;
}

/*
 * Reads a file into *buf (bounded by AEGIS_LIMIT_YAML_FILE_BYTES); problems go to diags under
 * name. O_NONBLOCK: opening a FIFO must not wait for a writer. -ENOENT when it is gone.
 */
static int read_file(const char *path, const char *name, char **buf, size_t *len, struct fid *id,
                     struct aegis_diags *diags)
{
    struct aegis_diag_loc loc = {.file = name};
    struct stat st;
    size_t cap = 0;
    int fd, rc = 0;

    *buf = NULL;
    *len = 0;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        rc = -errno;
        if (rc != -ENOENT && rc != -ENOTDIR)
            aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot open: %s", strerror(-rc));
        return rc;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot stat: %s", strerror(-rc));
        goto out;
    }
    fid_of(&st, id);
    if (!S_ISREG(st.st_mode)) {
        rc = -AEGIS_E_INVALID;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "not a regular file");
        goto out;
    }
    for (;;) {
        ssize_t n;

        if (*len == cap) {
            if (cap > AEGIS_LIMIT_YAML_FILE_BYTES) {
                rc = -AEGIS_E_LIMIT;
                aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc,
                                "the file is larger than the limit of %u bytes; split it",
                                AEGIS_LIMIT_YAML_FILE_BYTES);
                goto out;
            }
            cap = cap == 0 ? (size_t)st.st_size + 1 : cap * 2;
            if (cap > (size_t)AEGIS_LIMIT_YAML_FILE_BYTES + 1)
                cap = (size_t)AEGIS_LIMIT_YAML_FILE_BYTES + 1;
            *buf = aegis_realloc(*buf, cap);
        }
        n = read(fd, *buf + *len, cap - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot read: %s", strerror(-rc));
            goto out;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
    }
out:
    close(fd);
    if (rc != 0) {
        free(*buf);
        *buf = NULL;
        *len = 0;
    }
    return rc;
}

/* ---- watched directories ------------------------------------------------------------------- */

static struct wdir *dir_by_wd(const struct watch_source *w, int wd)
{
    return htab_get(&w->dirs_by_wd, hash_wd(wd), eq_wd, &wd);
}

/*
 * Whether the kernel still has d's watch. libinotifytools prints to stderr when asked to remove
 * a watch the kernel already dropped (its directory was deleted and the IN_IGNORED is still
 * queued), so that is checked first: the directory must still be where the library saw it, or
 * have been moved.
 */
static bool dir_alive(const struct wdir *d)
{
    const char *name = inotifytools_filename_from_wd(d->wd);
    struct stat st;

    return d->moved ||
           (name != NULL && stat(name, &st) == 0 && st.st_dev == d->dev && st.st_ino == d->ino);
}

/* Forgets d; live tells whether the kernel may still have the watch (then it is removed). */
static void dir_drop(struct watch_source *w, struct wdir *d, bool live)
{
    struct stat key = {.st_dev = d->dev, .st_ino = d->ino};

    if (live && w->lib_open && (!dir_alive(d) || !inotifytools_remove_watch_by_wd(d->wd)))
        w->dead++; /* gone meanwhile: the library keeps its record */
    htab_del(&w->dirs_by_wd, hash_wd(d->wd), eq_wd, &d->wd);
    htab_del(&w->dirs_by_ino, hash_ino(&key), eq_ino, &key);
    w->dirs[d->idx] = w->dirs[--w->ndirs];
    w->dirs[d->idx]->idx = d->idx;
    for (size_t i = 0; i < d->nuses; i++)
        free(d->uses[i].rel);
    free(d->uses);
    free(d);
}

static void dirs_clear(struct watch_source *w)
{
    while (w->ndirs > 0)
        dir_drop(w, w->dirs[w->ndirs - 1], false);
}

/*
 * Records that root uses the directory path (whose stat is st) as rel, watching it if no use
 * does yet. Returns 0 or a negative errno from inotify.
 */
static int dir_use(struct watch_source *w, unsigned root, bool parent, const char *rel,
                   const char *path, const struct stat *st, uint64_t scan)
{
    struct wdir *d = htab_get(&w->dirs_by_ino, hash_ino(st), eq_ino, st);
    struct wuse *u;

    if (d == NULL) {
        int wd = -1;
        int rc = lib_add(w, path, &wd);

        if (rc < 0)
            return rc;
        /* The kernel gives one descriptor per inode: a second path to a known one joins it. */
        d = dir_by_wd(w, wd);
        if (d == NULL) {
            d = aegis_calloc(1, sizeof(*d));
            d->wd = wd;
            d->dev = st->st_dev;
            d->ino = st->st_ino;
            aegis_grow((void **)&w->dirs, &w->dirs_cap, w->ndirs + 1, sizeof(*w->dirs));
            d->idx = w->ndirs;
            w->dirs[w->ndirs++] = d;
            htab_put(&w->dirs_by_wd, hash_wd(wd), d);
            htab_put(&w->dirs_by_ino, hash_ino(st), d);
        }
    }
    for (size_t i = 0; i < d->nuses; i++) {
        u = &d->uses[i];
        if (u->root == root && u->parent == parent && strcmp(u->rel, rel) == 0) {
            u->seen = scan;
            return 0;
        }
    }
    aegis_grow((void **)&d->uses, &d->uses_cap, d->nuses + 1, sizeof(*d->uses));
    u = &d->uses[d->nuses++];
    u->root = root;
    u->parent = parent;
    u->rel = aegis_strdup(rel);
    u->seen = scan;
    return 0;
}

/*
 * Drops root's uses not seen by scan: tree uses below prefix, and parent uses too when
 * parents is set. Directories nobody uses any more stop being watched.
 */
static void dirs_sweep(struct watch_source *w, unsigned root, const char *prefix, bool parents,
                       uint64_t scan)
{
    for (size_t i = w->ndirs; i-- > 0;) {
        struct wdir *d = w->dirs[i];
        size_t k = 0;

        for (size_t j = 0; j < d->nuses; j++) {
            struct wuse *u = &d->uses[j];
            bool drop =
                u->root == root && u->seen != scan && (u->parent ? parents : under(u->rel, prefix));

            if (drop)
                free(u->rel);
            else
                d->uses[k++] = *u;
        }
        d->nuses = k;
        if (k == 0)
            dir_drop(w, d, true);
    }
}

/* ---- marking what to re-read --------------------------------------------------------------- */

static void touch(struct watch_source *w, int64_t now_ms)
{
    if (!w->pending) {
        w->pending = true;
        w->first_ms = now_ms;
    }
    w->last_ms = now_ms;
}

static void dirty_clear(struct wroot *r)
{
    for (size_t i = 0; i < r->ndirty; i++) {
        free(r->dirty[i]->rel);
        free(r->dirty[i]);
    }
    r->ndirty = 0;
    htab_dispose(&r->dirty_by_rel);
}

static void mark_full(struct watch_source *w, struct wroot *r, int64_t now_ms)
{
    touch(w, now_ms);
    r->full = true;
    dirty_clear(r);
}

static void mark_dirty(struct watch_source *w, struct wroot *r, const char *rel, bool forced,
                       int64_t now_ms)
{
    struct wdirty *d;
    uint64_t h = hash_str(rel);

    touch(w, now_ms);
    if (r->full)
        return;
    d = htab_get(&r->dirty_by_rel, h, eq_dirty_rel, rel);
    if (d != NULL) {
        d->forced |= forced;
        return;
    }
    if (r->ndirty >= AEGIS_LIMIT_WATCH_DIRTY_PATHS) {
        mark_full(w, r, now_ms);
        return;
    }
    d = aegis_malloc(sizeof(*d));
    d->rel = aegis_strdup(rel);
    d->forced = forced;
    aegis_grow((void **)&r->dirty, &r->dirty_cap, r->ndirty + 1, sizeof(*r->dirty));
    r->dirty[r->ndirty++] = d;
    htab_put(&r->dirty_by_rel, h, d);
}

static void writing_clear(struct wroot *r)
{
    for (size_t i = 0; i < r->writing.nb; i++) {
        for (struct hnode *n = r->writing.b[i]; n != NULL; n = n->next)
            free(n->val);
    }
    htab_dispose(&r->writing);
}

static void writing_set(struct wroot *r, const char *rel, bool on)
{
    uint64_t h = hash_str(rel);
    char *have = htab_get(&r->writing, h, eq_str, rel);

    if (on && have == NULL && r->writing.n < AEGIS_LIMIT_WATCH_DIRTY_PATHS) {
        htab_put(&r->writing, h, aegis_strdup(rel));
    } else if (!on && have != NULL) {
        htab_del(&r->writing, h, eq_str, rel);
        free(have);
    }
}

/* ---- events -------------------------------------------------------------------------------- */

static bool is_link(const struct wroot *r, const char *rel)
{
    struct stat st;
    char *path;
    bool link;

    if (r->real == NULL)
        return false;
    path = join(r->real, rel);
    link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    free(path);
    return link;
}

/* An event on the entry name of the tree directory dir_rel of root r. */
static void tree_event(struct watch_source *w, struct wroot *r, const char *dir_rel,
                       const char *name, uint32_t mask, int64_t now_ms)
{
    char *rel = join(dir_rel, name);

    if (name[0] == '.') {
        /* Not read, but `..data`-style links live here: replacing or removing a link swaps
         * what the names beside it point to. Plain dot files (an editor's swap file) are
         * ignored. */
        bool swap =
            !(mask & IN_ISDIR) && (((mask & (IN_CREATE | IN_MOVED_TO)) && is_link(r, rel)) ||
                                   (mask & (IN_DELETE | IN_MOVED_FROM)));

        if (swap) {
            r->structural++;
            mark_dirty(w, r, dir_rel, false, now_ms);
        }
    } else if (is_yaml_name(name) && !(mask & IN_ISDIR)) {
        if (mask & IN_MODIFY)
            writing_set(r, rel, true);
        else if (mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM))
            writing_set(r, rel, false);
        mark_dirty(w, r, rel, true, now_ms);
    } else if ((mask & (IN_ISDIR | IN_DELETE | IN_MOVED_FROM)) ||
               ((mask & (IN_CREATE | IN_MOVED_TO)) && is_link(r, rel))) {
        /* A directory; another name matters only as a symlink to one, or one that was. */
        mark_dirty(w, r, rel, false, now_ms);
    }
    free(rel);
}

static void on_event(struct watch_source *w, const struct inotify_event *ev, int64_t now_ms)
{
    const char *name = ev->len > 0 && ev->name[0] != '\0' ? ev->name : NULL;
    struct wdir *d;

    w->stats.events++;
    if (ev->mask & IN_Q_OVERFLOW) {
        aegis_log(AEGIS_LOG_WARN, MOD,
                  "inotify queue overflowed (see fs.inotify.max_queued_events); rescanning");
        for (size_t i = 0; i < w->nroots; i++)
            mark_full(w, &w->roots[i], now_ms);
        return;
    }
    d = dir_by_wd(w, ev->wd);
    if (d == NULL)
        return; /* a watch already dropped */
    if (ev->mask & IN_MOVE_SELF)
        d->moved = true;
    for (size_t i = 0; i < d->nuses; i++) {
        const struct wuse *u = &d->uses[i];
        struct wroot *r = &w->roots[u->root];

        if (u->parent) {
            if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) ||
                (name != NULL && strcmp(name, u->rel) == 0)) {
                r->structural++;
                mark_full(w, r, now_ms);
            }
        } else if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
            if (u->rel[0] == '\0')
                mark_full(w, r, now_ms);
            else
                mark_dirty(w, r, u->rel, false, now_ms);
        } else if (name != NULL) {
            tree_event(w, r, u->rel, name, ev->mask, now_ms);
        }
    }
    if (ev->mask & IN_IGNORED) {
        /* The kernel dropped the watch (its directory is gone); libinotifytools keeps a record
         * of it until it is restarted. */
        w->dead++;
        dir_drop(w, d, false);
    }
}

/* Handles the pending events; returns whether more may be waiting (the budget ran out). */
static bool read_events(struct watch_source *w, int64_t now_ms)
{
    if (!w->lib_open)
        return false;
    for (int i = 0; i < AEGIS_LIMIT_WATCH_EVENTS_STEP; i++) {
        struct inotify_event *ev = inotifytools_next_events(0, 1);

        if (ev == NULL) {
            int e = inotifytools_error();

            if (e != 0 && e != EINTR && e != EAGAIN)
                aegis_log(AEGIS_LOG_ERROR, MOD, "reading inotify events: %s", strerror(e));
            return false;
        }
        on_event(w, ev, now_ms);
    }
    return true;
}

/* ---- scanning ------------------------------------------------------------------------------ */

struct stage_ent {
    struct wfile *old; /* NULL: a new file */
    struct wfile *nf;  /* NULL: remove old */
    enum watch_change_kind how;
    bool fresh; /* nf->latest was read by this scan: log its diagnostics on commit */
};

struct scan {
    struct watch_source *w;
    unsigned ri;
    struct wroot *r;
    const char *base; /* the root's real path */
    uint64_t id;
    int64_t now_ms;
    struct stage_ent **st;
    size_t nst, st_cap;
    struct htab st_by_rel;
    struct aegis_diags diags; /* problems with the path itself */
    size_t files_left, dirs_left;
    bool retry; /* something could not be watched or found: scan again later */
    struct {
        dev_t dev;
        ino_t ino;
    } anc[AEGIS_LIMIT_YAML_DEPTH + 2];
    size_t nanc;
};

static bool eq_stage_rel(const void *val, const void *key)
{
    const struct stage_ent *e = val;

    return strcmp(e->nf != NULL ? e->nf->rel : e->old->rel, key) == 0;
}

static void stage_add(struct scan *c, struct wfile *old, struct wfile *nf,
                      enum watch_change_kind how, bool fresh)
{
    struct stage_ent *e = aegis_malloc(sizeof(*e));

    e->old = old;
    e->nf = nf;
    e->how = how;
    e->fresh = fresh;
    aegis_grow((void **)&c->st, &c->st_cap, c->nst + 1, sizeof(*c->st));
    c->st[c->nst++] = e;
    htab_put(&c->st_by_rel, hash_str(nf != NULL ? nf->rel : old->rel), e);
}

static void scan_diag(struct scan *c, enum aegis_severity sev, const char *rel, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

static void scan_diag(struct scan *c, enum aegis_severity sev, const char *rel, const char *fmt,
                      ...)
{
    char *name = display_name(c->r, rel);
    struct aegis_diag_loc loc = {.file = name};
    va_list ap;

    va_start(ap, fmt);
    aegis_diags_vadd(&c->diags, sev, &loc, fmt, ap);
    va_end(ap);
    free(name);
}

static void stage_remove_under(struct scan *c, const char *prefix)
{
    for (size_t i = 0; i < c->r->nfiles; i++) {
        struct wfile *f = c->r->files[i];

        if (under(f->rel, prefix) && f->seen != c->id &&
            htab_get(&c->st_by_rel, hash_str(f->rel), eq_stage_rel, f->rel) == NULL)
            stage_add(c, f, NULL, WATCH_CHANGE_REMOVED, false);
    }
}

/* Reads the file rel (forced: even if its stat did not change) and stages what changed. */
static void scan_file(struct scan *c, const char *rel, bool forced)
{
    struct wfile *old = root_file(c->r, rel);
    struct wfile *nf = NULL;
    struct wver *v = NULL;
    char *path = NULL, *name = NULL, *buf = NULL;
    struct stat st;
    struct fid id;
    size_t len = 0;
    int rc;

    if (htab_get(&c->st_by_rel, hash_str(rel), eq_stage_rel, rel) != NULL ||
        (old != NULL && old->seen == c->id))
        return; /* already handled by this scan */
    path = join(c->base, rel);
    if (stat(path, &st) != 0 || S_ISDIR(st.st_mode))
        goto gone;
    if (c->files_left == 0) {
        scan_diag(c, AEGIS_SEV_ERROR, rel, "more than %d files; this one is not read",
                  AEGIS_LIMIT_FILES_PER_DIR);
        goto gone;
    }
    c->files_left--;
    fid_of(&st, &id);
    if (old != NULL && !forced && !old->racy && fid_eq(&old->id, &id)) {
        old->seen = c->id;
        goto out;
    }
    name = display_name(c->r, rel);
    v = wver_new(name, c->now_ms);
    rc = read_file(path, name, &buf, &len, &id, &v->diags);
    if (rc == -ENOENT || rc == -ENOTDIR)
        goto gone;
    if (rc == 0) {
        EVP_Digest(buf, len, v->hash, NULL, EVP_sha256(), NULL);
        v->readok = true;
    }
    if (old != NULL && rc == 0 && old->latest->readok &&
        memcmp(old->latest->hash, v->hash, HASH_LEN) == 0) {
        /* Same content (a touch, an identical save, a new checkout of the same file). */
        old->id = id;
        old->racy = fid_racy(&id);
        old->seen = c->id;
        goto out;
    }
    nf = aegis_calloc(1, sizeof(*nf));
    nf->rel = aegis_strdup(rel);
    nf->id = id;
    nf->racy = fid_racy(&id);
    nf->seen = c->id;
    if (old != NULL && old->state == WATCH_FILE_STALE && rc == 0 &&
        memcmp(old->served->hash, v->hash, HASH_LEN) == 0) {
        /* Back to the content served all along. */
        nf->served = wver_ref(old->served);
        nf->latest = wver_ref(old->served);
        nf->state = WATCH_FILE_OK;
        stage_add(c, old, nf, WATCH_CHANGE_MODIFIED, false);
        goto out;
    }
    if (rc == 0)
        resource_load_buffer(&v->set, name, buf, len, &v->diags);
    if (v->diags.nerrors == 0) {
        nf->served = wver_ref(v);
        nf->latest = wver_ref(v);
        nf->state = WATCH_FILE_OK;
        stage_add(c, old, nf, old != NULL ? WATCH_CHANGE_MODIFIED : WATCH_CHANGE_ADDED, true);
    } else if (old != NULL && old->state != WATCH_FILE_INVALID) {
        /* Errors: keep serving the last clean version. */
        nf->served = wver_ref(old->served);
        nf->latest = wver_ref(v);
        nf->state = WATCH_FILE_STALE;
        stage_add(c, old, nf, WATCH_CHANGE_FAILED, true);
    } else {
        /* Never clean: serve what is valid, as a fresh start would. */
        nf->served = wver_ref(v);
        nf->latest = wver_ref(v);
        nf->state = WATCH_FILE_INVALID;
        stage_add(c, old, nf, old != NULL ? WATCH_CHANGE_MODIFIED : WATCH_CHANGE_ADDED, true);
    }
    goto out;
gone:
    if (old != NULL)
        stage_add(c, old, NULL, WATCH_CHANGE_REMOVED, false);
out:
    wver_unref(v);
    free(buf);
    free(name);
    free(path);
}

/* Walks the directory rel (whose stat is st): watches it, then reads what is below it. */
static void scan_dir(struct scan *c, const char *rel, const struct stat *st, unsigned depth)
{
    char *path = join(c->base, rel);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    DIR *dir = NULL;
    int rc;

    for (size_t i = 0; i < c->nanc; i++) {
        if (c->anc[i].dev == st->st_dev && c->anc[i].ino == st->st_ino) {
            scan_diag(c, AEGIS_SEV_ERROR, rel,
                      "this directory contains itself through a symlink loop; not read again");
            goto out;
        }
    }
    if (depth > AEGIS_LIMIT_YAML_DEPTH) {
        scan_diag(c, AEGIS_SEV_ERROR, rel, "directories nested deeper than %d levels; not read",
                  AEGIS_LIMIT_YAML_DEPTH);
        goto out;
    }
    if (c->dirs_left == 0) {
        scan_diag(c, AEGIS_SEV_ERROR, rel, "more than %d directories; this one is not read",
                  AEGIS_LIMIT_WATCH_DIRS);
        goto out;
    }
    c->dirs_left--;
    /* Watch first, then list: an entry created in between is seen by one or the other. */
    rc = dir_use(c->w, c->ri, false, rel, path, st, c->id);
    if (rc < 0) {
        scan_diag(
            c, AEGIS_SEV_ERROR, rel, "cannot watch this directory: %s%s; retrying", strerror(-rc),
            rc == -ENOSPC ? " (the inotify watch limit: raise fs.inotify.max_user_watches)" : "");
        c->retry = true;
    }
    dir = opendir(path);
    if (dir == NULL) {
        if (errno != ENOENT && errno != ENOTDIR)
            scan_diag(c, AEGIS_SEV_ERROR, rel, "cannot read the directory: %s", strerror(errno));
        goto out;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        aegis_grow((void **)&names, &cap, n + 1, sizeof(*names));
        names[n++] = aegis_strdup(de->d_name);
    }
    closedir(dir);
    c->anc[c->nanc].dev = st->st_dev;
    c->anc[c->nanc].ino = st->st_ino;
    c->nanc++;
    for (size_t i = 0; i < n; i++) {
        char *sub = join(rel, names[i]);
        char *subpath = join(c->base, sub);
        struct stat sst;

        /* stat, not lstat: symlinks are followed, as resource_load_path does. */
        if (stat(subpath, &sst) != 0) {
            /* a dangling symlink, or removed meanwhile: an event follows */
        } else if (S_ISDIR(sst.st_mode)) {
            scan_dir(c, sub, &sst, depth + 1);
        } else if (is_yaml_name(names[i])) {
            scan_file(c, sub, false);
        }
        free(subpath);
        free(sub);
    }
    c->nanc--;
out:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(path);
}

/* Re-reads rel, whatever it is now: a directory tree, a file, or nothing. */
static void scan_path(struct scan *c, const char *rel, bool forced)
{
    char *path = join(c->base, rel);
    struct stat st;
    bool found = stat(path, &st) == 0;

    if (found && S_ISDIR(st.st_mode)) {
        /* The ancestors, for loop detection below rel. */
        char *up = aegis_strdup(rel);

        c->nanc = 0;
        for (;;) {
            char *slash = strrchr(up, '/');
            char *p;
            struct stat ast;

            if (*up == '\0')
                break;
            if (slash != NULL)
                *slash = '\0';
            else
                *up = '\0';
            p = join(c->base, up);
            if (stat(p, &ast) == 0 && c->nanc < AEGIS_LIMIT_YAML_DEPTH) {
                c->anc[c->nanc].dev = ast.st_dev;
                c->anc[c->nanc].ino = ast.st_ino;
                c->nanc++;
            }
            free(p);
        }
        free(up);
        scan_dir(c, rel, &st, (unsigned)c->nanc);
        c->nanc = 0;
        stage_remove_under(c, rel);
        dirs_sweep(c->w, c->ri, rel, false, c->id);
    } else if (found && (is_yaml_name(rel) || *rel == '\0')) {
        scan_file(c, rel, forced);
    } else {
        stage_remove_under(c, rel);
    }
    free(path);
}

/* Notes that out/name resolves a part of the watched path: renaming it changes the result. */
static void watch_part(struct scan *c, const char *dir, const char *name)
{
    struct stat st;
    int rc;

    if (stat(*dir != '\0' ? dir : "/", &st) != 0)
        return;
    rc = dir_use(c->w, c->ri, true, name, *dir != '\0' ? dir : "/", &st, c->id);
    if (rc < 0) {
        scan_diag(c, AEGIS_SEV_WARNING, "", "cannot watch %s for changes of %s: %s; retrying",
                  *dir != '\0' ? dir : "/", name, strerror(-rc));
        c->retry = true;
    }
}

/*
 * realpath(3) that watches as it goes: every symlink met (in the path or in a link's target)
 * and the final entry are watched in their parent directory, so that replacing any of them
 * triggers a full rescan. *real gets the result. -ENOENT etc. when it does not resolve; the
 * missing part is watched then too, so that its creation is seen.
 */
static int resolve(struct scan *c, const char *path, char **real)
{
    char *out = aegis_strdup(""); /* resolved so far, without the leading "/" when empty */
    char *rest = *path == '/' ? aegis_strdup(path) : join(c->w->cwd, path);
    unsigned links = 0;
    int rc = 0;

    *real = NULL;
    for (;;) {
        char *p = rest, *comp, *cand;
        struct stat st;
        size_t n;

        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        n = strcspn(p, "/");
        comp = aegis_strndup(p, n);
        memmove(rest, p + n, strlen(p + n) + 1);
        if (strcmp(comp, ".") == 0) {
            free(comp);
            continue;
        }
        if (strcmp(comp, "..") == 0) {
            char *slash = strrchr(out, '/');

            if (slash != NULL)
                *slash = '\0';
            free(comp);
            continue;
        }
        cand = aegis_asprintf("%s/%s", out, comp);
        if (lstat(cand, &st) != 0) {
            rc = -errno;
            watch_part(c, out, comp);
            free(cand);
            free(comp);
            goto out;
        }
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t tn = readlink(cand, target, sizeof(target) - 1);
            char *next;

            watch_part(c, out, comp);
            free(cand);
            free(comp);
            if (tn < 0 || ++links > MAX_LINKS) {
                rc = tn < 0 ? -errno : -ELOOP;
                goto out;
            }
            target[tn] = '\0';
            next = aegis_asprintf("%s/%s", target, rest);
            free(rest);
            rest = next;
            if (target[0] == '/')
                out[0] = '\0';
            continue;
        }
        if (!S_ISDIR(st.st_mode) && rest[strspn(rest, "/")] != '\0') {
            rc = -ENOTDIR;
            free(cand);
            free(comp);
            goto out;
        }
        free(out);
        out = cand;
        free(comp);
    }
    if (*out == '\0') {
        *real = aegis_strdup("/");
    } else {
        char *slash = strrchr(out, '/');

        *slash = '\0';
        watch_part(c, out, slash + 1);
        *slash = '/';
        *real = out;
        out = NULL;
    }
out:
    free(out);
    free(rest);
    return rc;
}

/* Applies a scan's stage to its root and records the changes. */
static void stage_commit(struct scan *c)
{
    struct watch_source *w = c->w;
    struct wroot *r = c->r;
    bool removed = false;

    for (size_t i = 0; i < c->nst; i++) {
        struct stage_ent *e = c->st[i];
        struct wfile *f = e->nf != NULL ? e->nf : e->old;
        char *name = display_name(r, f->rel);

        if (e->fresh && e->nf != NULL) {
            const struct wver *v = e->nf->latest;

            for (size_t k = 0; k < v->diags.n; k++)
                log_diag(&v->diags.v[k]);
            if (e->nf->state == WATCH_FILE_STALE)
                aegis_log(AEGIS_LOG_ERROR, MOD,
                          "%s has errors; its last good version (%zu resources) is still served",
                          name, e->nf->served->set.n);
            else if (e->nf->state == WATCH_FILE_INVALID)
                aegis_log(AEGIS_LOG_ERROR, MOD,
                          "%s has errors; only its %zu valid resources are served", name,
                          e->nf->served->set.n);
        }
        aegis_grow((void **)&w->changes, &w->changes_cap, w->nchanges + 1, sizeof(*w->changes));
        w->changes[w->nchanges].path = name;
        w->changes[w->nchanges].how = e->how;
        w->nchanges++;
        if (e->old != NULL && e->nf != NULL) {
            /* Replace in place: the table keeps its order and index. */
            wver_unref(e->old->served);
            wver_unref(e->old->latest);
            e->old->served = e->nf->served;
            e->old->latest = e->nf->latest;
            e->old->state = e->nf->state;
            e->old->id = e->nf->id;
            e->old->racy = e->nf->racy;
            e->old->seen = e->nf->seen;
            free(e->nf->rel);
            free(e->nf);
        } else if (e->nf != NULL) {
            aegis_grow((void **)&r->files, &r->files_cap, r->nfiles + 1, sizeof(*r->files));
            r->files[r->nfiles++] = e->nf;
            htab_put(&r->files_by_rel, hash_str(e->nf->rel), e->nf);
            r->unsorted = true;
        } else {
            htab_del(&r->files_by_rel, hash_str(e->old->rel), eq_file_rel, e->old->rel);
            e->old->seen = UINT64_MAX; /* marks it for removal below */
            removed = true;
        }
        free(e);
    }
    c->nst = 0;
    if (removed) {
        size_t k = 0;

        for (size_t i = 0; i < r->nfiles; i++) {
            if (r->files[i]->seen == UINT64_MAX)
                wfile_free(r->files[i]);
            else
                r->files[k++] = r->files[i];
        }
        r->nfiles = k;
    }
}

static void stage_discard(struct scan *c)
{
    for (size_t i = 0; i < c->nst; i++) {
        wfile_free(c->st[i]->nf);
        free(c->st[i]);
    }
    c->nst = 0;
}

/* Whether the diagnostic dg is about prefix or something below it (display paths). */
static bool diag_under(const struct aegis_diag *dg, const char *prefix)
{
    size_t n = strlen(prefix);
    const char *f = dg->file != NULL ? dg->file : "";

    return strncmp(f, prefix, n) == 0 && (f[n] == '\0' || f[n] == '/');
}

/*
 * Replaces the root's own diagnostics about the paths a scan covered (prefixes, relative) by
 * the scan's, logging the ones not reported before. Returns whether the list changed.
 */
static bool root_diags_update(struct wroot *r, const struct aegis_diags *fresh,
                              struct wdirty *const *prefixes, size_t nprefixes)
{
    struct aegis_diags next;
    bool changed = false;
    char **pfx = aegis_calloc(nprefixes + 1, sizeof(*pfx));

    for (size_t i = 0; i < nprefixes; i++)
        pfx[i] = display_name(r, prefixes[i]->rel);
    aegis_diags_init(&next);
    for (size_t i = 0; i < r->diags.n; i++) {
        const struct aegis_diag *dg = &r->diags.v[i];
        bool covered = false;

        for (size_t k = 0; k < nprefixes && !covered; k++)
            covered = diag_under(dg, pfx[k]);
        if (!covered)
            diags_copy_one(&next, dg);
        else if (!diags_has(fresh, dg->file != NULL ? dg->file : "", dg->msg))
            changed = true; /* solved */
    }
    for (size_t i = 0; i < fresh->n; i++) {
        const struct aegis_diag *dg = &fresh->v[i];

        if (diags_has(&next, dg->file != NULL ? dg->file : "", dg->msg))
            continue;
        if (!diags_has(&r->diags, dg->file != NULL ? dg->file : "", dg->msg)) {
            log_diag(dg);
            changed = true;
        }
        diags_copy_one(&next, dg);
    }
    aegis_diags_dispose(&r->diags);
    r->diags = next;
    for (size_t i = 0; i < nprefixes; i++)
        free(pfx[i]);
    free(pfx);
    return changed;
}

/*
 * Re-reads what is marked in root ri: everything (re-resolving the path) or the dirty paths.
 * When the tree may have been swapped while it was read, nothing is used and the root is marked
 * for a full rescan. Returns whether files or the root's diagnostics changed.
 */
static bool scan_root(struct watch_source *w, unsigned ri, int64_t now_ms)
{
    struct wroot *r = &w->roots[ri];
    struct scan c = {.w = w, .ri = ri, .r = r, .now_ms = now_ms};
    struct wdirty **dirty = r->dirty;
    size_t ndirty = r->ndirty;
    char empty[1] = "";
    struct wdirty whole = {.rel = empty};
    struct wdirty *wholep = &whole;
    bool full = r->full, ok, changed = false;
    uint64_t structural = r->structural;
    char *real = NULL, *after = NULL;
    int rc = 0;

    c.id = ++w->scan;
    c.files_left = AEGIS_LIMIT_FILES_PER_DIR;
    c.dirs_left = AEGIS_LIMIT_WATCH_DIRS;
    aegis_diags_init(&c.diags);
    /* Take the marks: events read while scanning mark afresh. */
    r->full = false;
    r->dirty = NULL;
    r->ndirty = r->dirty_cap = 0;
    htab_dispose(&r->dirty_by_rel);

    if (full) {
        r->retry_at = WATCH_NO_DEADLINE;
        rc = resolve(&c, r->path, &real);
        if (rc < 0 || real == NULL) {
            scan_diag(&c, AEGIS_SEV_ERROR, "", "cannot resolve: %s; waiting for it", strerror(-rc));
            /* A missing part is watched in its parent (resolve); anything else is retried. */
            if (rc != -ENOENT && rc != -ENOTDIR)
                c.retry = true;
            stage_remove_under(&c, "");
        } else {
            c.base = real;
            scan_path(&c, "", false);
            stage_remove_under(&c, ""); /* when the path is now a file */
        }
    } else if (r->real != NULL) {
        c.base = r->real;
        for (size_t i = 0; i < ndirty; i++)
            scan_path(&c, dirty[i]->rel, dirty[i]->forced);
    }

    /* Anything that could have swapped the tree while it was read? The events are queued by
     * the time the system calls that caused them return, so reading them now sees them all. */
    read_events(w, now_ms);
    ok = r->structural == structural;
    if (ok && full && real != NULL) {
        after = realpath(r->path, NULL);
        ok = after != NULL && strcmp(after, real) == 0;
    }
    if (!ok) {
        stage_discard(&c);
        w->stats.discarded++;
        aegis_log(AEGIS_LOG_DEBUG, MOD, "%s changed while it was read; reading it again", r->path);
        mark_full(w, r, now_ms);
    } else {
        changed = c.nst > 0;
        stage_commit(&c);
        if (full) {
            free(r->real);
            r->real = real;
            real = NULL;
            dirs_sweep(w, ri, "", true, c.id);
        }
        if (root_diags_update(r, &c.diags, full ? &wholep : dirty, full ? 1 : ndirty))
            changed = true;
        if (c.retry)
            r->retry_at = now_ms + (int64_t)w->opts.retry_ms;
    }
    for (size_t i = 0; i < ndirty; i++) {
        free(dirty[i]->rel);
        free(dirty[i]);
    }
    free(dirty);
    htab_dispose(&c.st_by_rel);
    free(c.st);
    aegis_diags_dispose(&c.diags);
    free(real);
    free(after);
    return changed;
}

/* ---- snapshots ----------------------------------------------------------------------------- */

static int cmp_file_ptr(const void *a, const void *b)
{
    return cmp_rel((*(struct wfile *const *)a)->rel, (*(struct wfile *const *)b)->rel);
}

static int cmp_change(const void *a, const void *b)
{
    return strcmp(((const struct watch_change *)a)->path, ((const struct watch_change *)b)->path);
}

static struct watch_snapshot *snapshot_build(struct watch_source *w)
{
    struct watch_snapshot *s = aegis_calloc(1, sizeof(*s));
    size_t nfiles = 0, nres = 0, nghosts = 0, k = 0;

    atomic_init(&s->refs, 1);
    s->generation = ++w->generation;
    aegis_diags_init(&s->diags);
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];

        if (r->unsorted && r->nfiles > 1)
            qsort(r->files, r->nfiles, sizeof(*r->files), cmp_file_ptr);
        r->unsorted = false;
        nfiles += r->nfiles;
        for (size_t j = 0; j < r->nfiles; j++) {
            nres += r->files[j]->served->set.n;
            nghosts += r->files[j]->served->set.nghosts;
        }
        diags_copy(&s->diags, &r->diags);
    }
    s->files = aegis_calloc(nfiles + 1, sizeof(*s->files));
    s->vers = aegis_calloc(2 * nfiles + 1, sizeof(*s->vers));
    s->set.v = aegis_calloc(nres + 1, sizeof(*s->set.v));
    s->set.cap = nres;
    s->set.ghosts = aegis_calloc(nghosts + 1, sizeof(*s->set.ghosts));
    s->set.ghosts_cap = nghosts;
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];

        for (size_t j = 0; j < r->nfiles; j++) {
            const struct wfile *f = r->files[j];
            const struct aegis_resource_set *fs = &f->served->set;
            struct watch_file *wf = &s->files[k++];

            wf->path = f->latest->name;
            wf->state = f->state;
            wf->diags = &f->latest->diags;
            wf->nresources = fs->n;
            wf->read_ms = f->latest->read_ms;
            wf->served_ms = f->served->read_ms;
            s->vers[s->nvers++] = wver_ref(f->served);
            if (f->latest != f->served)
                s->vers[s->nvers++] = wver_ref(f->latest);
            if (fs->n > 0)
                memcpy(s->set.v + s->set.n, fs->v, fs->n * sizeof(*fs->v));
            s->set.n += fs->n;
            if (fs->nghosts > 0)
                memcpy(s->set.ghosts + s->set.nghosts, fs->ghosts,
                       fs->nghosts * sizeof(*fs->ghosts));
            s->set.nghosts += fs->nghosts;
            s->set.nfiles += fs->nfiles;
            s->set.ndocs += fs->ndocs;
        }
    }
    s->nfiles = nfiles;
    if (w->nchanges > 1)
        qsort(w->changes, w->nchanges, sizeof(*w->changes), cmp_change);
    s->changes = w->changes;
    s->nchanges = w->nchanges;
    w->changes = NULL;
    w->nchanges = w->changes_cap = 0;
    return s;
}

struct watch_snapshot *watch_snapshot_ref(struct watch_snapshot *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void watch_snapshot_unref(struct watch_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->nvers; i++)
        wver_unref(s->vers[i]);
    for (size_t i = 0; i < s->nchanges; i++)
        free((char *)s->changes[i].path);
    /* The set is a view: its resources and ghosts belong to the versions. */
    free(s->set.v);
    free(s->set.ghosts);
    free(s->vers);
    free(s->files);
    free(s->changes);
    aegis_diags_dispose(&s->diags);
    free(s);
}

uint64_t watch_snapshot_generation(const struct watch_snapshot *s)
{
    return s->generation;
}

const struct aegis_resource_set *watch_snapshot_resources(const struct watch_snapshot *s)
{
    return &s->set;
}

const struct watch_file *watch_snapshot_files(const struct watch_snapshot *s, size_t *n)
{
    *n = s->nfiles;
    return s->files;
}

const struct watch_file *watch_snapshot_find_file(const struct watch_snapshot *s, const char *path)
{
    for (size_t i = 0; i < s->nfiles; i++) {
        if (strcmp(s->files[i].path, path) == 0)
            return &s->files[i];
    }
    return NULL;
}

const struct watch_change *watch_snapshot_changes(const struct watch_snapshot *s, size_t *n)
{
    *n = s->nchanges;
    return s->changes;
}

const struct aegis_diags *watch_snapshot_diags(const struct watch_snapshot *s)
{
    return &s->diags;
}

const char *watch_file_state_name(enum watch_file_state state)
{
    return (unsigned)state < sizeof(file_state_names) / sizeof(*file_state_names)
               ? file_state_names[state]
               : "?";
}

const char *watch_change_name(enum watch_change_kind how)
{
    return (unsigned)how < sizeof(change_names) / sizeof(*change_names) ? change_names[how] : "?";
}

/* ---- the source ---------------------------------------------------------------------------- */

/* Re-reads every root with marks; returns whether anything changed. */
static bool reload(struct watch_source *w, int64_t now_ms)
{
    bool changed = false;
    size_t nfiles = 0;

    w->pending = false;
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];

        writing_clear(r);
        if ((r->full || r->ndirty > 0) && scan_root(w, (unsigned)i, now_ms))
            changed = true;
    }
    for (size_t i = 0; i < w->nroots; i++)
        nfiles += w->roots[i].nfiles;
    w->stats.files = nfiles;
    w->stats.watches = w->ndirs;
    return changed;
}

static void publish(struct watch_source *w)
{
    struct watch_snapshot *s = snapshot_build(w);
    size_t counts[sizeof(change_names) / sizeof(*change_names)] = {0};

    for (size_t i = 0; i < s->nchanges; i++)
        counts[s->changes[i].how]++;
    aegis_log(AEGIS_LOG_INFO, MOD,
              "snapshot %llu: %zu resources from %zu files (%zu added, %zu modified, %zu removed, "
              "%zu failed)",
              (unsigned long long)s->generation, s->set.n, s->nfiles, counts[WATCH_CHANGE_ADDED],
              counts[WATCH_CHANGE_MODIFIED], counts[WATCH_CHANGE_REMOVED],
              counts[WATCH_CHANGE_FAILED]);
    watch_snapshot_unref(w->snap);
    w->snap = s;
    w->stats.reloads++;
}

/* Restarts libinotifytools to free the records of dead watches, then rescans everything. */
static int restart(struct watch_source *w, int64_t now_ms)
{
    struct aegis_err err;
    int rc;

    aegis_log(AEGIS_LOG_INFO, MOD, "restarting libinotifytools to drop %zu dead watch records",
              w->dead);
    dirs_clear(w);
    lib_stop(w);
    w->dead = 0;
    w->stats.rebuilds++;
    rc = lib_start(w, &err);
    if (rc < 0) {
        aegis_log(AEGIS_LOG_ERROR, MOD, "%s; files are no longer watched", err.msg);
        w->broken = true;
        return rc;
    }
    for (size_t i = 0; i < w->nroots; i++)
        mark_full(w, &w->roots[i], now_ms);
    return 0;
}

static int64_t reload_due(const struct watch_source *w)
{
    int64_t cap, quiet;

    if (!w->pending)
        return WATCH_NO_DEADLINE;
    cap = w->first_ms + (int64_t)w->opts.max_delay_ms;
    quiet = w->last_ms + (int64_t)w->opts.quiet_ms;
    for (size_t i = 0; i < w->nroots; i++) {
        if (w->roots[i].writing.n > 0)
            return cap; /* a writer is still at work: wait for its close (or the cap) */
    }
    return min64(quiet, cap);
}

int watch_process(struct watch_source *w, int64_t now_ms, int64_t *next_deadline_ms)
{
    bool more, changed = false, now_due = false;
    int64_t next;

    *next_deadline_ms = WATCH_NO_DEADLINE;
    if (w->broken)
        return -AEGIS_E_STATE;
    more = read_events(w, now_ms);
    if (w->dead > w->opts.dead_max) {
        int rc = restart(w, now_ms);

        if (rc < 0)
            return rc;
        now_due = true;
    }
    for (size_t i = 0; i < w->nroots; i++) {
        if (w->roots[i].retry_at <= now_ms) {
            w->roots[i].retry_at = WATCH_NO_DEADLINE;
            mark_full(w, &w->roots[i], now_ms);
        }
    }
    if (now_due || now_ms >= reload_due(w))
        changed = reload(w, now_ms);
    if (changed)
        publish(w);
    next = more ? now_ms : reload_due(w);
    for (size_t i = 0; i < w->nroots; i++)
        next = min64(next, w->roots[i].retry_at);
    *next_deadline_ms = next;
    return changed ? 1 : 0;
}

int watch_new(const char *const *paths, size_t npaths, const struct watch_opts *opts,
              int64_t now_ms, struct watch_source **out, struct aegis_err *err)
{
    struct watch_source *w = NULL;
    int rc = 0;

    *out = NULL;
    if (lib_in_use)
        return aegis_err_set(err, -AEGIS_E_STATE, NULL,
                             "only one directory watcher per process (libinotifytools is global)");
    if (npaths == 0 || npaths > AEGIS_LIMIT_WATCH_PATHS)
        return aegis_err_set(err, -AEGIS_E_LIMIT, NULL, "between 1 and %d paths can be watched",
                             AEGIS_LIMIT_WATCH_PATHS);
    for (size_t i = 0; i < npaths; i++) {
        if (paths[i] == NULL || paths[i][0] == '\0')
            return aegis_err_set(err, -AEGIS_E_INVALID, NULL, "an empty path cannot be watched");
    }
    w = aegis_calloc(1, sizeof(*w));
    w->fd = -1;
    if (opts != NULL)
        w->opts = *opts;
    if (w->opts.quiet_ms == 0)
        w->opts.quiet_ms = WATCH_QUIET_MS;
    if (w->opts.max_delay_ms == 0)
        w->opts.max_delay_ms = WATCH_MAX_DELAY_MS;
    if (w->opts.retry_ms == 0)
        w->opts.retry_ms = WATCH_RETRY_MS;
    if (w->opts.dead_max == 0)
        w->opts.dead_max = AEGIS_LIMIT_WATCH_DEAD_RECORDS;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0) {
        rc = aegis_err_set(err, -errno, NULL, "epoll_create1: %s", strerror(errno));
        free(w);
        return rc;
    }
    w->cwd = getcwd(NULL, 0);
    if (w->cwd == NULL)
        w->cwd = aegis_strdup("/");
    w->roots = aegis_calloc(npaths, sizeof(*w->roots));
    w->nroots = npaths;
    for (size_t i = 0; i < npaths; i++) {
        struct wroot *r = &w->roots[i];
        size_t n = strlen(paths[i]);

        while (n > 1 && paths[i][n - 1] == '/')
            n--;
        r->path = aegis_strndup(paths[i], n);
        r->retry_at = WATCH_NO_DEADLINE;
        r->full = true;
        aegis_diags_init(&r->diags);
    }
    lib_in_use = true;
    rc = lib_start(w, err);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];

        for (int attempt = 0; attempt < INITIAL_ATTEMPTS && r->full; attempt++)
            scan_root(w, (unsigned)i, now_ms);
        if (r->real == NULL) {
            char *real = realpath(r->path, NULL);

            rc = aegis_err_set(err, real == NULL ? -errno : -AEGIS_E_STATE, r->path,
                               "--watch %s: %s", r->path,
                               real == NULL ? strerror(errno) : "changed during every read");
            free(real);
            goto out;
        }
    }
    for (size_t i = 0; i < w->nroots; i++)
        w->stats.files += w->roots[i].nfiles;
    w->stats.watches = w->ndirs;
    publish(w);
out:
    if (rc < 0) {
        watch_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void watch_free(struct watch_source *w)
{
    if (w == NULL)
        return;
    dirs_clear(w);
    lib_stop(w);
    for (size_t i = 0; i < w->nroots; i++) {
        struct wroot *r = &w->roots[i];

        for (size_t j = 0; j < r->nfiles; j++)
            wfile_free(r->files[j]);
        free(r->files);
        htab_dispose(&r->files_by_rel);
        dirty_clear(r);
        free(r->dirty);
        writing_clear(r);
        aegis_diags_dispose(&r->diags);
        free(r->path);
        free(r->real);
    }
    free(w->roots);
    htab_dispose(&w->dirs_by_wd);
    htab_dispose(&w->dirs_by_ino);
    free(w->dirs);
    for (size_t i = 0; i < w->nchanges; i++)
        free((char *)w->changes[i].path);
    free(w->changes);
    watch_snapshot_unref(w->snap);
    if (w->epfd >= 0)
        close(w->epfd);
    free(w->cwd);
    free(w);
    lib_in_use = false;
}

int watch_fd(const struct watch_source *w)
{
    return w->epfd;
}

struct watch_snapshot *watch_ref_snapshot(struct watch_source *w)
{
    return watch_snapshot_ref(w->snap);
}

void watch_get_stats(const struct watch_source *w, struct watch_stats *st)
{
    *st = w->stats;
}
