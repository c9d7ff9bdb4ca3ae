/* SPDX-License-Identifier: Apache-2.0 */
/*
 * YAML loading: a multi-document YAML file (libyaml events) into a small tree of nodes that keep
 * their source position, for the resource decoder to walk. Bounded by the AEGIS_LIMIT_YAML_*
 * ceilings; anchors, aliases and custom tags are refused (they are how "billion laughs" inputs
 * work, and no resource needs them); duplicate mapping keys are refused (YAML requires unique
 * keys, libyaml does not check). Every problem is reported to a diagnostics list naming the file,
 * line and column, and the documents before a syntax error are kept.
 */
#ifndef AEGIS_YAML_H
#define AEGIS_YAML_H

#include <stdbool.h>
#include <stddef.h>

#include "aegis/diag.h"

enum aegis_ynode_type {
    AEGIS_Y_SCALAR,
    AEGIS_Y_MAP,
    AEGIS_Y_SEQ,
};

/* How a scalar resolves under the YAML 1.2 core schema (a quoted scalar is always a string). */
enum aegis_yscalar {
    AEGIS_YS_STRING,
    AEGIS_YS_NULL,  /* ~, null, Null, NULL, or empty plain */
    AEGIS_YS_BOOL,  /* true/True/TRUE/false/False/FALSE */
    AEGIS_YS_INT,   /* [-+]?[0-9]+, 0o[0-7]+, 0x[0-9a-fA-F]+ */
    AEGIS_YS_FLOAT, /* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?, .inf, .nan */
};

struct aegis_ynode;

struct aegis_ypair {
    struct aegis_ynode *key; /* always a scalar */
    struct aegis_ynode *value;
};

struct aegis_ynode {
    enum aegis_ynode_type type;
    struct aegis_mark mark; /* where the node starts */
    /* scalar */
    char *str; /* NUL-terminated; len excludes the NUL (may contain NULs) */
    size_t len;
    enum aegis_yscalar scalar; /* resolved kind of the scalar */
    /* mapping: pairs in document order; sequence: items */
    struct aegis_ypair *pairs;
    struct aegis_ynode **items;
    size_t n;
};

struct aegis_ydoc {
    struct aegis_ynode *root; /* NULL for an empty document */
    struct aegis_mark mark;   /* where the document starts */
    unsigned index;           /* 0-based document number in the file */
};

struct aegis_yfile {
    char *name; /* path or buffer name, as given */
    struct aegis_ydoc *docs;
    size_t ndocs;
};

/*
 * Loads a file. Returns 0 when every document parsed; a negative code when any problem was
 * reported to diags (the documents that parsed before it are still in *out). *out is always set
 * (free with aegis_yfile_free) unless the file could not be opened at all (then NULL).
 */
int aegis_yaml_load_file(const char *path, struct aegis_yfile **out, struct aegis_diags *diags);
/* The same for a buffer; name is used in diagnostics. */
int aegis_yaml_load_buffer(const char *name, const char *buf, size_t len, struct aegis_yfile **out,
                           struct aegis_diags *diags);
void aegis_yfile_free(struct aegis_yfile *f);

/* Returns the value for key in a mapping node, or NULL. */
const struct aegis_ynode *aegis_ymap_get(const struct aegis_ynode *map, const char *key);
/* Name of a node's type for messages: "a string", "an integer", "a mapping", "a list", ... */
const char *aegis_ynode_describe(const struct aegis_ynode *n);

#endif
