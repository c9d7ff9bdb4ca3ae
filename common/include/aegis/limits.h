/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every ceiling on outside input, in one place. A parser that reads something a user or a peer
 * controls names its limit here, so the bounds can be reviewed together.
 */
#ifndef AEGIS_LIMITS_H
#define AEGIS_LIMITS_H

/* YAML resource files (common/yaml.c, common/resource.c). */
#define AEGIS_LIMIT_YAML_FILE_BYTES (8u * 1024 * 1024) /* one file */
#define AEGIS_LIMIT_YAML_DOC_BYTES (1u * 1024 * 1024)  /* one document of a file */
#define AEGIS_LIMIT_YAML_DOCS 1000                     /* documents per file */
#define AEGIS_LIMIT_YAML_DEPTH 32                      /* nesting of mappings and lists */
#define AEGIS_LIMIT_YAML_NODES 100000                  /* nodes per document */
#define AEGIS_LIMIT_YAML_SCALAR_BYTES (256u * 1024)    /* one scalar (a PEM bundle fits) */
#define AEGIS_LIMIT_YAML_KEY_BYTES 256                 /* one mapping key */
#define AEGIS_LIMIT_FILES_PER_DIR 10000                /* files read below one path */

/* Strings without a schema maxLength. */
#define AEGIS_LIMIT_STRING_BYTES (64u * 1024)
/* PEM text: one block list. */
#define AEGIS_LIMIT_PEM_BLOCKS 16

/* Diagnostics kept per run; past this they are counted, not stored. */
#define AEGIS_LIMIT_DIAGS 10000

/* X.509 and keys (common/pki.c), secrets and the local CA (controller/secret.c, issuer/ca.c). */
#define AEGIS_LIMIT_PEM_BYTES 262144u     /* 256 KiB: one PEM text (key, chain, CSR) */
#define AEGIS_LIMIT_CHAIN_CERTS 10        /* certificates in one chain */
#define AEGIS_LIMIT_SANS 256              /* subject alternative names per certificate */
#define AEGIS_LIMIT_SECRET_BYTES 1048576u /* 1 MiB: one secret file (PKCS#12 fits) */
#define AEGIS_LIMIT_CRL_ENTRIES 10000     /* revoked serials kept by the local CA */

/* Encrypted store (common/envelope.c, common/masterkey.c, common/store*.c). */
#define AEGIS_LIMIT_ENVELOPE_PLAINTEXT_BYTES ((size_t)1024 * 1024) /* one sealed value (key PEM) */
#define AEGIS_LIMIT_ENVELOPE_AAD_BYTES 1024                        /* associated data string */
#define AEGIS_LIMIT_MASTERKEY_FILE_BYTES 128                       /* a master key file */
#define AEGIS_LIMIT_STORE_RECORD_BYTES ((size_t)4 * 1024 * 1024)   /* one record file */
#define AEGIS_LIMIT_STORE_HISTORY 64                               /* history entries per record */
#define AEGIS_LIMIT_STORE_RECORDS 100000                           /* records listed per store */

/* Custom certificates and PKCS#12 (controller/import.c): key derivation iterations a bundle may
 * ask for (OpenSSL writes 2048; a huge count would stall the controller). */
#define AEGIS_LIMIT_PKCS12_ITERATIONS 2000000
#define AEGIS_LIMIT_PKCS12_PASSWORD_BYTES 1024 /* one PKCS#12 password */

/* Rendered configuration (common/rconf.c): the document the controller pushes to the dataplane.
 * 10,000 hosts with an ECDSA chain and key each take about 40 MB of JSON. */
#define AEGIS_LIMIT_RCONF_BYTES ((size_t)256 * 1024 * 1024) /* one document */
#define AEGIS_LIMIT_RCONF_HOSTS 50000                       /* hosts per document */
#define AEGIS_LIMIT_RCONF_HOSTNAMES 100                     /* names per host (Host's maxItems) */
#define AEGIS_LIMIT_RCONF_UPSTREAMS 64                      /* upstreams per host */
#define AEGIS_LIMIT_RCONF_CERTIFICATES 50000                /* stored certificates */
#define AEGIS_LIMIT_RCONF_CHALLENGES 10000                  /* pending ACME HTTP-01 tokens */
#define AEGIS_LIMIT_RCONF_LISTENERS 16                      /* addresses per listener kind */
#define AEGIS_LIMIT_RCONF_WORKERS 256                       /* worker threads */
#define AEGIS_LIMIT_RCONF_TOKEN_BYTES 256                   /* one ACME token */
#define AEGIS_LIMIT_RCONF_KEYAUTH_BYTES 512                 /* one ACME key authorization */
#define AEGIS_LIMIT_RCONF_NAME_BYTES 512                    /* a host or certificate name */

/* Directory watching (controller/watch.c): --watch paths, inotify watches and events. */
#define AEGIS_LIMIT_WATCH_PATHS 64          /* --watch paths per controller */
#define AEGIS_LIMIT_WATCH_DIRS 10000        /* directories watched below one path */
#define AEGIS_LIMIT_WATCH_DIRTY_PATHS 4096  /* changed paths kept per path; past it, rescan all */
#define AEGIS_LIMIT_WATCH_EVENTS_STEP 8192  /* inotify events handled per watch_process call */
#define AEGIS_LIMIT_WATCH_DEAD_RECORDS 4096 /* dead libinotifytools records before a restart */

#endif
