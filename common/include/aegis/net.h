/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Listening addresses as users write them - "127.0.0.1:9145", "[::1]:9145" - for the rendered
 * configuration's listeners and every --*-listen flag of the daemons: one parser, one way to open
 * the socket.
 */
#ifndef AEGIS_NET_H
#define AEGIS_NET_H

#include <stddef.h>
#include <sys/socket.h>

#include "aegis/err.h"

/* Longest address text accepted ("[" + IPv6 + "]:" + port, with room). */
#define AEGIS_NET_ADDR_MAX 64

/*
 * Parses len bytes of text: a numeric IPv4 address or a bracketed IPv6 address, a colon and a
 * port from 1 to 65535 written without a sign or leading zero. Names are not resolved. Returns 0
 * with *sa and *sa_len set, or -AEGIS_E_INVALID.
 */
int aegis_net_parse_addr(const char *text, size_t len, struct sockaddr_storage *sa,
                         socklen_t *sa_len);

/*
 * A non-blocking, close-on-exec TCP socket listening on text (SO_REUSEADDR; IPV6_V6ONLY for an
 * IPv6 address, so "[::]:443" and "0.0.0.0:443" can both be listened on) with backlog. flag names
 * the setting in messages ("--metrics-listen"); holder says what else may hold the port ("is
 * another dataplane running?"; NULL: nothing). Returns 0 with *fd, or a negative code with err.
 */
int aegis_net_listen(const char *text, int backlog, const char *flag, const char *holder, int *fd,
                     struct aegis_err *err);

#endif
