/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening sockets. Every worker has its own socket per configured address, bound with
 * SO_REUSEPORT so that the kernel spreads new connections over the workers; IPv6 sockets are
 * IPV6_V6ONLY so that "[::]:443" and "0.0.0.0:443" can both be configured.
 *
 * SO_REUSEPORT would also let a second, stale dataplane share the port and take a share of the
 * connections, so the server first probes each address with a socket without it: a port already
 * held by any other socket refuses the probe.
 */
#ifndef DP_LISTENER_H
#define DP_LISTENER_H

#include "aegis/err.h"
#include "aegis/rconf.h"

/* Fails with -EADDRINUSE (and a message) when another socket holds l's address. */
int dp_listener_probe(const struct rconf_listener *l, struct aegis_err *err);
/* A non-blocking SO_REUSEPORT socket listening on l's address into *fd. */
int dp_listener_open(const struct rconf_listener *l, int *fd, struct aegis_err *err);

#endif
