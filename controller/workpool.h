/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A fixed set of worker threads for the controller's slow, blocking work (issuances: key
 * generation, signing, fsync'd store writes, and for ACME, HTTP round trips to the CA). The owner
 * submits jobs from its one thread and takes finished ones back on that thread; an eventfd tells
 * its poll loop when one is finished. Jobs run in submission order, at most `threads` at once.
 *
 * A job is a struct the caller embeds `struct workpool_job` in; run() is called on a worker and
 * must touch nothing the owner's thread uses meanwhile. The pool never frees a job: whatever is
 * submitted comes back from workpool_take_done, or from workpool_free's drain.
 */
#ifndef AEGIS_WORKPOOL_H
#define AEGIS_WORKPOOL_H

#include "aegis/err.h"

#define WORKPOOL_THREADS_MAX 64

struct workpool_job {
    void (*run)(struct workpool_job *job); /* on a worker thread */
    struct workpool_job *next;             /* the pool's */
};

struct workpool;

/* Starts threads (1..WORKPOOL_THREADS_MAX) workers. */
int workpool_new(unsigned threads, struct workpool **out, struct aegis_err *err);
/*
 * Finishes the jobs already running, runs none of the queued ones, joins the workers and hands
 * every job not yet taken (finished or never run) to drop(job) on the caller's thread so that
 * the owner can free it. Accepts NULL.
 */
void workpool_free(struct workpool *p, void (*drop)(struct workpool_job *job, void *ctx),
                   void *ctx);

void workpool_submit(struct workpool *p, struct workpool_job *job);
/* A finished job (oldest first), or NULL when none is finished. Never blocks. */
struct workpool_job *workpool_take_done(struct workpool *p);
/* Jobs submitted and not yet taken back. */
unsigned workpool_pending(const struct workpool *p);
/* Readable while finished jobs wait to be taken (for poll). */
int workpool_fd(const struct workpool *p);

#endif
