/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The server: the current generation, the front TLS contexts (one per HTTPS address, for the life
 * of the process), and the workers. It is created from a validated configuration, started, swapped
 * to new configurations while it serves (dp_server_swap), and stopped on SIGTERM or SIGINT.
 *
 * A swap keeps the listening sockets: a configuration whose listeners differ from the running ones
 * is refused (a restart applies it), as the sockets are bound once per worker at start.
 */
#ifndef DP_SERVER_H
#define DP_SERVER_H

#include <stdbool.h>

#include "aegis/err.h"
#include "aegis/rconf.h"

struct dp_gen;
struct dp_server;

/*
 * Builds a server for rc (taking a reference) with n_workers workers: checks that no other process
 * holds the addresses, builds the TLS contexts and the generation, and opens every worker's
 * sockets. Nothing is served until dp_server_start.
 */
/*
 * Makes the calling thread's h2o socket buffers safe for sockets other threads use. h2o 2.2.5
 * recycles socket buffers through a free list in a thread-local prototype of the thread that
 * made the socket (h2o_socket_buffer_prototype is __thread), so a socket made here and read on a
 * worker - the listening sockets, the message queues of loops and contexts - would pop and push
 * this thread's free list from two threads at once. Called on the threads that make sockets for
 * others (main, and the admin thread, which builds the server for a pushed configuration): it
 * turns that free list off there (plain malloc and free, which are thread-safe). The threads that
 * serve connections keep recycling their own sockets' buffers.
 */
void dp_server_thread_buffers_unshared(void);

int dp_server_new(struct rconf *rc, unsigned n_workers, struct dp_server **out,
                  struct aegis_err *err);
int dp_server_start(struct dp_server *s, struct aegis_err *err);
/*
 * Makes rc (validated; a reference is taken) the configuration of every new connection: builds its
 * generation on the calling thread, hands it to each worker in turn and returns once all of them
 * have switched. Connections already open finish on the generation they were accepted under, which
 * is freed after the last of them. Refused (-AEGIS_E_UNSUPPORTED, nothing changes) when rc's
 * listeners differ from the running ones. Calls are serialized by the caller.
 */
int dp_server_swap(struct dp_server *s, struct rconf *rc, struct aegis_err *err);
/* The current generation (a new reference; any thread). */
struct dp_gen *dp_server_gen(struct dp_server *s);
/* The number of workers. */
unsigned dp_server_workers(const struct dp_server *s);
/*
 * Stops accepting, lets every worker finish its connections (up to its drain deadline) and joins
 * them. Returns true when every connection finished.
 */
bool dp_server_stop(struct dp_server *s);
/* Frees the server. After an incomplete drain the h2o state still referenced by open connections
 * is left alone for the process exit to reclaim. Accepts NULL. */
void dp_server_free(struct dp_server *s);

#endif
