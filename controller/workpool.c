/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The worker pool (workpool.h): one mutex over a queue of jobs to run and a queue of finished
 * ones. The eventfd counts finished jobs not yet announced; it is drained when the owner finds
 * the finished queue empty, so a poll loop never spins on it and never misses one.
 */
#include "workpool.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "aegis/alloc.h"

struct queue {
    struct workpool_job *head, *tail;
};

struct workpool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct queue todo, done;
    bool stopping;
    unsigned pending; /* submitted, not taken back; the owner's thread only */
    int efd;
    unsigned n_threads;
    pthread_t threads[WORKPOOL_THREADS_MAX];
};

static void push(struct queue *q, struct workpool_job *job)
{
    job->next = NULL;
    if (q->tail != NULL)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
}

static struct workpool_job *pop(struct queue *q)
{
    struct workpool_job *job = q->head;

    if (job != NULL) {
        q->head = job->next;
        if (q->head == NULL)
            q->tail = NULL;
        job->next = NULL;
    }
    return job;
}

/* The eventfd's reads and writes cannot fail in a way that matters: a write only fails on a
 * counter overflow (2^64 - 1 unannounced jobs), a read only when it is already zero. */
static void efd_io(ssize_t n)
{
    (void)n;
}

static void *worker(void *arg)
{
    struct workpool *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        struct workpool_job *job;
        uint64_t one = 1;

        while (!p->stopping && p->todo.head == NULL)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stopping)
            break;
        job = pop(&p->todo);
        pthread_mutex_unlock(&p->mu);
        job->run(job);
        pthread_mutex_lock(&p->mu);
        push(&p->done, job);
        efd_io(write(p->efd, &one, sizeof(one)));
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int workpool_new(unsigned threads, struct workpool **out, struct aegis_err *err)
{
    struct workpool *p;
    sigset_t all, old;
    int rc;

    *out = NULL;
    if (threads == 0 || threads > WORKPOOL_THREADS_MAX)
        return aegis_err_set(err, -AEGIS_E_INVALID, "workpool",
                             "%u worker threads asked for; give 1 to %d", threads,
                             WORKPOOL_THREADS_MAX);
    p = aegis_calloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        rc = aegis_err_set(err, -errno, "workpool", "eventfd: %s", strerror(errno));
        workpool_free(p, NULL, NULL);
        return rc;
    }
    /* Workers take no signals (they inherit the mask): the owner's loop handles them, e.g.
     * through a signalfd, which a signal delivered to a worker would bypass. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (rc = 0; rc == 0 && p->n_threads < threads; p->n_threads++)
        rc = pthread_create(&p->threads[p->n_threads], NULL, worker, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        p->n_threads--;
        aegis_err_set(err, -rc, "workpool", "cannot start a worker thread: %s", strerror(rc));
        workpool_free(p, NULL, NULL);
        return -rc;
    }
    *out = p;
    return 0;
}

void workpool_free(struct workpool *p, void (*drop)(struct workpool_job *job, void *ctx), void *ctx)
{
    struct workpool_job *job;

    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    while ((job = pop(&p->done)) != NULL || (job = pop(&p->todo)) != NULL)
        if (drop != NULL)
            drop(job, ctx);
    if (p->efd >= 0)
        close(p->efd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void workpool_submit(struct workpool *p, struct workpool_job *job)
{
    pthread_mutex_lock(&p->mu);
    push(&p->todo, job);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    p->pending++;
}

struct workpool_job *workpool_take_done(struct workpool *p)
{
    struct workpool_job *job;
    uint64_t n;

    pthread_mutex_lock(&p->mu);
    job = pop(&p->done);
    if (job == NULL) {
        /* Everything announced has been taken: reset the counter under the lock, so that a
         * job finishing now writes after this read and wakes the poll loop again. */
        efd_io(read(p->efd, &n, sizeof(n)));
    }
    pthread_mutex_unlock(&p->mu);
    if (job != NULL)
        p->pending--;
    return job;
}

unsigned workpool_pending(const struct workpool *p)
{
    return p->pending;
}

int workpool_fd(const struct workpool *p)
{
    return p->efd;
}
