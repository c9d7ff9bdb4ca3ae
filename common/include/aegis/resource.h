/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resource model: Issuer, Certificate and Host documents of aegis.dev/v1alpha1 read from
 * YAML files into typed structs (the generated api_types.gen.h), validated one by one (schema
 * checks in api.c, the checks a schema cannot express here), then as a set: duplicate names,
 * references to missing resources, and hostnames claimed by two Hosts.
 *
 * Defaults: the static ones of schemas/api.yaml are applied by api_decode(); the ones derived
 * from other fields (renewBefore, the private key size) by resource.c, right after decoding.
 */
#ifndef AEGIS_RESOURCE_H
#define AEGIS_RESOURCE_H

#include <stddef.h>

#include "aegis/api_types.gen.h"
#include "aegis/diag.h"

#define AEGIS_API_VERSION "aegis.dev/v1alpha1"

/* X(ENUM, "Kind", spec struct member, spec table) */
#define AEGIS_KINDS(X)                                                                             \
    X(ISSUER, "Issuer", issuer, api_t_issuer_spec)                                                 \
    X(CERTIFICATE, "Certificate", certificate, api_t_certificate_spec)                             \
    X(HOST, "Host", host, api_t_host_spec)

enum aegis_kind {
#define AEGIS_KIND_ENUM(e, name, member, table) AEGIS_KIND_##e,
    AEGIS_KINDS(AEGIS_KIND_ENUM)
#undef AEGIS_KIND_ENUM
        AEGIS_KIND_COUNT_
};

struct aegis_resource {
    enum aegis_kind kind;
    char *file;             /* where it was read from */
    struct aegis_mark mark; /* start of its document */
    unsigned doc;           /* 0-based document number in the file */
    struct aegis_object_meta meta;
    union {
        struct aegis_issuer_spec issuer;
        struct aegis_certificate_spec certificate;
        struct aegis_host_spec host;
    } spec;
};

/* A document that named itself but failed validation: kept so that references to it do not
 * also report "does not exist". */
struct aegis_resource_ghost {
    enum aegis_kind kind;
    char *ns;
    char *name;
};

struct aegis_resource_set {
    struct aegis_resource **v; /* valid resources, in file and document order */
    size_t n;
    size_t cap;
    struct aegis_resource_ghost *ghosts;
    size_t nghosts;
    size_t ghosts_cap;
    size_t nfiles; /* files read */
    size_t ndocs;  /* non-empty documents read */
};

/* "Issuer" etc. */
const char *resource_kind_name(enum aegis_kind kind);
/* The kind with this name; -AEGIS_E_NOTFOUND when none. */
int resource_kind_parse(const char *name, enum aegis_kind *kind);
/* The decoding table of a kind's spec. */
const struct api_type *resource_kind_spec_type(enum aegis_kind kind);

void resource_set_init(struct aegis_resource_set *set);
void resource_set_dispose(struct aegis_resource_set *set);

/*
 * Reads every document of a YAML buffer (name is used in messages) into set: valid resources are
 * added, every problem goes to diags. Returns 0, or -AEGIS_E_INVALID when any error was reported
 * for this input.
 */
int resource_load_buffer(struct aegis_resource_set *set, const char *name, const char *buf,
                         size_t len, struct aegis_diags *diags);
/* The same for a file. */
int resource_load_file(struct aegis_resource_set *set, const char *path, struct aegis_diags *diags);
/*
 * A file, or a directory walked recursively for *.yaml and *.yml in name order (entries whose
 * name starts with '.' are skipped, so a Kubernetes ConfigMap volume's ..data is read once).
 */
int resource_load_path(struct aegis_resource_set *set, const char *path, struct aegis_diags *diags);

/*
 * Checks the set as a whole: duplicate kind/namespace/name, references to missing Issuers and
 * Certificates, a hostname served by two Hosts. Returns 0 or -AEGIS_E_INVALID.
 */
int resource_set_check(const struct aegis_resource_set *set, struct aegis_diags *diags);

/* Finds a resource by kind, namespace and name; NULL when absent. */
const struct aegis_resource *resource_set_find(const struct aegis_resource_set *set,
                                               enum aegis_kind kind, const char *ns,
                                               const char *name);

#endif
