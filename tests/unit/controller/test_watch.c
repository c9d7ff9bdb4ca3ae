/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/watch.c on temporary directories, driven with an injected clock:
 * the first load; a new file, an edit, write + rename over, delete + create, vim's backup dance,
 * a delete; a bad edit keeping the file's last good resources (and a file that never read
 * cleanly serving its valid documents); a burst of 50 writes as one reload and a steady trickle
 * reloading at the cap; nested, moved and deleted directories; non-YAML and dot files ignored;
 * a git-sync style symlink swap and a Kubernetes ConfigMap `..data` swap; two watched paths; a
 * watched directory deleted and created again; snapshots staying immutable; the restart of
 * libinotifytools after many dead watches; and the errors of watch_new.
 *
 * Every wait goes through settle(), which polls the descriptor with a timeout and gives up after
 * a bounded number of steps, so a broken watcher fails the test rather than hanging it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aegis/log.h"
#include "check.h"
#include "watch.h"
#include "watchutil.h"

#define ISSUER(name)                                                                               \
    "apiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: " name "}\nspec: {ca: {}}\n"
#define BROKEN "apiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: [unclosed\n"
#define BAD_FIELD(name)                                                                            \
    "apiVersion: aegis.dev/v1alpha1\nkind: Issuer\nmetadata: {name: " name "}\n"                   \
    "spec: {ca: {}, bogus: 1}\n"

static char base[] = "/tmp/aegis-test-watch.XXXXXX";
static int64_t clk = 1000000; /* the injected clock, in ms */
static const struct watch_opts opts = {.quiet_ms = 50, .max_delay_ms = 2000, .retry_ms = 5000};

static char logbuf[1 << 16];
static size_t loglen;

static void sink(enum aegis_log_level level, const char *line, void *arg)
{
    (void)level;
    (void)arg;
    if (getenv("WATCH_TEST_LOG") != NULL)
        printf("# %s\n", line);
    loglen += (size_t)snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%s\n", line);
    if (loglen >= sizeof(logbuf))
        loglen = 0; /* only recent lines matter */
}

/* base/rel, in one of a few rotating buffers. */
static const char *P(const char *rel)
{
    static char bufs[4][512];
    static int i;

    i = (i + 1) % 4;
    snprintf(bufs[i], sizeof(bufs[i]), "%s/%s", base, rel);
    return bufs[i];
}

static void mkdirs(const char *rel)
{
    char tmp[512];

    snprintf(tmp, sizeof(tmp), "%s/%s", base, rel);
    for (char *p = tmp + strlen(base) + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    mkdir(tmp, 0755);
}

static void put(const char *rel, const char *content)
{
    FILE *f = fopen(P(rel), "w");

    if (f == NULL) {
        printf("# cannot write %s: %s\n", P(rel), strerror(errno));
        abort();
    }
    fputs(content, f);
    fclose(f);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rmtree(const char *rel)
{
    nftw(P(rel), rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs the source until it is idle (watchutil.h); a failure is a failed check. */
static int settle(struct watch_source *w)
{
    int rc = watchutil_settle(w, &clk);

    CHECK(rc >= 0, "the watcher settles");
    return rc;
}

/* The names of the snapshot's resources, in order, comma-separated. */
static const char *names(struct watch_source *w)
{
    static char out[4096];
    struct watch_snapshot *s = watch_ref_snapshot(w);
    const struct aegis_resource_set *set = watch_snapshot_resources(s);
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < set->n && len < sizeof(out); i++)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? "," : "",
                                set->v[i]->meta.name);
    watch_snapshot_unref(s);
    return out;
}

/* The latest snapshot's changes as "how:path" with paths relative to base. */
static const char *changes(struct watch_source *w)
{
    static char out[4096];
    struct watch_snapshot *s = watch_ref_snapshot(w);
    size_t n, len = 0, skip = strlen(base) + 1;
    const struct watch_change *c = watch_snapshot_changes(s, &n);

    out[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof(out); i++)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s:%s", i ? "," : "",
                                watch_change_name(c[i].how),
                                strlen(c[i].path) > skip ? c[i].path + skip : c[i].path);
    watch_snapshot_unref(s);
    return out;
}

/* The state of the file base/rel in the latest snapshot, or "absent". */
static const char *state(struct watch_source *w, const char *rel, size_t *nerrors)
{
    struct watch_snapshot *s = watch_ref_snapshot(w);
    const struct watch_file *f = watch_snapshot_find_file(s, P(rel));
    const char *st = f != NULL ? watch_file_state_name(f->state) : "absent";

    if (nerrors != NULL)
        *nerrors = f != NULL ? f->diags->nerrors : 0;
    watch_snapshot_unref(s);
    return st;
}

static struct watch_source *start(const char *rel)
{
    const char *paths[] = {P(rel)};
    struct watch_source *w = NULL;
    struct aegis_err err = {0};
    int rc = watch_new(paths, 1, &opts, clk, &w, &err);

    if (rc != 0)
        printf("# watch_new(%s): %d %s\n", paths[0], rc, err.msg);
    return w;
}

static void test_directory(void)
{
    struct watch_source *w;
    struct watch_snapshot *old, *cur;
    size_t nerr = 0;

    mkdirs("d/sub");
    put("d/a.yaml", ISSUER("a"));
    put("d/sub/b.yml", ISSUER("b1") "---\n" ISSUER("b2"));
    put("d/notes.txt", ISSUER("txt"));
    put("d/.hidden.yaml", ISSUER("hidden"));
    put("d/c.json", "{}");
    w = start("d");
    if (!CHECK(w != NULL, "watch_new on a directory"))
        return;
    CHECK_STR(names(w), "a,b1,b2", "first load: YAML files, recursively, multi-document");
    CHECK_STR(changes(w), "added:d/a.yaml,added:d/sub/b.yml", "first load: every file added");
    CHECK_INT(settle(w), 0, "nothing more after the first load");

    /* A new file. */
    put("d/n.yaml", ISSUER("n"));
    CHECK_INT(settle(w), 1, "new file: one reload");
    CHECK_STR(names(w), "a,n,b1,b2", "new file: its resource is added");
    CHECK_STR(changes(w), "added:d/n.yaml", "new file: reported as added");

    /* An edit in place. */
    put("d/a.yaml", ISSUER("a2"));
    CHECK_INT(settle(w), 1, "edit: one reload");
    CHECK_STR(names(w), "a2,n,b1,b2", "edit: new content");
    CHECK_STR(changes(w), "modified:d/a.yaml", "edit: reported as modified");

    /* Write a temporary file, rename it over (most editors, and sed -i with a plain name). */
    put("d/.a.yaml.tmp", ISSUER("a3"));
    rename(P("d/.a.yaml.tmp"), P("d/a.yaml"));
    put("d/sedXYZ12", ISSUER("a4"));
    rename(P("d/sedXYZ12"), P("d/a.yaml"));
    CHECK_INT(settle(w), 1, "temp + rename (twice): one reload");
    CHECK_STR(names(w), "a4,n,b1,b2", "temp + rename: new content");
    CHECK_STR(changes(w), "modified:d/a.yaml", "temp + rename: modified");

    /* Delete, then create again. */
    unlink(P("d/a.yaml"));
    put("d/a.yaml", ISSUER("a5"));
    CHECK_INT(settle(w), 1, "delete + create: one reload");
    CHECK_STR(names(w), "a5,n,b1,b2", "delete + create: new content");
    CHECK_STR(changes(w), "modified:d/a.yaml", "delete + create: modified, not removed");

    /* vim with backupcopy=no: rename to a~, probe file 4913, write anew, delete the backup. */
    rename(P("d/a.yaml"), P("d/a.yaml~"));
    put("d/4913", "");
    unlink(P("d/4913"));
    put("d/a.yaml", ISSUER("a6"));
    unlink(P("d/a.yaml~"));
    CHECK_INT(settle(w), 1, "vim's backup dance: one reload");
    CHECK_STR(names(w), "a6,n,b1,b2", "vim's backup dance: new content");
    CHECK_STR(changes(w), "modified:d/a.yaml", "vim's backup dance: modified");

    /* The same content again (a touch, an identical save): no snapshot. */
    put("d/a.yaml", ISSUER("a6"));
    CHECK_INT(settle(w), 0, "identical save: no new snapshot");

    /* Non-YAML and dot files are ignored. */
    put("d/other.txt", "x");
    put("d/.swp.yaml", ISSUER("swap"));
    unlink(P("d/notes.txt"));
    CHECK_INT(settle(w), 0, "non-YAML and dot files: no new snapshot");

    /* A delete. */
    old = watch_ref_snapshot(w);
    unlink(P("d/n.yaml"));
    CHECK_INT(settle(w), 1, "delete: one reload");
    CHECK_STR(names(w), "a6,b1,b2", "delete: its resources are gone");
    CHECK_STR(changes(w), "removed:d/n.yaml", "delete: reported as removed");
    CHECK_INT(watch_snapshot_resources(old)->n, 4, "an older snapshot is unchanged");
    cur = watch_ref_snapshot(w);
    CHECK_INT(watch_snapshot_generation(cur), watch_snapshot_generation(old) + 1,
              "generation counts snapshots");
    watch_snapshot_unref(cur);
    watch_snapshot_unref(old);

    /* A bad edit keeps the file's last good resources; the others are not affected. */
    loglen = 0;
    put("d/a.yaml", BROKEN);
    CHECK_INT(settle(w), 1, "bad edit: one reload");
    CHECK_STR(names(w), "a6,b1,b2", "bad edit: the last good resources are still served");
    CHECK_STR(state(w, "d/a.yaml", &nerr), "stale", "bad edit: the file is stale");
    CHECK(nerr > 0, "bad edit: its errors are listed");
    CHECK_STR(changes(w), "failed:d/a.yaml", "bad edit: reported as failed");
    CHECK(strstr(logbuf, "d/a.yaml") != NULL && strstr(logbuf, "level=error") != NULL,
          "bad edit: logged as an error naming the file");
    put("d/a.yaml", BAD_FIELD("a7"));
    CHECK_INT(settle(w), 1, "another bad edit: one reload");
    CHECK_STR(names(w), "a6,b1,b2", "another bad edit: still the last good resources");
    CHECK_STR(state(w, "d/a.yaml", &nerr), "stale", "another bad edit: still stale");
    put("d/sub/b.yml", ISSUER("b3"));
    CHECK_INT(settle(w), 1, "another file changes meanwhile");
    CHECK_STR(names(w), "a6,b3", "the other file is read normally");
    put("d/a.yaml", ISSUER("a8"));
    CHECK_INT(settle(w), 1, "fix: one reload");
    CHECK_STR(names(w), "a8,b3", "fix: the new resources are served");
    CHECK_STR(state(w, "d/a.yaml", &nerr), "ok", "fix: the file is ok again");
    CHECK_INT(nerr, 0, "fix: no errors left");

    /* Broken, then reverted to the served content. */
    put("d/a.yaml", BROKEN);
    settle(w);
    put("d/a.yaml", ISSUER("a8"));
    CHECK_INT(settle(w), 1, "revert to the served content: one reload");
    CHECK_STR(state(w, "d/a.yaml", NULL), "ok", "revert: ok again");
    CHECK_STR(names(w), "a8,b3", "revert: same resources");

    /* A file that never read cleanly serves its valid documents. */
    put("d/z.yaml", ISSUER("z1") "---\n" BAD_FIELD("z2"));
    CHECK_INT(settle(w), 1, "new file with an error: one reload");
    CHECK_STR(names(w), "a8,b3,z1", "never clean: its valid documents are served");
    CHECK_STR(state(w, "d/z.yaml", &nerr), "invalid", "never clean: invalid");
    CHECK_INT(nerr, 1, "never clean: one error");
    put("d/z.yaml", ISSUER("z1") "---\n" ISSUER("z2"));
    CHECK_INT(settle(w), 1, "never clean, fixed: one reload");
    CHECK_STR(names(w), "a8,b3,z1,z2", "never clean, fixed: all served");
    unlink(P("d/z.yaml"));
    settle(w);

    watch_free(w);
    rmtree("d");
}

static void test_debounce(void)
{
    struct watch_source *w;
    int reloads = 0;
    int64_t next, first;
    char doc[256];

    mkdirs("b");
    put("b/e.yaml", ISSUER("e0"));
    w = start("b");
    if (!CHECK(w != NULL, "watch_new for the burst"))
        return;

    /* 50 writes, 10 ms apart: the quiet period (50 ms) never passes during the burst. */
    for (int i = 1; i <= 50; i++) {
        snprintf(doc, sizeof(doc), ISSUER("e%d"), i);
        put("b/e.yaml", doc);
        clk += 10;
        reloads += watch_process(w, clk, &next);
    }
    CHECK_INT(reloads, 0, "burst: no reload while writes keep coming");
    CHECK(next != WATCH_NO_DEADLINE, "burst: a deadline is pending");
    CHECK_INT(settle(w), 1, "burst of 50 writes: exactly one reload");
    CHECK_STR(names(w), "e50", "burst: the last content");

    /* A steady trickle (every 40 ms for 3 s) still reloads, at the 2 s cap. */
    first = clk;
    reloads = 0;
    for (int i = 0; i < 75; i++) {
        int rc;

        snprintf(doc, sizeof(doc), ISSUER("t%d"), i);
        put("b/e.yaml", doc);
        clk += 40;
        rc = watch_process(w, clk, &next);
        if (rc == 1 && reloads == 0)
            CHECK(clk - first <= 2000 + 2 * 40, "trickle: the first reload comes at the cap");
        reloads += rc;
    }
    CHECK(reloads >= 1, "trickle: reloaded while the writes went on");
    settle(w);
    CHECK_STR(names(w), "t74", "trickle: the last content in the end");

    /* A writer that has not closed the file holds the reload (until the cap). */
    {
        int fd = open(P("b/e.yaml"), O_WRONLY | O_TRUNC);
        int rc = 0;

        CHECK(fd >= 0 && write(fd, "apiVersion: aegis.dev/v1alpha1\n", 31) == 31, "partial write");
        clk += 1;
        watch_process(w, clk, &next);
        first = clk;
        clk += 500; /* well past the quiet period */
        rc = watch_process(w, clk, &next);
        CHECK_INT(rc, 0, "open writer: no reload after the quiet period");
        CHECK_INT(next, first + 2000, "open writer: the deadline is the cap");
        snprintf(doc, sizeof(doc), "kind: Issuer\nmetadata: {name: w}\nspec: {ca: {}}\n");
        CHECK(write(fd, doc, strlen(doc)) == (ssize_t)strlen(doc), "rest of the write");
        close(fd);
        CHECK_INT(settle(w), 1, "closed: one reload");
        CHECK_STR(names(w), "w", "closed: the whole file is read");
        CHECK_STR(state(w, "b/e.yaml", NULL), "ok", "closed: never seen half-written");
    }
    watch_free(w);
    rmtree("b");
}

static void test_nested(void)
{
    struct watch_source *w;

    mkdirs("n/x");
    mkdirs("outside/m/deep");
    put("n/x/a.yaml", ISSUER("a"));
    put("outside/m/m.yaml", ISSUER("m"));
    put("outside/m/deep/d.yaml", ISSUER("d"));
    w = start("n");
    if (!CHECK(w != NULL, "watch_new for nested directories"))
        return;
    CHECK_STR(names(w), "a", "nested: first load");

    /* Symlinked directories are followed, into the tree and out of it, and watched. */
    symlink("x", P("n/alias"));
    mkdirs("outside/e");
    put("outside/e/e.yaml", ISSUER("e"));
    symlink("../outside/e", P("n/ext"));
    CHECK_INT(settle(w), 1, "symlinked directories: one reload");
    CHECK_STR(names(w), "a,e,a", "symlinked directories: read through the links");
    put("n/x/a.yaml", ISSUER("a2"));
    put("outside/e/e.yaml", ISSUER("e2"));
    CHECK_INT(settle(w), 1, "edits behind the links: one reload");
    CHECK_STR(names(w), "a2,e2,a2", "edits behind the links are seen under every path");
    unlink(P("n/alias"));
    unlink(P("n/ext"));
    CHECK_INT(settle(w), 1, "links removed: one reload");
    CHECK_STR(names(w), "a2", "links removed: their resources are gone");
    put("outside/e/e.yaml", ISSUER("e3"));
    CHECK_INT(settle(w), 0, "a directory no longer linked is not watched");

    /* A symlink loop is reported, not followed; removing it clears the report. */
    symlink("..", P("n/x/loop"));
    CHECK_INT(settle(w), 1, "symlink loop: a snapshot with the problem");
    {
        struct watch_snapshot *s = watch_ref_snapshot(w);
        const struct aegis_diags *d = watch_snapshot_diags(s);

        CHECK(d->n == 1 && strstr(d->v[0].msg, "loop") != NULL && d->v[0].file != NULL &&
                  strstr(d->v[0].file, "n/x/loop") != NULL,
              "symlink loop: reported at the link");
        watch_snapshot_unref(s);
    }
    CHECK_STR(names(w), "a2", "symlink loop: nothing read twice");
    unlink(P("n/x/loop"));
    CHECK_INT(settle(w), 1, "loop removed: a snapshot without the problem");
    {
        struct watch_snapshot *s = watch_ref_snapshot(w);

        CHECK_INT(watch_snapshot_diags(s)->n, 0, "loop removed: no problem left");
        watch_snapshot_unref(s);
    }

    mkdirs("n/x/y/z");
    put("n/x/y/z/deep.yaml", ISSUER("deep"));
    CHECK_INT(settle(w), 1, "new nested directories: one reload");
    CHECK_STR(names(w), "a2,deep", "new nested directories: read");
    put("n/x/y/z/deep.yaml", ISSUER("deeper"));
    CHECK_INT(settle(w), 1, "edit in a new nested directory");
    CHECK_STR(names(w), "a2,deeper", "the new directory is watched");

    rename(P("outside/m"), P("n/x/m"));
    CHECK_INT(settle(w), 1, "directory moved in: one reload");
    CHECK_STR(names(w), "a2,d,m,deeper", "directory moved in: its files are read");
    put("n/x/m/deep/d.yaml", ISSUER("d2"));
    CHECK_INT(settle(w), 1, "edit below a moved-in directory");
    CHECK_STR(names(w), "a2,d2,m,deeper", "a moved-in directory is watched");

    rename(P("n/x/m"), P("n/x/m2"));
    CHECK_INT(settle(w), 1, "directory renamed: one reload");
    CHECK_STR(changes(w),
              "removed:n/x/m/deep/d.yaml,removed:n/x/m/m.yaml,added:n/x/m2/deep/d.yaml,"
              "added:n/x/m2/m.yaml",
              "directory renamed: old paths removed, new added");
    put("n/x/m2/m.yaml", ISSUER("m3"));
    CHECK_INT(settle(w), 1, "edit below a renamed directory");
    CHECK_STR(names(w), "a2,d2,m3,deeper", "a renamed directory is still watched");

    rmtree("n/x/y");
    CHECK_INT(settle(w), 1, "nested directory deleted: one reload");
    CHECK_STR(names(w), "a2,d2,m3", "nested directory deleted: its resources are gone");
    rename(P("n/x/m2"), P("outside/m2"));
    CHECK_INT(settle(w), 1, "directory moved out: one reload");
    CHECK_STR(names(w), "a2", "directory moved out: its resources are gone");
    put("outside/m2/m.yaml", ISSUER("gone"));
    CHECK_INT(settle(w), 0, "a moved-out directory is no longer watched");

    watch_free(w);
    rmtree("n");
    rmtree("outside");
}

static void test_gitsync_swap(void)
{
    struct watch_source *w;

    mkdirs("repo/v1");
    mkdirs("repo/v2/sub");
    put("repo/v1/x.yaml", ISSUER("x"));
    put("repo/v1/common.yaml", ISSUER("common"));
    put("repo/v2/y.yaml", ISSUER("y"));
    put("repo/v2/sub/z.yaml", ISSUER("z"));
    put("repo/v2/common.yaml", ISSUER("common"));
    symlink("v1", P("repo/current"));
    w = start("repo/current");
    if (!CHECK(w != NULL, "watch_new on a symlink"))
        return;
    CHECK_STR(names(w), "common,x", "symlink: the linked checkout is read");

    /* git-sync: a new link made beside, renamed over the old one atomically. */
    symlink("v2", P("repo/current.tmp"));
    rename(P("repo/current.tmp"), P("repo/current"));
    CHECK_INT(settle(w), 1, "symlink swap: one reload");
    CHECK_STR(names(w), "common,z,y", "symlink swap: the new checkout, the old one gone");
    CHECK_STR(changes(w),
              "added:repo/current/sub/z.yaml,removed:repo/current/x.yaml,"
              "added:repo/current/y.yaml",
              "symlink swap: an unchanged file is not reported");
    CHECK_STR(state(w, "repo/current/y.yaml", NULL), "ok", "files are named through the link");

    rmtree("repo/v1");
    CHECK_INT(settle(w), 0, "the old checkout deleted: no change");
    put("repo/v2/sub/z.yaml", ISSUER("z2"));
    CHECK_INT(settle(w), 1, "edit in the new checkout: one reload");
    CHECK_STR(names(w), "common,z2,y", "the new checkout is watched");
    watch_free(w);
    rmtree("repo");
}

static void test_configmap_swap(void)
{
    struct watch_source *w;

    /* The layout of a Kubernetes ConfigMap volume. */
    mkdirs("cm/..2024_01_01_00_00_00.1");
    put("cm/..2024_01_01_00_00_00.1/app.yaml", ISSUER("app1"));
    put("cm/..2024_01_01_00_00_00.1/old.yaml", ISSUER("old"));
    symlink("..2024_01_01_00_00_00.1", P("cm/..data"));
    symlink("..data/app.yaml", P("cm/app.yaml"));
    symlink("..data/old.yaml", P("cm/old.yaml"));
    w = start("cm");
    if (!CHECK(w != NULL, "watch_new on a ConfigMap volume"))
        return;
    CHECK_STR(names(w), "app1,old", "ConfigMap: read through the ..data links");

    /* What kubelet's AtomicWriter does: new directory, new ..data link renamed over, links for
     * new keys, links of removed keys deleted, old directory deleted. */
    mkdirs("cm/..2024_01_01_00_00_01.2");
    put("cm/..2024_01_01_00_00_01.2/app.yaml", ISSUER("app2"));
    put("cm/..2024_01_01_00_00_01.2/new.yaml", ISSUER("new"));
    symlink("..2024_01_01_00_00_01.2", P("cm/..data_tmp"));
    rename(P("cm/..data_tmp"), P("cm/..data"));
    symlink("..data/new.yaml", P("cm/new.yaml"));
    unlink(P("cm/old.yaml"));
    rmtree("cm/..2024_01_01_00_00_00.1");
    CHECK_INT(settle(w), 1, "..data swap: one reload");
    CHECK_STR(names(w), "app2,new", "..data swap: the new data, the old gone");
    CHECK_STR(changes(w), "modified:cm/app.yaml,added:cm/new.yaml,removed:cm/old.yaml",
              "..data swap: changes");
    watch_free(w);
    rmtree("cm");
}

static void test_two_paths_and_recreate(void)
{
    const char *paths[2];
    struct watch_source *w = NULL;
    struct watch_snapshot *s;
    struct aegis_err err;
    size_t n;

    mkdirs("p1");
    mkdirs("p2");
    put("p1/a.yaml", ISSUER("one"));
    put("p2/a.yaml", ISSUER("two"));
    put("single.yml", ISSUER("single"));
    paths[0] = P("p2");
    paths[1] = P("p1/");
    CHECK_INT(watch_new(paths, 2, &opts, clk, &w, &err), 0, "two paths");
    if (w == NULL)
        return;
    CHECK_STR(names(w), "two,one", "two paths: in the order given");
    s = watch_ref_snapshot(w);
    CHECK(watch_snapshot_find_file(s, P("p1/a.yaml")) != NULL, "a trailing slash is dropped");
    watch_snapshot_files(s, &n);
    CHECK_INT(n, 2, "two files");
    watch_snapshot_unref(s);

    /* The whole watched directory deleted, then created again. */
    rmtree("p1");
    CHECK_INT(settle(w), 1, "watched directory deleted: one reload");
    CHECK_STR(names(w), "two", "watched directory deleted: its resources are gone");
    s = watch_ref_snapshot(w);
    CHECK(watch_snapshot_diags(s)->nerrors > 0, "a missing path is reported");
    watch_snapshot_unref(s);
    mkdirs("p1");
    put("p1/b.yaml", ISSUER("back"));
    CHECK_INT(settle(w), 1, "watched directory created again: one reload");
    CHECK_STR(names(w), "two,back", "watched directory created again: read");
    put("p1/b.yaml", ISSUER("back2"));
    CHECK_INT(settle(w), 1, "edit in the re-created directory");
    CHECK_STR(names(w), "two,back2", "the re-created directory is watched");
    s = watch_ref_snapshot(w);
    CHECK_INT(watch_snapshot_diags(s)->n, 0, "no problem left");
    watch_snapshot_unref(s);
    watch_free(w);

    /* A single file as the watched path; in-place edits are seen through its directory. */
    paths[0] = P("single.yml");
    w = NULL;
    CHECK_INT(watch_new(paths, 1, &opts, clk, &w, &err), 0, "a file as the watched path");
    if (w != NULL) {
        CHECK_STR(names(w), "single", "a file: read");
        put("single.yml", ISSUER("single2"));
        CHECK_INT(settle(w), 1, "a file: edit, one reload");
        CHECK_STR(names(w), "single2", "a file: new content");
        watch_free(w);
    }
    unlink(P("single.yml"));
    rmtree("p1");
    rmtree("p2");
}

/* ---- swaps racing with reads ----------------------------------------------------------------- */

#define STRESS_FILES 40

struct swapper {
    bool configmap; /* ..data inside the watched directory, else the watched path is the link */
    volatile int stop;
    int swaps;
    char cur[64]; /* the checkout in place */
};

/* Writes checkout number gen: STRESS_FILES files whose resources are all named g<gen>-<i>. */
static void make_checkout(const char *dir)
{
    static int gen;
    char rel[256], doc[256];

    gen++;
    mkdirs(dir);
    for (int i = 0; i < STRESS_FILES; i++) {
        snprintf(rel, sizeof(rel), "%s/f%02d.yaml", dir, i);
        snprintf(doc, sizeof(doc), ISSUER("g%d-%d"), gen, i);
        put(rel, doc);
    }
}

/* What git-sync and kubelet do, as fast as possible: new checkout, link renamed over, old one
 * deleted. */
static void *swap_loop(void *arg)
{
    struct swapper *sw = arg;
    char next[64], link[64];
    int n = 1;

    snprintf(sw->cur, sizeof(sw->cur), "%s", sw->configmap ? "s/..c1" : "c1");
    while (!sw->stop) {
        n++;
        snprintf(next, sizeof(next), "%s%d", sw->configmap ? "s/..c" : "c", n);
        make_checkout(next);
        snprintf(link, sizeof(link), "%s", sw->configmap ? "s/..data_tmp" : "s.tmp");
        symlink(strchr(next, '/') != NULL ? strchr(next, '/') + 1 : next, P(link));
        rename(P(link), P(sw->configmap ? "s/..data" : "s"));
        rmtree(sw->cur);
        snprintf(sw->cur, sizeof(sw->cur), "%s", next);
        sw->swaps++;
        usleep(2000);
    }
    return NULL;
}

/* Whether every resource of the snapshot comes from one checkout, all of it. */
static bool one_checkout(struct watch_source *w)
{
    struct watch_snapshot *s = watch_ref_snapshot(w);
    const struct aegis_resource_set *set = watch_snapshot_resources(s);
    bool ok = set->n == STRESS_FILES;
    size_t plen = 0;

    for (size_t i = 0; ok && i < set->n; i++) {
        const char *name = set->v[i]->meta.name;
        const char *dash = strchr(name, '-');

        if (i == 0)
            plen = dash != NULL ? (size_t)(dash - name) : 0;
        ok = dash != NULL && (size_t)(dash - name) == plen &&
             strncmp(name, set->v[0]->meta.name, plen) == 0;
    }
    if (!ok)
        printf("# mixed or partial snapshot: %zu resources, first %s\n", set->n,
               set->n > 0 ? set->v[0]->meta.name : "-");
    watch_snapshot_unref(s);
    return ok;
}

static void test_swap_race(bool configmap)
{
    struct watch_opts o = {.quiet_ms = 1, .max_delay_ms = 2, .retry_ms = 5000};
    struct swapper sw = {.configmap = configmap};
    struct watch_source *w = NULL;
    struct watch_stats st;
    struct aegis_err err;
    struct timespec t0, t;
    const char *paths[1];
    pthread_t th;
    int snaps = 0, bad = 0;

    if (configmap) {
        mkdirs("s");
        make_checkout("s/..c1");
        symlink("..c1", P("s/..data"));
        for (int i = 0; i < STRESS_FILES; i++) {
            char name[64], target[64];

            snprintf(name, sizeof(name), "s/f%02d.yaml", i);
            snprintf(target, sizeof(target), "..data/f%02d.yaml", i);
            symlink(target, P(name));
        }
    } else {
        make_checkout("c1");
        symlink("c1", P("s"));
    }
    paths[0] = P("s");
    CHECK_INT(watch_new(paths, 1, &o, clk, &w, &err), 0, "watch_new for the swap race");
    if (w == NULL)
        return;
    CHECK(one_checkout(w), "swap race: the first snapshot is one whole checkout");
    pthread_create(&th, NULL, swap_loop, &sw);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct pollfd pfd = {.fd = watch_fd(w), .events = POLLIN};
        int64_t next;
        int rc;

        poll(&pfd, 1, 1);
        rc = watch_process(w, clk, &next);
        if (rc == 1) {
            snaps++;
            bad += !one_checkout(w);
        }
        clk = next != WATCH_NO_DEADLINE && next > clk ? next : clk + 1;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1500);
    sw.stop = 1;
    pthread_join(th, NULL);
    settle(w);
    watch_get_stats(w, &st);
    printf("# %s: %d swaps, %d snapshots, %llu reads discarded\n",
           configmap ? "..data swaps" : "link swaps", sw.swaps, snaps,
           (unsigned long long)st.discarded);
    CHECK(sw.swaps > 10 && snaps + st.discarded > 2, "swap race: swaps raced with reads");
    CHECK_INT(bad, 0, "swap race: no snapshot mixes two checkouts or misses files");
    CHECK(one_checkout(w), "swap race: the final snapshot is one whole checkout");
    watch_free(w);
    rmtree("s");
    rmtree(sw.cur);
}

static void test_restart_and_errors(void)
{
    struct watch_opts o = opts;
    struct watch_source *w = NULL, *w2 = NULL;
    struct watch_stats st;
    struct aegis_err err = {0};
    const char *paths[1];

    /* Deleted directories leave dead libinotifytools records; past dead_max it is restarted. */
    o.dead_max = 3;
    mkdirs("r");
    put("r/a.yaml", ISSUER("a"));
    paths[0] = P("r");
    CHECK_INT(watch_new(paths, 1, &o, clk, &w, &err), 0, "watch_new with a low dead_max");
    if (w == NULL)
        return;
    for (int round = 0; round < 3; round++) {
        mkdirs("r/tmp/one");
        mkdirs("r/tmp/two");
        put("r/tmp/one/t.yaml", ISSUER("t"));
        settle(w);
        rmtree("r/tmp");
        settle(w);
    }
    watch_get_stats(w, &st);
    CHECK(st.rebuilds >= 1, "libinotifytools restarted after dead watches");
    CHECK_STR(names(w), "a", "after the restart: the same resources");
    put("r/b.yaml", ISSUER("b"));
    CHECK_INT(settle(w), 1, "after the restart: changes are still seen");
    CHECK_STR(names(w), "a,b", "after the restart: new file read");
    CHECK(st.watches >= 1 && st.events > 0, "stats are kept");

    /* One source per process. */
    CHECK_INT(watch_new(paths, 1, &o, clk, &w2, &err), -AEGIS_E_STATE, "a second source");
    watch_free(w);
    rmtree("r");

    paths[0] = P("does-not-exist");
    CHECK_INT(watch_new(paths, 1, &opts, clk, &w2, &err), -ENOENT, "a missing path");
    CHECK(strstr(err.msg, "does-not-exist") != NULL, "the error names the path");
    CHECK(w2 == NULL, "nothing returned on error");
    CHECK_INT(watch_new(paths, 0, &opts, clk, &w2, &err), -AEGIS_E_LIMIT, "no path");
    paths[0] = "";
    CHECK_INT(watch_new(paths, 1, &opts, clk, &w2, &err), -AEGIS_E_INVALID, "an empty path");
}

int main(void)
{
    if (mkdtemp(base) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    aegis_log_set_sink(sink, NULL);
    test_directory();
    test_debounce();
    test_nested();
    test_gitsync_swap();
    test_configmap_swap();
    test_two_paths_and_recreate();
    test_swap_race(false);
    test_swap_race(true);
    test_restart_and_errors();
    aegis_log_set_sink(NULL, NULL);
    nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return check_done();
}
