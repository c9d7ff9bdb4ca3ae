/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secret references in directory mode. A reference {name, key} in namespace ns resolves to the
 * file <secrets dir>/<ns>/<name>/<key>, the layout of a mounted Kubernetes Secret volume (so a
 * volume mounted there works as is, symlinks included). Reads are bounded by
 * AEGIS_LIMIT_SECRET_BYTES; a missing or unreadable file is a clear error naming the path.
 */
#ifndef AEGIS_SECRET_H
#define AEGIS_SECRET_H

#include <stddef.h>

#include "aegis/err.h"

/* The secrets directory under a state directory when no flag names one: <state>/secrets. */
#define SECRET_DIR_DEFAULT_SUBDIR "secrets"

/*
 * Reads <secrets_dir>/<ns>/<name>/<key> into a new buffer *buf of *len bytes plus a NUL (len may
 * be NULL); the caller frees it with pki_secret_free(buf, len) (it may hold a key). ns, name and
 * key must be non-empty, without '/', and not "." or "..". Errors: -AEGIS_E_NOTFOUND when the
 * file does not exist, -AEGIS_E_LIMIT when it is larger than AEGIS_LIMIT_SECRET_BYTES,
 * -AEGIS_E_INVALID for a bad part or a non-regular file, -errno for other failures; the message
 * names the Secret and the path.
 */
int secret_read(const char *secrets_dir, const char *ns, const char *name, const char *key,
                char **buf, size_t *len, struct aegis_err *err);

/*
 * Reads a file given by path (a PEMSource's `file`, a CA file) the same way: bounded by
 * AEGIS_LIMIT_SECRET_BYTES, NUL-terminated, freed with pki_secret_free. what names the file in
 * messages ("the CA private key").
 */
int secret_read_file(const char *path, const char *what, char **buf, size_t *len,
                     struct aegis_err *err);

struct aegis_pem_source;

/*
 * Reads a PEMSource (inline pem, a file, or a secretRef resolved in namespace ns under
 * secrets_dir) into a new NUL-terminated buffer, freed with pki_secret_free. what names the
 * field in messages ("spec.ca.privateKey"). -AEGIS_E_INVALID when the source gives nothing.
 */
int secret_read_pem_source(const struct aegis_pem_source *src, const char *ns,
                           const char *secrets_dir, const char *what, char **buf, size_t *len,
                           struct aegis_err *err);

#endif
