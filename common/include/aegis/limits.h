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

#endif
