/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The router: the one h2o handler every request reaches. It finds the request's host with a hash
 * lookup of its Host (or :authority), enforces the SNI/Host policy on TLS connections (421 when
 * the handshake's certificate or TLS policy differs from the Host's), and hands the request to the
 * handlers of handler/: on plain HTTP the ACME HTTP-01 responder, then the HTTPS redirect, then
 * the proxy; on HTTPS, HSTS then the proxy.
 */
#ifndef DP_ROUTER_H
#define DP_ROUTER_H

#include <h2o.h>

struct dp_gen;

/* Registers the router of generation g (borrowed: g owns the configuration it lives in). */
void dp_router_register(h2o_pathconf_t *pathconf, struct dp_gen *g);

#endif
