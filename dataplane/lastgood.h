/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The last good configuration, kept encrypted on local disk so that a dataplane restarted while
 * the controller is away serves again at once (docs/dataplane.md, "Last good configuration").
 *
 * The document holds private keys, so it is only ever written sealed: AES-256-GCM under the
 * master key (envelope.h), in chunks of at most AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES because a
 * rendered configuration can be far larger than one envelope. File layout:
 *
 *   "AEGLG1\n\0"  8 bytes   magic and version
 *   file id       16 bytes  random per write
 *   chunks        4 bytes   big-endian count n (>= 1)
 *   n times:      4 bytes   big-endian envelope length, then the envelope
 *
 * Chunk i's associated data is "aegis-dataplane/last-good/<file id hex>/<i>/<n>", so chunks cannot
 * be reordered, dropped, or mixed between two writes without the GCM tag failing. The file is
 * written atomically (temp file, fsync, rename, fsync of the directory) with mode 0600.
 */
#ifndef DP_LASTGOOD_H
#define DP_LASTGOOD_H

#include <stddef.h>

#include "aegis/err.h"
#include "aegis/masterkey.h"

#define DP_LASTGOOD_FILE "dataplane-last-good.sealed"

/* Seals doc (len bytes) with ring's current key into <dir>/DP_LASTGOOD_FILE, creating dir. */
int dp_lastgood_save(const char *dir, const struct aegis_keyring *ring, const char *doc, size_t len,
                     struct aegis_err *err);
/*
 * Opens <dir>/DP_LASTGOOD_FILE into *doc (a new NUL-terminated string of *len bytes; the caller
 * frees it with dp_lastgood_free). -ENOENT when there is none; -AEGIS_E_NOTFOUND when it was
 * sealed with a key the ring lacks, -AEGIS_E_CRYPTO when it does not authenticate (wrong key or
 * damaged file), -AEGIS_E_INVALID when it is not such a file; err names the file and the fix.
 */
int dp_lastgood_load(const char *dir, const struct aegis_keyring *ring, char **doc, size_t *len,
                     struct aegis_err *err);
/* Cleanses and frees a document from dp_lastgood_load; accepts NULL. */
void dp_lastgood_free(char *doc, size_t len);

/*
 * The saver: writes the last good configuration on a thread of its own, so that a swap is
 * answered once it serves, not once 10 MB are sealed and fsynced (about 25 ms of a 10,000-host
 * swap). Documents handed over faster than they are written replace each other: only the newest
 * is written. Freeing the saver writes what is pending first, so a graceful stop never loses the
 * last configuration; a crash within those milliseconds restarts with the one before, which the
 * controller pushes again.
 */
struct dp_lastgood_saver;

/* dir and ring are borrowed and must outlive the saver. */
int dp_lastgood_saver_new(const char *dir, const struct aegis_keyring *ring,
                          struct dp_lastgood_saver **out, struct aegis_err *err);
/* Copies doc (len bytes) to be written; a copy not written yet is cleansed and replaced. */
void dp_lastgood_saver_submit(struct dp_lastgood_saver *s, const char *doc, size_t len);
/* "saving", "saved" or "error" (with the error in err, of errsize bytes), for GET /status. */
const char *dp_lastgood_saver_state(struct dp_lastgood_saver *s, char *err, size_t errsize);
/* Writes what is pending, stops the thread and frees s. Accepts NULL. */
void dp_lastgood_saver_free(struct dp_lastgood_saver *s);

#endif
