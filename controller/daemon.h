/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller daemon in directory mode: the watched directories (watch.h) feed the reconcile
 * core (reconcile.h), whose configurations go to a dataplane through the pusher (push.h) - by
 * default a local aegis-dataplane this process starts and supervises (supervise.h). One thread,
 * one poll(2) loop over the inotify descriptor and a signalfd, with the next due time of every
 * part as its timeout. SIGTERM or SIGINT stop it: the loop ends, the local dataplane is stopped.
 */
#ifndef AEGIS_DAEMON_H
#define AEGIS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

struct daemon_opts {
    const char *const *watch; /* --watch paths */
    size_t n_watch;
    const char *state_dir;   /* the store, status files, the local dataplane's state */
    const char *key_file;    /* --master-key-file, or NULL */
    const char *secrets_dir; /* NULL: <state>/secrets */
    /* The dataplane's admin socket; NULL: <state>/dataplane/admin.sock. */
    const char *dataplane_socket;
    bool no_dataplane;         /* a dataplane runs separately on dataplane_socket */
    const char *dataplane_bin; /* NULL: aegis-dataplane next to this program */
    const char *const *http;   /* listeners rendered for the dataplane */
    size_t n_http;
    const char *const *https;
    size_t n_https;
    unsigned workers;       /* dataplane workers; 0: its default */
    unsigned issue_workers; /* the reconciler's worker threads; 0: RECONCILE_WORKERS_DEFAULT */
    unsigned redirect_port; /* 0: the dataplane's default */
    /* The HTTP port (status API, /healthz, /readyz, /metrics: httpapi.h); NULL: off. */
    const char *http_listen;
    /* Exit once everything due is done and the configuration was pushed (for scripts). */
    bool once;
};

/* Runs until a signal (or, with once, until done). Returns the exit status: 0, or 1 on a
 * start-up failure (already logged). */
int daemon_run(const struct daemon_opts *o);

#endif
