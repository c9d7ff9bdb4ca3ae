/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for common/diag.c: the printed form of a diagnostic in each of its variants, the
 * stable sort by place, and the AEGIS_LIMIT_DIAGS ceiling. Also the small pieces diag.c is built
 * on: aegis_strerror/aegis_err_set (err.c) and the allocator helpers (alloc.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aegis/alloc.h"
#include "aegis/diag.h"
#include "aegis/err.h"
#include "aegis/limits.h"
#include "check.h"

static const struct {
    enum aegis_severity sev;
    const char *file;
    unsigned line, col;
    const char *kind, *ns, *name, *path, *msg;
    const char *want;
} format_cases[] = {
    {AEGIS_SEV_ERROR, "a.yaml", 3, 7, "Certificate", "default", "app", "spec.dnsNames[2]",
     "\"exa mple.com\" is not a valid DNS name",
     "a.yaml:3:7: Certificate default/app: spec.dnsNames[2]: \"exa mple.com\" is not a valid DNS "
     "name"},
    {AEGIS_SEV_WARNING, "h.yaml", 10, 5, "Host", "default", "web", "spec.upstreamTLS", "insecure",
     "h.yaml:10:5: warning: Host default/web: spec.upstreamTLS: insecure"},
    {AEGIS_SEV_ERROR, NULL, 3, 7, "Issuer", "ns", "le", "spec", "m", "Issuer ns/le: spec: m"},
    {AEGIS_SEV_WARNING, NULL, 0, 0, NULL, NULL, NULL, NULL, "m", "warning: m"},
    {AEGIS_SEV_ERROR, "f.yaml", 0, 0, NULL, NULL, NULL, NULL, "too big", "f.yaml: too big"},
    {AEGIS_SEV_ERROR, "f.yaml", 4, 0, NULL, NULL, NULL, NULL, "m", "f.yaml:4: m"},
    {AEGIS_SEV_ERROR, "f.yaml", 4, 2, "Host", NULL, "web", NULL, "m", "f.yaml:4:2: Host web: m"},
    {AEGIS_SEV_ERROR, "f.yaml", 4, 2, "Host", "ns", NULL, NULL, "m", "f.yaml:4:2: Host: m"},
    {AEGIS_SEV_ERROR, "f.yaml", 4, 2, NULL, "ns", "web", "spec.x", "m", "f.yaml:4:2: spec.x: m"},
    {AEGIS_SEV_WARNING, "f.yaml", 1, 1, "Host", NULL, NULL, "spec", "m",
     "f.yaml:1:1: warning: Host: spec: m"},
    {AEGIS_SEV_ERROR, NULL, 0, 0, NULL, NULL, NULL, NULL, "", ""},
};

static void test_format(void)
{
    size_t i;

    for (i = 0; i < sizeof(format_cases) / sizeof(format_cases[0]); i++) {
        struct aegis_diags d;
        struct aegis_diag_loc loc = {
            .file = format_cases[i].file,
            .mark = {format_cases[i].line, format_cases[i].col},
            .kind = format_cases[i].kind,
            .ns = format_cases[i].ns,
            .name = format_cases[i].name,
            .path = format_cases[i].path,
        };
        char buf[512];
        size_t n;

        aegis_diags_init(&d);
        aegis_diags_add(&d, format_cases[i].sev, &loc, "%s", format_cases[i].msg);
        n = aegis_diag_format(&d.v[0], buf, sizeof(buf));
        CHECK_STR(buf, format_cases[i].want, format_cases[i].want);
        CHECK_INT(n, strlen(format_cases[i].want), "format returns the length");
        aegis_diags_dispose(&d);
    }
}

static void test_format_truncated(void)
{
    struct aegis_diags d;
    struct aegis_diag_loc loc = {.file = "file.yaml", .mark = {12, 3}, .path = "spec"};
    const char *want = "file.yaml:12:3: spec: value 42 is wrong";
    char small[10], big[128];
    size_t n;

    aegis_diags_init(&d);
    aegis_diags_add(&d, AEGIS_SEV_ERROR, &loc, "value %d is %s", 42, "wrong");
    n = aegis_diag_format(&d.v[0], small, sizeof(small));
    CHECK_INT(n, strlen(want), "a short buffer still gets the needed length");
    CHECK(memcmp(small, want, sizeof(small) - 1) == 0 && small[sizeof(small) - 1] == '\0',
          "a short buffer holds the NUL-terminated prefix");
    CHECK_INT(aegis_diag_format(&d.v[0], NULL, 0), strlen(want), "a NULL buffer measures");
    n = aegis_diag_format(&d.v[0], big, sizeof(big));
    CHECK_STR(big, want, "the full text");
    CHECK_INT(n, strlen(want), "and its length");
    aegis_diags_dispose(&d);
}

static void test_copies(void)
{
    struct aegis_diags d;
    char file[] = "x.yaml", kind[] = "Host", path[] = "spec.a";
    struct aegis_diag_loc loc = {.file = file, .mark = {1, 2}, .kind = kind, .path = path};
    char buf[128];

    aegis_diags_init(&d);
    aegis_diags_add(&d, AEGIS_SEV_ERROR, &loc, "m");
    /* The strings are borrowed only for the call: changing them must not change the entry. */
    file[0] = 'y';
    kind[0] = 'X';
    path[0] = 'Z';
    aegis_diag_format(&d.v[0], buf, sizeof(buf));
    CHECK_STR(buf, "x.yaml:1:2: Host: spec.a: m", "add copies every string");
    aegis_diags_add(&d, AEGIS_SEV_WARNING, NULL, "no location %s", "at all");
    aegis_diag_format(&d.v[1], buf, sizeof(buf));
    CHECK_STR(buf, "warning: no location at all", "loc may be NULL");
    CHECK_INT(d.nerrors, 1, "one error");
    CHECK_INT(d.nwarnings, 1, "one warning");
    aegis_diags_dispose(&d);
    CHECK(d.v == NULL && d.n == 0, "dispose empties the list");
    aegis_diags_dispose(&d);
    aegis_diags_dispose(NULL);
    CHECK(1, "dispose twice and dispose(NULL) are harmless");
}

static void test_sort(void)
{
    static const struct {
        const char *file;
        unsigned line, col;
        const char *msg;
    } in[] = {
        {"b.yaml", 2, 1, "b2"},          {"a.yaml", 9, 1, "a9"},         {NULL, 0, 0, "none1"},
        {"a.yaml", 2, 5, "a2:5"},        {"a.yaml", 2, 1, "a2:1-first"}, {"b.yaml", 1, 1, "b1"},
        {"a.yaml", 2, 1, "a2:1-second"}, {NULL, 0, 0, "none2"},          {"a.yaml", 10, 1, "a10"},
        {"a.yaml", 2, 1, "a2:1-third"},
    };
    static const char *const want[] = {
        "none1", "none2", "a2:1-first", "a2:1-second", "a2:1-third",
        "a2:5",  "a9",    "a10",        "b1",          "b2",
    };
    struct aegis_diags d;
    size_t i;
    int ok = 1;

    aegis_diags_init(&d);
    for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        struct aegis_diag_loc loc = {.file = in[i].file, .mark = {in[i].line, in[i].col}};

        aegis_diags_add(&d, i % 2 ? AEGIS_SEV_WARNING : AEGIS_SEV_ERROR, &loc, "%s", in[i].msg);
    }
    aegis_diags_sort(&d);
    CHECK_INT(d.n, sizeof(want) / sizeof(want[0]), "sort keeps every entry");
    for (i = 0; i < d.n; i++) {
        if (strcmp(d.v[i].msg, want[i]) != 0) {
            printf("#   position %zu: got %s, want %s\n", i, d.v[i].msg, want[i]);
            ok = 0;
        }
    }
    CHECK(ok, "sort orders by file, line and column, keeping the order at one place");
    aegis_diags_dispose(&d);

    /* A larger list exercises every merge width; equal places must keep their order. */
    aegis_diags_init(&d);
    for (i = 0; i < 1000; i++) {
        struct aegis_diag_loc loc = {.file = "f", .mark = {(unsigned)(997 * i % 7), 1}};

        aegis_diags_add(&d, AEGIS_SEV_ERROR, &loc, "%zu", i);
    }
    aegis_diags_sort(&d);
    ok = 1;
    for (i = 1; i < d.n; i++) {
        if (d.v[i - 1].mark.line > d.v[i].mark.line ||
            (d.v[i - 1].mark.line == d.v[i].mark.line &&
             strtoul(d.v[i - 1].msg, NULL, 10) > strtoul(d.v[i].msg, NULL, 10)))
            ok = 0;
    }
    CHECK(ok, "sort of 1000 entries is ordered and stable");
    aegis_diags_sort(&d);
    aegis_diags_dispose(&d);
}

static void test_limit(void)
{
    struct aegis_diags d;
    size_t i;

    aegis_diags_init(&d);
    for (i = 0; i < AEGIS_LIMIT_DIAGS + 7; i++)
        aegis_diags_add(&d, i % 3 == 0 ? AEGIS_SEV_WARNING : AEGIS_SEV_ERROR, NULL, "d%zu", i);
    CHECK_INT(d.n, AEGIS_LIMIT_DIAGS, "the list stops at the limit");
    CHECK_INT(d.dropped, 7, "what is past the limit is counted as dropped");
    CHECK_INT(d.nerrors + d.nwarnings, AEGIS_LIMIT_DIAGS + 7, "the counts include the dropped");
    CHECK_INT(d.nwarnings, (AEGIS_LIMIT_DIAGS + 7 + 2) / 3, "warnings are counted apart");
    CHECK_STR(d.v[d.n - 1].msg, "d9999", "the first ones are kept");
    aegis_diags_dispose(&d);
}

static void test_err(void)
{
    struct aegis_err e;
    char where[600];

    CHECK_STR(aegis_strerror(-AEGIS_E_INVALID), "invalid input", "project code text");
    CHECK_STR(aegis_strerror(-AEGIS_E_STATE), "operation not valid in this state", "last code");
    CHECK_STR(aegis_strerror(AEGIS_E_LIMIT), "input exceeds a limit", "positive form");
    CHECK_STR(aegis_strerror(-ENOENT), strerror(ENOENT), "-errno passes to strerror");
    CHECK_STR(aegis_strerror(0), "success", "zero");
    CHECK(aegis_strerror(-AEGIS_E_BASE + 1) != NULL, "a code just below the range has text");
    CHECK(aegis_strerror(-AEGIS_E_LAST_) != NULL, "a code past the range has text");

    CHECK_INT(aegis_err_set(NULL, -AEGIS_E_SYNTAX, "x", "y"), -AEGIS_E_SYNTAX, "NULL err");
    CHECK_INT(aegis_err_set(&e, -EIO, NULL, "read %s: %d", "f", 3), -EIO, "returns the code");
    CHECK_INT(e.code, -EIO, "records the code");
    CHECK_STR(e.where, "", "NULL where is empty");
    CHECK_STR(e.msg, "read f: 3", "formats the message");
    memset(where, 'w', sizeof(where) - 1);
    where[sizeof(where) - 1] = '\0';
    aegis_err_set(&e, -AEGIS_E_INVALID, where, "%s", where);
    CHECK_INT(strlen(e.where), AEGIS_ERR_WHERE_MAX - 1, "where is cut to its buffer");
    CHECK_INT(strlen(e.msg),
              sizeof(where) - 1 < AEGIS_ERR_MSG_MAX ? sizeof(where) - 1 : AEGIS_ERR_MSG_MAX - 1,
              "msg is cut to its buffer");
}

static void test_alloc(void)
{
    int *v = NULL;
    size_t cap = 0, i;
    char *s;

    for (i = 0; i < 100; i++) {
        aegis_grow((void **)&v, &cap, i + 1, sizeof(*v));
        v[i] = (int)i;
    }
    CHECK(cap >= 100 && v[99] == 99, "grow keeps the elements");
    free(v);
    s = aegis_asprintf("%s-%d", "a", 7);
    CHECK_STR(s, "a-7", "asprintf");
    free(s);
    s = aegis_strndup("abcdef", 3);
    CHECK_STR(s, "abc", "strndup cuts at n");
    free(s);
    s = aegis_strndup("ab\0cd", 5);
    CHECK_STR(s, "ab", "strndup stops at a NUL");
    free(s);
    s = aegis_malloc(0);
    CHECK(s != NULL, "malloc(0) returns a pointer");
    free(s);
}

int main(void)
{
    test_format();
    test_format_truncated();
    test_copies();
    test_sort();
    test_limit();
    test_err();
    test_alloc();
    return check_done();
}
