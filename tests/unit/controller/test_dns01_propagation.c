/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for controller/issuer/dns01_propagation.c: DNS answers built here in wire format
 * (RFC 1035) - a TXT record that matches, one split over two character-strings, another value,
 * another type, a malformed message, a truncated one - and the nameservers check (IPv4
 * ADDR:PORT only, at most three). The live query runs against pebble-challtestsrv in
 * tests/controller/test_acme.py.
 */
#include <string.h>

#include "check.h"
#include "issuer/dns01_propagation.h"

struct msg {
    unsigned char b[512];
    size_t n;
};

static void put(struct msg *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put16(struct msg *m, unsigned v)
{
    unsigned char x[2] = {(unsigned char)(v >> 8), (unsigned char)v};

    put(m, x, 2);
}

/* "_acme-challenge.a.test." as labels. */
static void put_name(struct msg *m)
{
    static const unsigned char name[] = "\x0f_acme-challenge\x01"
                                        "a\x04test";

    put(m, name, sizeof(name)); /* the array's NUL is the root label */
}

/* A response with one question and answers of type[i] holding the strings strs[i] (TXT:
 * character-strings separated by '|'). */
static void build(struct msg *m, size_t n, const unsigned *types, const char *const *strs)
{
    memset(m, 0, sizeof(*m));
    put16(m, 0x1234);
    put16(m, 0x8180); /* response, RD, RA, NOERROR */
    put16(m, 1);
    put16(m, (unsigned)n);
    put16(m, 0);
    put16(m, 0);
    put_name(m);
    put16(m, 16);
    put16(m, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char rd[300];
        size_t rl = 0;
        const char *s = strs[i];

        put16(m, 0xc00c); /* a pointer to the question's name */
        put16(m, types[i]);
        put16(m, 1);
        put16(m, 0);
        put16(m, 60);
        while (*s != '\0') {
            const char *bar = strchr(s, '|');
            size_t l = bar != NULL ? (size_t)(bar - s) : strlen(s);

            rd[rl++] = (unsigned char)l;
            memcpy(rd + rl, s, l);
            rl += l;
            s += l + (bar != NULL);
        }
        put16(m, (unsigned)rl);
        put(m, rd, rl);
    }
}

static void test_answers(void)
{
    static const char value[] = "LPsIwTo7o8BoG0-vjCyGQGBWSVIPxI-i_X336eUOQZo";
    struct msg m;

    {
        unsigned t[] = {16};
        const char *s[] = {value};

        build(&m, 1, t, s);
        CHECK(dns01_answer_has_txt(m.b, m.n, value), "the TXT record with the value: visible");
        CHECK(!dns01_answer_has_txt(m.b, m.n, "other"), "another value asked: not visible");
        CHECK(!dns01_answer_has_txt(m.b, m.n - 5, value), "a truncated message: not visible");
        CHECK(!dns01_answer_has_txt(m.b, 7, value), "a message cut in the header: not visible");
    }
    {
        unsigned t[] = {16, 16};
        const char *s[] = {"stale-value-of-an-earlier-order", "LPsIwTo7o8BoG0-vjCyGQGBW|SVIPxI-"
                                                              "i_X336eUOQZo"};

        build(&m, 2, t, s);
        CHECK(dns01_answer_has_txt(m.b, m.n, value),
              "two TXT records, the value split over two character-strings: visible");
    }
    {
        unsigned t[] = {1};
        const char *s[] = {value};

        build(&m, 1, t, s);
        CHECK(!dns01_answer_has_txt(m.b, m.n, value), "an A record with those bytes: not visible");
    }
    build(&m, 0, NULL, NULL);
    CHECK(!dns01_answer_has_txt(m.b, m.n, value), "no answers (NODATA): not visible");
}

static void test_nameservers(void)
{
    static const struct {
        const char *v[4];
        size_t n;
        int ok;
    } cases[] = {
        {{NULL}, 0, 1},
        {{"127.0.0.1:53"}, 1, 1},
        {{"10.0.0.1:53", "10.0.0.2:5353", "10.0.0.3:53"}, 3, 1},
        {{"10.0.0.1:53", "10.0.0.2:53", "10.0.0.3:53", "10.0.0.4:53"}, 4, 0},
        {{"127.0.0.1"}, 1, 0},
        {{"ns.example.com:53"}, 1, 0},
        {{"[::1]:53"}, 1, 0},
        {{"127.0.0.1:0"}, 1, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct aegis_acme_solver_dns01 spec;
        struct aegis_err err = {0};
        char what[160];

        memset(&spec, 0, sizeof(spec));
        spec.nameservers.v = (char **)cases[i].v;
        spec.nameservers.n = cases[i].n;
        snprintf(what, sizeof(what), "nameservers [%s%s] (%zu): %s",
                 cases[i].v[0] ? cases[i].v[0] : "", cases[i].n > 1 ? ", ..." : "", cases[i].n,
                 cases[i].ok ? "accepted" : "refused");
        CHECK((dns01_nameservers_check(&spec, &err) == 0) == (cases[i].ok != 0), what);
    }
}

int main(void)
{
    test_answers();
    test_nameservers();
    return check_done();
}
