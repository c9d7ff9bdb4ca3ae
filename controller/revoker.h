/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Revocation of deleted Certificates (an Issuer's `revokeOnDelete`, today spec.cloudflareOriginCA
 * only). When a snapshot no longer holds a Certificate whose Issuer asks for it, the reconciler
 * calls revoker_certificate_removed on its thread: the stored certificate's serial is read and
 * the store record deleted at once (so a Certificate of that name added again is issued anew,
 * never served the certificate being revoked), and the revocation itself - a request to the
 * issuer's API, which may be slow or down - is queued for the revoker's own thread. That thread
 * tries each one up to REVOKER_ATTEMPTS times (waiting REVOKER_RETRY_S, then longer) and logs the
 * outcome; one that still fails is logged as an error with the serial to revoke by hand.
 *
 * Only a Certificate that is gone from the snapshot counts: a file with errors keeps serving its
 * last clean version (watching.md), so a typo never revokes anything; deleting the file or the
 * document does. The thread is started on first use and stopped by revoker_free, which finishes
 * the revocation in flight and logs every queued one it drops.
 */
#ifndef AEGIS_REVOKER_H
#define AEGIS_REVOKER_H

#include <stdint.h>

#include "aegis/api_types.gen.h"
#include "aegis/resource.h"

struct store;
struct revoker;

/* Revocations queued at most (more are logged and dropped). */
#define REVOKER_QUEUE_MAX 1024
/* Attempts per revocation, and the wait before the second (doubled for each later one). */
#define REVOKER_ATTEMPTS 3
#define REVOKER_RETRY_S 5

/* A revoker for the certificates of st (borrowed, as secrets_dir, for the revoker's life). */
struct revoker *revoker_new(struct store *st, const char *secrets_dir);
/* Finishes the revocation in flight, drops (and logs) the queued ones, joins the thread. NULL ok. */
void revoker_free(struct revoker *rv);

/*
 * The Issuer named name in namespace ns: from set (the new snapshot) when it is there, else from
 * old (the snapshot the Certificate was last in: the Issuer may be deleted with it). NULL when
 * neither holds it.
 */
const struct aegis_issuer_spec *revoker_find_issuer(const struct aegis_resource_set *set,
                                                    const struct aegis_resource_set *old,
                                                    const char *ns, const char *name);

/*
 * Certificate ns/name (spec, borrowed) is gone. When its Issuer (found in set, else old) asks
 * for revokeOnDelete and a certificate is stored: the record is deleted and the revocation
 * queued. Returns 1 when a revocation was queued, 0 when nothing was to be done, a negative code
 * when the store could not be read or written (logged).
 */
int revoker_certificate_removed(struct revoker *rv, const char *ns, const char *name,
                                const struct aegis_certificate_spec *spec,
                                const struct aegis_resource_set *set,
                                const struct aegis_resource_set *old);

/* Revocations queued or in flight (tests). */
unsigned revoker_pending(struct revoker *rv);

#endif
