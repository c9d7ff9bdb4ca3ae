/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The directory source of the controller (--watch PATH, repeatable): every *.yaml and *.yml
 * below each path, recursively, multi-document, read with the resource model
 * (common/resource.h) and kept current with inotify through libinotifytools.
 *
 * - Debounced: events start a quiet period (WATCH_QUIET_MS); the reload happens when it passes
 *   without a new event, or WATCH_MAX_DELAY_MS after the first event at the latest, so that a
 *   constant trickle of writes still reloads. A file modified and not yet closed holds the reload
 *   back (up to the same cap), so a slow writer is not read half-way. Editor save patterns
 *   (write + rename over, delete + create, vim's backup rename, sed -i) are one reload.
 * - GitOps: every symlink met while resolving a watched path, and the path's last entry, is
 *   watched in its parent directory, so an atomic swap of the link (git-sync) or of a `..data`
 *   link inside the directory (Kubernetes ConfigMap volumes) makes the source re-resolve and
 *   re-read the tree. A tree that changes like this while it is being read is read again before
 *   anything from it is used: a snapshot never mixes two checkouts.
 * - Per file: a file whose latest read has errors keeps serving its last good version (state
 *   WATCH_FILE_STALE) while its diagnostics are reported; a file that never read cleanly serves
 *   the documents that are valid (WATCH_FILE_INVALID). Other files are not affected. Deleting a
 *   file removes its resources. Entries whose name starts with '.' are not read, as in
 *   resource_load_path().
 * - Event-loop friendly: no threads; the caller polls watch_fd() for POLLIN and calls
 *   watch_process() when it is readable or when the deadline it returned has passed. Time is
 *   injected (milliseconds on any monotonic clock), so tests drive it deterministically.
 *
 * The result of each reload is a snapshot: an immutable, reference-counted view of the merged
 * resource set, the state of every file and the list of files changed since the previous
 * snapshot. See docs/watching.md.
 *
 * libinotifytools keeps one inotify instance in process-global state and is not thread-safe:
 * there is at most one struct watch_source per process (watch_new fails with -AEGIS_E_STATE
 * otherwise) and every watch_* function except the watch_snapshot_* ones must be called from
 * one thread. (The type is not called struct watch: libinotifytools' header declares that tag.)
 */
#ifndef AEGIS_WATCH_H
#define AEGIS_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "aegis/diag.h"
#include "aegis/err.h"
#include "aegis/resource.h"

/* Quiet period after the last event before a reload. Editors and `mv` finish a save within a
 * few milliseconds, and the benchmark wants a write served in under 100 ms at p50. */
#define WATCH_QUIET_MS 50
/* Longest delay from the first event of a burst to its reload. */
#define WATCH_MAX_DELAY_MS 2000
/* A path that is missing or could not be watched is scanned again this often. */
#define WATCH_RETRY_MS 5000
/* No deadline: watch_process needs to run only when the fd is readable. */
#define WATCH_NO_DEADLINE INT64_MAX

/* Tuning; a zero field takes the default named beside it. */
struct watch_opts {
    unsigned quiet_ms;     /* WATCH_QUIET_MS */
    unsigned max_delay_ms; /* WATCH_MAX_DELAY_MS */
    unsigned retry_ms;     /* WATCH_RETRY_MS */
    unsigned dead_max;     /* AEGIS_LIMIT_WATCH_DEAD_RECORDS (tests lower it) */
};

/* X(ENUM, "name") */
#define WATCH_FILE_STATES(X)                                                                       \
    X(OK, "ok")           /* the latest read is clean and served */                                \
    X(STALE, "stale")     /* the latest read has errors; the last clean version is served */       \
    X(INVALID, "invalid") /* never read cleanly; the valid documents of the latest are served */

enum watch_file_state {
#define WATCH_FILE_STATE_ENUM(e, name) WATCH_FILE_##e,
    WATCH_FILE_STATES(WATCH_FILE_STATE_ENUM)
#undef WATCH_FILE_STATE_ENUM
};

/* X(ENUM, "name") */
#define WATCH_CHANGES(X)                                                                           \
    X(ADDED, "added")       /* a new file */                                                       \
    X(MODIFIED, "modified") /* its served resources or its state changed */                        \
    X(REMOVED, "removed")   /* gone, with its resources */                                         \
    X(FAILED, "failed")     /* a read with errors; the served resources did not change */

enum watch_change_kind {
#define WATCH_CHANGE_ENUM(e, name) WATCH_CHANGE_##e,
    WATCH_CHANGES(WATCH_CHANGE_ENUM)
#undef WATCH_CHANGE_ENUM
};

/* One file of a snapshot. Every pointer is owned by the snapshot and lives as long as it. */
struct watch_file {
    /* The watched path as given, joined with the file's path below it ("hosts/app.yaml"); the
     * same string is each of its resources' `file`. */
    const char *path;
    enum watch_file_state state;
    const struct aegis_diags *diags; /* of the latest read: its errors and warnings */
    size_t nresources;               /* resources it contributes to the snapshot */
    int64_t read_ms;                 /* when the latest read happened (the injected clock) */
    int64_t served_ms;               /* when the served version was read */
};

struct watch_change {
    const char *path;
    enum watch_change_kind how;
};

struct watch_stats {
    size_t files;       /* files read */
    size_t watches;     /* inotify watches held */
    uint64_t events;    /* inotify events handled */
    uint64_t reloads;   /* reloads that produced a snapshot */
    uint64_t discarded; /* reads thrown away because the tree was swapped meanwhile */
    uint64_t rebuilds;  /* libinotifytools restarted to drop dead records */
};

struct watch_source;
struct watch_snapshot;

/*
 * Watches paths[0..npaths) (directories, or single files read whatever their name) and reads
 * them once, so that a first snapshot is ready on return. now_ms is the injected clock. opts may
 * be NULL. Errors: -ENOENT and friends when a path cannot be resolved (err names it: a typo
 * should stop the daemon, not serve nothing), -AEGIS_E_LIMIT for more than
 * AEGIS_LIMIT_WATCH_PATHS paths, -AEGIS_E_STATE when another watch_source exists or inotify
 * cannot be set up. Problems below a path (unreadable directories, a symlink loop, the inotify
 * watch limit) are not errors: they are logged and listed in watch_snapshot_diags().
 */
int watch_new(const char *const *paths, size_t npaths, const struct watch_opts *opts,
              int64_t now_ms, struct watch_source **out, struct aegis_err *err);
/* Stops watching; snapshots still referenced stay valid. Accepts NULL. */
void watch_free(struct watch_source *w);

/* The descriptor to poll for POLLIN; the same for the source's life (an epoll descriptor around
 * libinotifytools' inotify descriptor, which may be replaced). Never read it directly. */
int watch_fd(const struct watch_source *w);

/*
 * One step, which never blocks: reads the pending events and, when the debounce has expired,
 * re-reads what changed. Returns 1 when a new snapshot is ready (watch_ref_snapshot), 0 when
 * not, or a negative code when inotify cannot be used any more (logged; the last snapshot stays
 * valid, nothing is watched). *next_deadline_ms is when to call again even if the fd stays
 * quiet, WATCH_NO_DEADLINE for never; it may be now_ms when there is more work at once.
 */
int watch_process(struct watch_source *w, int64_t now_ms, int64_t *next_deadline_ms);

/* A new reference to the latest snapshot (never NULL), released with watch_snapshot_unref. */
struct watch_snapshot *watch_ref_snapshot(struct watch_source *w);

void watch_get_stats(const struct watch_source *w, struct watch_stats *st);

/* Snapshots are immutable; these may be called from any thread. */
struct watch_snapshot *watch_snapshot_ref(struct watch_snapshot *s);
/* Accepts NULL. */
void watch_snapshot_unref(struct watch_snapshot *s);
/* 1 for the first load, one more for each snapshot after it. */
uint64_t watch_snapshot_generation(const struct watch_snapshot *s);
/*
 * The merged resources: every file's served resources, paths in the order given, files in name
 * order below each (as resource_load_path reads them). Owned by the snapshot: never dispose it.
 * The set is not checked as a whole; resource_set_check() does that (duplicates, references).
 */
const struct aegis_resource_set *watch_snapshot_resources(const struct watch_snapshot *s);
/* Every file read, in the order of the resources; *n gets the count. */
const struct watch_file *watch_snapshot_files(const struct watch_snapshot *s, size_t *n);
/* The file with this path (watch_file.path); NULL when absent. */
const struct watch_file *watch_snapshot_find_file(const struct watch_snapshot *s, const char *path);
/* The files changed since the previous snapshot, sorted by path. A caller that skipped a
 * snapshot has missed its changes and should treat every file as changed. */
const struct watch_change *watch_snapshot_changes(const struct watch_snapshot *s, size_t *n);
/* Problems with the watched paths themselves (missing, unreadable directories, loops, limits). */
const struct aegis_diags *watch_snapshot_diags(const struct watch_snapshot *s);

const char *watch_file_state_name(enum watch_file_state state);
const char *watch_change_name(enum watch_change_kind how);

#endif
