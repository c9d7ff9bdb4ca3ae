/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The resource model: YAML documents into Issuer, Certificate and Host structs. The schema part
 * of validation is api.c walking the generated tables; this file adds the document envelope
 * (apiVersion, kind, metadata, spec), the derived defaults, the checks a JSON Schema cannot
 * express (durations compared, HSTS preload requirements), and the checks across the set of
 * resources (duplicates, dangling references, a hostname claimed twice).
 */
#include "aegis/resource.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aegis/alloc.h"
#include "aegis/api.h"
#include "aegis/err.h"
#include "aegis/format.h"
#include "aegis/limits.h"
#include "aegis/yaml.h"

/* Durations below this are refused: a certificate that short-lived would renew constantly. */
#define MIN_CERT_DURATION_MS (60LL * 60 * 1000)
/* HSTS preload lists require a max-age of at least one year. */
#define HSTS_PRELOAD_MIN_AGE 31536000

static const char *const kind_names[] = {
#define AEGIS_KIND_NAME(e, name, member, table) name,
    AEGIS_KINDS(AEGIS_KIND_NAME)
#undef AEGIS_KIND_NAME
};

static const struct api_type *const kind_tables[] = {
#define AEGIS_KIND_TABLE(e, name, member, table) &(table),
    AEGIS_KINDS(AEGIS_KIND_TABLE)
#undef AEGIS_KIND_TABLE
};

static const char *const top_fields[] = {"apiVersion", "kind", "metadata", "spec", "status"};

const char *resource_kind_name(enum aegis_kind kind)
{
    return (unsigned)kind < AEGIS_KIND_COUNT_ ? kind_names[kind] : "?";
}

int resource_kind_parse(const char *name, enum aegis_kind *kind)
{
    for (int k = 0; k < AEGIS_KIND_COUNT_; k++) {
        if (strcmp(name, kind_names[k]) == 0) {
            *kind = (enum aegis_kind)k;
            return 0;
        }
    }
    return -AEGIS_E_NOTFOUND;
}

const struct api_type *resource_kind_spec_type(enum aegis_kind kind)
{
    return kind_tables[kind];
}

void resource_set_init(struct aegis_resource_set *set)
{
    memset(set, 0, sizeof(*set));
}

static void resource_free(struct aegis_resource *r)
{
    if (r == NULL)
        return;
    api_dispose(&api_t_object_meta, &r->meta);
    api_dispose(kind_tables[r->kind], &r->spec);
    free(r->file);
    free(r);
}

void resource_set_dispose(struct aegis_resource_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        resource_free(set->v[i]);
    for (size_t i = 0; i < set->nghosts; i++) {
        free(set->ghosts[i].ns);
        free(set->ghosts[i].name);
    }
    free(set->v);
    free(set->ghosts);
    memset(set, 0, sizeof(*set));
}

static void add_ghost(struct aegis_resource_set *set, enum aegis_kind kind, const char *ns,
                      const char *name)
{
    aegis_grow((void **)&set->ghosts, &set->ghosts_cap, set->nghosts + 1, sizeof(*set->ghosts));
    set->ghosts[set->nghosts].kind = kind;
    set->ghosts[set->nghosts].ns = aegis_strdup(ns);
    set->ghosts[set->nghosts].name = aegis_strdup(name);
    set->nghosts++;
}

static void diag(struct aegis_diags *d, enum aegis_severity sev, const struct api_ctx *ctx,
                 struct aegis_mark mark, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void diag(struct aegis_diags *d, enum aegis_severity sev, const struct api_ctx *ctx,
                 struct aegis_mark mark, const char *path, const char *fmt, ...)
{
    struct aegis_diag_loc loc = {
        .file = ctx->file,
        .mark = mark,
        .kind = ctx->kind,
        .ns = ctx->ns,
        .name = ctx->name,
        .path = path,
    };
    va_list ap;

    va_start(ap, fmt);
    aegis_diags_vadd(d, sev, &loc, fmt, ap);
    va_end(ap);
}

static struct aegis_mark mark_of(const struct aegis_ynode *map, const char *key,
                                 struct aegis_mark fallback)
{
    const struct aegis_ynode *n = map != NULL ? aegis_ymap_get(map, key) : NULL;

    return n != NULL ? n->mark : fallback;
}

static const char *str_or_null(const struct aegis_ynode *n)
{
    return n != NULL && n->type == AEGIS_Y_SCALAR && n->scalar == AEGIS_YS_STRING ? n->str : NULL;
}

/* Defaults that depend on other fields, applied once right after decoding. */
static void certificate_defaults(struct aegis_certificate_spec *c)
{
    struct aegis_certificate_private_key *pk = &c->private_key;

    if (!API_HAS(c, API_F_CERTIFICATE_SPEC_RENEW_BEFORE)) {
        c->renew_before_ms = c->duration_ms / 3;
        c->present |= UINT64_C(1) << API_F_CERTIFICATE_SPEC_RENEW_BEFORE;
    }
    if (!API_HAS(pk, API_F_CERTIFICATE_PRIVATE_KEY_SIZE) &&
        pk->algorithm != AEGIS_KEY_ALGORITHM_ED25519) {
        pk->size = pk->algorithm == AEGIS_KEY_ALGORITHM_RSA ? 2048 : 256;
        pk->present |= UINT64_C(1) << API_F_CERTIFICATE_PRIVATE_KEY_SIZE;
    }
}

/* Checks that compare fields in ways a JSON Schema cannot. Returns the number of errors. */
static unsigned certificate_semantics(struct aegis_certificate_spec *c,
                                      const struct aegis_ynode *spec, const struct api_ctx *ctx)
{
    unsigned nerr = 0;
    char a[32], b[32];
    bool renew_given = API_HAS(c, API_F_CERTIFICATE_SPEC_RENEW_BEFORE);

    if (c->duration_ms < MIN_CERT_DURATION_MS) {
        aegis_duration_format(c->duration_ms, a, sizeof(a));
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, mark_of(spec, "duration", c->mark), "spec.duration",
             "\"%s\" is shorter than the minimum of 1h", a);
        nerr++;
    } else if (renew_given && c->renew_before_ms >= c->duration_ms) {
        aegis_duration_format(c->duration_ms, b, sizeof(b));
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, mark_of(spec, "renewBefore", c->mark),
             "spec.renewBefore", "must be shorter than duration (%s)", b);
        nerr++;
    }
    return nerr;
}

static unsigned host_semantics(const struct aegis_host_spec *h, const struct aegis_ynode *spec,
                               const struct api_ctx *ctx)
{
    const struct aegis_hsts *hsts = &h->tls.hsts;
    unsigned nerr = 0;

    (void)spec;
    if (hsts->enabled && hsts->preload &&
        (!hsts->include_subdomains || hsts->max_age < HSTS_PRELOAD_MIN_AGE)) {
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, hsts->mark, "spec.tls.hsts.preload",
             "preload requires includeSubdomains: true and a maxAge of at least %d (one year)",
             HSTS_PRELOAD_MIN_AGE);
        nerr++;
    }
    if (API_HAS(h, API_F_HOST_SPEC_UPSTREAM_TLS) && h->upstream_tls.insecure_skip_verify)
        diag(ctx->diags, AEGIS_SEV_WARNING, ctx, h->upstream_tls.mark,
             "spec.upstreamTLS.insecureSkipVerify",
             "upstream certificates are not verified; use this for development only");
    return nerr;
}

/* Checks the envelope fields; returns false when the document cannot be decoded further. */
static bool check_envelope(const struct aegis_ynode *root, const struct api_ctx *ctx,
                           bool kind_known, unsigned *nerr)
{
    const struct aegis_ynode *av = aegis_ymap_get(root, "apiVersion");
    const struct aegis_ynode *kn = aegis_ymap_get(root, "kind");
    char kinds[128] = "";

    for (int k = 0; k < AEGIS_KIND_COUNT_; k++) {
        size_t o = strlen(kinds);

        snprintf(kinds + o, sizeof(kinds) - o, "%s%s", k ? ", " : "", kind_names[k]);
    }
    for (size_t i = 0; i < root->n; i++) {
        const struct aegis_ynode *key = root->pairs[i].key;
        const char *hint;
        bool known = false;

        for (size_t j = 0; j < sizeof(top_fields) / sizeof(top_fields[0]); j++)
            known = known || strcmp(key->str, top_fields[j]) == 0;
        if (known)
            continue;
        hint = aegis_suggest(key->str, top_fields, sizeof(top_fields) / sizeof(top_fields[0]));
        if (hint != NULL)
            diag(ctx->diags, AEGIS_SEV_ERROR, ctx, key->mark, key->str,
                 "unknown field; did you mean \"%s\"?", hint);
        else
            diag(ctx->diags, AEGIS_SEV_ERROR, ctx, key->mark, key->str,
                 "unknown field; expected one of: apiVersion, kind, metadata, spec, status");
        (*nerr)++;
    }
    if (av == NULL) {
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, root->mark, "apiVersion",
             "required field is missing; set it to \"" AEGIS_API_VERSION "\"");
        (*nerr)++;
    } else if (str_or_null(av) == NULL) {
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, av->mark, "apiVersion", "expected a string, got %s",
             aegis_ynode_describe(av));
        (*nerr)++;
    } else if (strcmp(av->str, AEGIS_API_VERSION) != 0) {
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, av->mark, "apiVersion",
             "\"%.64s\" is not supported; use \"" AEGIS_API_VERSION "\"", av->str);
        (*nerr)++;
    }
    if (kn == NULL) {
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, root->mark, "kind",
             "required field is missing; use one of %s", kinds);
        (*nerr)++;
    } else if (str_or_null(kn) == NULL) {
        diag(ctx->diags, AEGIS_SEV_ERROR, ctx, kn->mark, "kind", "expected a string, got %s",
             aegis_ynode_describe(kn));
        (*nerr)++;
    } else if (!kind_known) {
        const char *hint = aegis_suggest(kn->str, kind_names, AEGIS_KIND_COUNT_);

        if (hint != NULL)
            diag(ctx->diags, AEGIS_SEV_ERROR, ctx, kn->mark, "kind",
                 "\"%.64s\" is not a kind of " AEGIS_API_VERSION "; did you mean \"%s\"?", kn->str,
                 hint);
        else
            diag(ctx->diags, AEGIS_SEV_ERROR, ctx, kn->mark, "kind",
                 "\"%.64s\" is not a kind of " AEGIS_API_VERSION "; use one of %s", kn->str, kinds);
        (*nerr)++;
    }
    return kind_known;
}

/*
 * A relative `file:` path (every string of format file-path) names a neighbour of the YAML file
 * that holds it - a repository keeps a certificate next to the resource that uses it - so it is
 * anchored to the file's directory at load time instead of depending on the controller's working
 * directory. The directory is taken as written (through a swapped GitOps symlink, say), not
 * resolved, so the path follows a swap.
 */
static void anchor_paths(const struct api_type *t, void *obj, const char *dir, int dir_len)
{
    for (size_t i = 0; i < t->n_fields; i++) {
        const struct api_field *f = &t->fields[i];
        char *member = (char *)obj + f->offset;

        if (f->kind == API_STRING && f->format == AEGIS_FMT_FILE_PATH) {
            char **s = (char **)(void *)member;

            if (*s != NULL && (*s)[0] != '/' && (*s)[0] != '\0') {
                char *anchored = aegis_asprintf("%.*s/%s", dir_len, dir, *s);

                free(*s);
                *s = anchored;
            }
        } else if (f->kind == API_OBJECT) {
            anchor_paths(f->ref, member, dir, dir_len);
        } else if (f->kind == API_LIST_OBJECT) {
            const struct api_list *l = (const struct api_list *)(void *)member;

            for (size_t k = 0; k < l->n; k++)
                anchor_paths(f->ref, (char *)l->v + k * f->ref->size, dir, dir_len);
        }
    }
}

static unsigned load_doc(struct aegis_resource_set *set, const char *file,
                         const struct aegis_ydoc *doc, struct aegis_diags *diags)
{
    const struct aegis_ynode *root = doc->root;
    const struct aegis_ynode *meta, *spec, *kn;
    struct aegis_resource *r = NULL;
    struct api_ctx ctx = {.diags = diags, .file = file};
    enum aegis_kind kind = AEGIS_KIND_ISSUER;
    bool kind_known = false;
    unsigned nerr = 0;

    if (root == NULL)
        return 0;
    set->ndocs++;
    if (root->type != AEGIS_Y_MAP) {
        diag(diags, AEGIS_SEV_ERROR, &ctx, root->mark, NULL,
             "a resource must be a mapping with apiVersion, kind, metadata and spec; got %s",
             aegis_ynode_describe(root));
        return 1;
    }

    /* Name the resource in every message, as far as the document says what it is. */
    kn = aegis_ymap_get(root, "kind");
    if (str_or_null(kn) != NULL && resource_kind_parse(kn->str, &kind) == 0) {
        kind_known = true;
        ctx.kind = kind_names[kind];
    }
    meta = aegis_ymap_get(root, "metadata");
    if (meta != NULL && meta->type == AEGIS_Y_MAP) {
        const char *ns = str_or_null(aegis_ymap_get(meta, "namespace"));

        ctx.name = str_or_null(aegis_ymap_get(meta, "name"));
        ctx.ns = ns != NULL ? ns : "default";
    }
    if (ctx.name == NULL)
        ctx.ns = NULL;

    if (!check_envelope(root, &ctx, kind_known, &nerr))
        return nerr;

    r = aegis_calloc(1, sizeof(*r));
    r->kind = kind;
    r->file = aegis_strdup(file);
    r->mark = doc->mark;
    r->doc = doc->index;

    if (meta == NULL) {
        diag(diags, AEGIS_SEV_ERROR, &ctx, root->mark, "metadata", "required field is missing");
        nerr++;
    } else if (api_decode(&api_t_object_meta, meta, &r->meta, &ctx, "metadata") < 0) {
        nerr++;
    }
    spec = aegis_ymap_get(root, "spec");
    if (spec == NULL) {
        diag(diags, AEGIS_SEV_ERROR, &ctx, root->mark, "spec", "required field is missing");
        nerr++;
    } else if (api_decode(kind_tables[kind], spec, &r->spec, &ctx, "spec") < 0) {
        nerr++;
    } else if (kind == AEGIS_KIND_CERTIFICATE) {
        certificate_defaults(&r->spec.certificate);
        nerr += certificate_semantics(&r->spec.certificate, spec, &ctx);
    } else if (kind == AEGIS_KIND_HOST) {
        nerr += host_semantics(&r->spec.host, spec, &ctx);
    }

    if (nerr == 0 && strrchr(file, '/') != NULL)
        anchor_paths(kind_tables[kind], &r->spec, file, (int)(strrchr(file, '/') - file));
    if (nerr != 0) {
        if (ctx.name != NULL)
            add_ghost(set, kind, ctx.ns, ctx.name);
        resource_free(r);
        return nerr;
    }
    aegis_grow((void **)&set->v, &set->cap, set->n + 1, sizeof(*set->v));
    set->v[set->n++] = r;
    return 0;
}

/* Adds the documents of a loaded file (NULL when it could not be read) and frees it. */
static int add_yfile(struct aegis_resource_set *set, const char *name, struct aegis_yfile *yf,
                     size_t errors_before, struct aegis_diags *diags)
{
    set->nfiles++;
    for (size_t i = 0; yf != NULL && i < yf->ndocs; i++)
        load_doc(set, name, &yf->docs[i], diags);
    aegis_yfile_free(yf);
    return diags->nerrors == errors_before ? 0 : -AEGIS_E_INVALID;
}

int resource_load_buffer(struct aegis_resource_set *set, const char *name, const char *buf,
                         size_t len, struct aegis_diags *diags)
{
    struct aegis_yfile *yf = NULL;
    size_t before = diags->nerrors;

    aegis_yaml_load_buffer(name, buf, len, &yf, diags);
    return add_yfile(set, name, yf, before, diags);
}

int resource_load_file(struct aegis_resource_set *set, const char *path, struct aegis_diags *diags)
{
    struct aegis_yfile *yf = NULL;
    size_t before = diags->nerrors;

    aegis_yaml_load_file(path, &yf, diags);
    return add_yfile(set, path, yf, before, diags);
}

static bool is_yaml_name(const char *name)
{
    size_t n = strlen(name);

    return (n > 5 && strcmp(name + n - 5, ".yaml") == 0) ||
           (n > 4 && strcmp(name + n - 4, ".yml") == 0);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_dir(struct aegis_resource_set *set, const char *path, unsigned depth,
                    size_t *budget, struct aegis_diags *diags)
{
    struct aegis_diag_loc loc = {.file = path};
    DIR *dir = NULL;
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int ret = 0;

    if (depth > AEGIS_LIMIT_YAML_DEPTH) {
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc,
                        "directories nested deeper than %d levels; is there a symlink loop?",
                        AEGIS_LIMIT_YAML_DEPTH);
        return -AEGIS_E_LIMIT;
    }
    dir = opendir(path);
    if (dir == NULL) {
        ret = -errno;
        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot read the directory: %s",
                        aegis_strerror(ret));
        return ret;
    }
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        aegis_grow((void **)&names, &cap, n + 1, sizeof(*names));
        names[n++] = aegis_strdup(de->d_name);
    }
    closedir(dir);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_str);

    for (size_t i = 0; i < n; i++) {
        char *sub =
            aegis_asprintf("%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names[i]);
        struct stat st;

        if (stat(sub, &st) != 0) {
            /* A dangling symlink or a file removed while we read: not ours to judge. */
        } else if (S_ISDIR(st.st_mode)) {
            if (load_dir(set, sub, depth + 1, budget, diags) < 0)
                ret = -AEGIS_E_INVALID;
        } else if (S_ISREG(st.st_mode) && is_yaml_name(names[i])) {
            if (*budget == 0) {
                struct aegis_diag_loc l2 = {.file = sub};

                aegis_diags_add(diags, AEGIS_SEV_ERROR, &l2,
                                "more than %d files; the rest are not read",
                                AEGIS_LIMIT_FILES_PER_DIR);
                free(sub);
                ret = -AEGIS_E_LIMIT;
                break;
            }
            (*budget)--;
            if (resource_load_file(set, sub, diags) < 0)
                ret = -AEGIS_E_INVALID;
        }
        free(sub);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return ret;
}

int resource_load_path(struct aegis_resource_set *set, const char *path, struct aegis_diags *diags)
{
    struct stat st;
    size_t budget = AEGIS_LIMIT_FILES_PER_DIR;

    if (stat(path, &st) != 0) {
        struct aegis_diag_loc loc = {.file = path};
        int e = -errno;

        aegis_diags_add(diags, AEGIS_SEV_ERROR, &loc, "cannot read: %s; check the path",
                        aegis_strerror(e));
        return e;
    }
    if (S_ISDIR(st.st_mode))
        return load_dir(set, path, 0, &budget, diags);
    return resource_load_file(set, path, diags);
}

/* ---- checks across the set ------------------------------------------------------------- */

/* A resource and its position in the set, so that sorting can keep file order for ties. */
struct sref {
    const struct aegis_resource *r;
    size_t idx;
};

static int cmp_ident(const struct aegis_resource *x, const struct aegis_resource *y)
{
    int c;

    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    c = strcmp(x->meta.namespace, y->meta.namespace);
    return c != 0 ? c : strcmp(x->meta.name, y->meta.name);
}

static int cmp_sref(const void *a, const void *b)
{
    const struct sref *x = a, *y = b;
    int c = cmp_ident(x->r, y->r);

    if (c != 0)
        return c;
    /* Equal names: keep file order, so the later definition is the one reported. */
    return x->idx < y->idx ? -1 : (x->idx > y->idx ? 1 : 0);
}

const struct aegis_resource *resource_set_find(const struct aegis_resource_set *set,
                                               enum aegis_kind kind, const char *ns,
                                               const char *name)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct aegis_resource *r = set->v[i];

        if (r->kind == kind && strcmp(r->meta.name, name) == 0 &&
            strcmp(r->meta.namespace, ns) == 0)
            return r;
    }
    return NULL;
}

struct checker {
    const struct aegis_resource_set *set;
    struct sref *sorted; /* by kind, namespace, name, then set order */
    struct aegis_diags *diags;
    unsigned nerr;
};

static const struct aegis_resource *find_sorted(const struct checker *ck, enum aegis_kind kind,
                                                const char *ns, const char *name)
{
    size_t lo = 0, hi = ck->set->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct aegis_resource *r = ck->sorted[mid].r;
        int c = r->kind != kind ? (r->kind < kind ? -1 : 1) : strcmp(r->meta.namespace, ns);

        if (c == 0)
            c = strcmp(r->meta.name, name);
        if (c == 0)
            return r;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static bool is_ghost(const struct aegis_resource_set *set, enum aegis_kind kind, const char *ns,
                     const char *name)
{
    for (size_t i = 0; i < set->nghosts; i++)
        if (set->ghosts[i].kind == kind && strcmp(set->ghosts[i].ns, ns) == 0 &&
            strcmp(set->ghosts[i].name, name) == 0)
            return true;
    return false;
}

static void res_ctx(const struct aegis_resource *r, struct aegis_diags *d, struct api_ctx *ctx)
{
    ctx->diags = d;
    ctx->file = r->file;
    ctx->kind = kind_names[r->kind];
    ctx->ns = r->meta.namespace;
    ctx->name = r->meta.name;
}

/* Reports a reference to a missing resource; returns the resource when it exists. */
static const struct aegis_resource *check_ref(struct checker *ck, const struct aegis_resource *r,
                                              enum aegis_kind kind, const char *name,
                                              struct aegis_mark mark, const char *path)
{
    const struct aegis_resource *t = find_sorted(ck, kind, r->meta.namespace, name);
    const char **cands = NULL;
    const char *hint;
    struct api_ctx ctx;
    size_t n = 0;

    if (t != NULL || is_ghost(ck->set, kind, r->meta.namespace, name))
        return t;
    cands = aegis_calloc(ck->set->n + 1, sizeof(*cands));
    for (size_t i = 0; i < ck->set->n; i++) {
        const struct aegis_resource *c = ck->set->v[i];

        if (c->kind == kind && strcmp(c->meta.namespace, r->meta.namespace) == 0)
            cands[n++] = c->meta.name;
    }
    hint = aegis_suggest(name, cands, n);
    res_ctx(r, ck->diags, &ctx);
    if (hint != NULL)
        diag(ck->diags, AEGIS_SEV_ERROR, &ctx, mark, path,
             "%s \"%s/%s\" does not exist; did you mean \"%s\"?", kind_names[kind],
             r->meta.namespace, name, hint);
    else
        diag(ck->diags, AEGIS_SEV_ERROR, &ctx, mark, path, "%s \"%s/%s\" does not exist",
             kind_names[kind], r->meta.namespace, name);
    ck->nerr++;
    free(cands);
    return NULL;
}

static void check_refs(struct checker *ck, const struct aegis_resource *r)
{
    switch (r->kind) {
    case AEGIS_KIND_CERTIFICATE: {
        const struct aegis_certificate_spec *c = &r->spec.certificate;

        if (API_HAS(c, API_F_CERTIFICATE_SPEC_ISSUER_REF))
            check_ref(ck, r, AEGIS_KIND_ISSUER, c->issuer_ref.name, c->issuer_ref.mark,
                      "spec.issuerRef.name");
        break;
    }
    case AEGIS_KIND_HOST: {
        const struct aegis_host_spec *h = &r->spec.host;
        const struct aegis_host_tls *tls = &h->tls;

        if (API_HAS(tls, API_F_HOST_TLS_ISSUER_REF))
            check_ref(ck, r, AEGIS_KIND_ISSUER, tls->issuer_ref.name, tls->issuer_ref.mark,
                      "spec.tls.issuerRef.name");
        if (API_HAS(tls, API_F_HOST_TLS_CERTIFICATE_REF))
            check_ref(ck, r, AEGIS_KIND_CERTIFICATE, tls->certificate_ref.name,
                      tls->certificate_ref.mark, "spec.tls.certificateRef.name");
        if (API_HAS(tls, API_F_HOST_TLS_CLIENT_AUTH) &&
            API_HAS(&tls->client_auth, API_F_CLIENT_AUTH_ISSUER_REF)) {
            const struct aegis_local_reference *ref = &tls->client_auth.issuer_ref;
            const struct aegis_resource *iss =
                check_ref(ck, r, AEGIS_KIND_ISSUER, ref->name, ref->mark,
                          "spec.tls.clientAuth.issuerRef.name");

            if (iss != NULL && !API_HAS(&iss->spec.issuer, API_F_ISSUER_SPEC_CA)) {
                struct api_ctx ctx;

                res_ctx(r, ck->diags, &ctx);
                diag(ck->diags, AEGIS_SEV_ERROR, &ctx, ref->mark,
                     "spec.tls.clientAuth.issuerRef.name",
                     "Issuer \"%s/%s\" is not a ca Issuer; client certificates can only be "
                     "checked against a CA's certificate",
                     r->meta.namespace, ref->name);
                ck->nerr++;
            }
        }
        if (API_HAS(h, API_F_HOST_SPEC_UPSTREAM_TLS) &&
            API_HAS(&h->upstream_tls, API_F_UPSTREAM_TLS_CLIENT_CERTIFICATE_REF))
            check_ref(ck, r, AEGIS_KIND_CERTIFICATE, h->upstream_tls.client_certificate_ref.name,
                      h->upstream_tls.client_certificate_ref.mark,
                      "spec.upstreamTLS.clientCertificateRef.name");
        break;
    }
    case AEGIS_KIND_ISSUER:
    case AEGIS_KIND_COUNT_:
        break;
    }
}

struct claim {
    char *name; /* lowercased hostname */
    const struct aegis_resource *host;
    size_t item;
    size_t order;
};

static int cmp_claim(const void *a, const void *b)
{
    const struct claim *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    return x->order < y->order ? -1 : (x->order > y->order ? 1 : 0);
}

static void check_hostnames(struct checker *ck)
{
    struct claim *claims = NULL;
    size_t n = 0, cap = 0;

    for (size_t i = 0; i < ck->set->n; i++) {
        const struct aegis_resource *r = ck->set->v[i];

        if (r->kind != AEGIS_KIND_HOST)
            continue;
        for (size_t j = 0; j < r->spec.host.hostnames.n; j++) {
            char *s = aegis_strdup(r->spec.host.hostnames.v[j]);

            for (char *p = s; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            aegis_grow((void **)&claims, &cap, n + 1, sizeof(*claims));
            claims[n] = (struct claim){.name = s, .host = r, .item = j, .order = n};
            n++;
        }
    }
    if (n > 1)
        qsort(claims, n, sizeof(*claims), cmp_claim);
    for (size_t i = 1; i < n; i++) {
        const struct claim *first = &claims[i - 1];
        struct api_ctx ctx;
        char path[64];

        if (strcmp(claims[i].name, first->name) != 0)
            continue;
        /* Walk back to the first claim of this name, so a third claim names the first. */
        for (size_t k = i - 1; k > 0 && strcmp(claims[k - 1].name, claims[i].name) == 0; k--)
            first = &claims[k - 1];
        if (first->host == claims[i].host)
            continue; /* listed twice in one Host: harmless */
        res_ctx(claims[i].host, ck->diags, &ctx);
        snprintf(path, sizeof(path), "spec.hostnames[%zu]", claims[i].item);
        diag(ck->diags, AEGIS_SEV_ERROR, &ctx,
             claims[i].host->spec.host.hostnames.marks[claims[i].item], path,
             "\"%s\" is already served by Host %s/%s at %s:%u:%u",
             claims[i].host->spec.host.hostnames.v[claims[i].item], first->host->meta.namespace,
             first->host->meta.name, first->host->file,
             first->host->spec.host.hostnames.marks[first->item].line,
             first->host->spec.host.hostnames.marks[first->item].col);
        ck->nerr++;
    }
    for (size_t i = 0; i < n; i++)
        free(claims[i].name);
    free(claims);
}

int resource_set_check(const struct aegis_resource_set *set, struct aegis_diags *diags)
{
    struct checker ck = {.set = set, .diags = diags};
    size_t first = 0;

    ck.sorted = aegis_calloc(set->n + 1, sizeof(*ck.sorted));
    for (size_t i = 0; i < set->n; i++)
        ck.sorted[i] = (struct sref){.r = set->v[i], .idx = i};
    if (set->n > 1)
        qsort(ck.sorted, set->n, sizeof(*ck.sorted), cmp_sref);

    /* Runs of equal identity: the first in file order is the original, the rest duplicates. */
    for (size_t i = 1; i < set->n; i++) {
        const struct aegis_resource *a, *b = ck.sorted[i].r;
        struct api_ctx ctx;

        if (cmp_ident(ck.sorted[first].r, b) != 0) {
            first = i;
            continue;
        }
        a = ck.sorted[first].r;
        res_ctx(b, diags, &ctx);
        diag(diags, AEGIS_SEV_ERROR, &ctx, b->meta.mark, "metadata.name",
             "%s %s/%s is already defined at %s:%u:%u", kind_names[b->kind], b->meta.namespace,
             b->meta.name, a->file, a->meta.mark.line, a->meta.mark.col);
        ck.nerr++;
    }
    for (size_t i = 0; i < set->n; i++)
        check_refs(&ck, set->v[i]);
    check_hostnames(&ck);
    free(ck.sorted);
    return ck.nerr == 0 ? 0 : -AEGIS_E_INVALID;
}
