#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Holds schemas/rendered-config.schema.json and the C validator (common/rconf.c, run through
# `aegis-dataplane --check`) to one answer: valid documents are accepted by both, documents broken
# in a way JSON Schema can express are refused by both, and documents only C can refuse (a key
# that does not match its certificate, a duplicate hostname, ...) are accepted by the schema -
# so that the "c-only" label stays honest.
#
# Environment: AEGIS_DATAPLANE (default: build/aegis-dataplane), AEGIS_SOURCE_DIR. Output is
# TAP-like and ends with "N passed, N failed"; the exit status is 1 on any failure.

import copy
import json
import os
import subprocess
import sys
import tempfile

import jsonschema

SRC = os.environ.get("AEGIS_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATAPLANE = os.environ.get("AEGIS_DATAPLANE", os.path.join(SRC, "build", "aegis-dataplane"))
CORPUS = os.path.join(SRC, "tests", "fuzz", "corpus", "rconf")

counts = {"n": 0, "failed": 0}


def result(ok, what, notes=()):
    counts["n"] += 1
    if not ok:
        counts["failed"] += 1
    print(f"{'ok' if ok else 'not ok'} {counts['n']} - {what}")
    if not ok:
        for note in notes:
            for line in str(note).splitlines()[:20]:
                print(f"#   {line}")


def c_accepts(doc, tmp):
    with open(tmp, "w") as f:
        json.dump(doc, f)
    r = subprocess.run([DATAPLANE, "--check", "--config", tmp], capture_output=True, timeout=30)
    return r.returncode == 0, r.stderr.decode(errors="replace")


def mutations(base):
    """(what, mutate(doc), schema verdict, C verdict) for one-field changes of base."""
    h = "hosts"
    return [
        ("version 2", lambda d: d.update(version=2), False, False),
        ("negative generation", lambda d: d.update(generation=-1), False, False),
        ("unknown top-level field", lambda d: d.update(hostz=[]), False, False),
        ("no listeners at all", lambda d: d.update(listeners={}), True, False),
        ("listener without port", lambda d: d["listeners"].update(http=["127.0.0.1"]), False,
         False),
        ("listener with port 0", lambda d: d["listeners"].update(http=["127.0.0.1:0"]), False,
         False),
        ("listener 300.1.1.1", lambda d: d["listeners"].update(http=["300.1.1.1:80"]), True,
         False),
        ("workers 999", lambda d: d.update(workers=999), False, False),
        ("host without upstreams", lambda d: d[h][0].pop("upstreams"), False, False),
        ("empty upstreams", lambda d: d[h][0].update(upstreams=[]), False, False),
        ("ftp upstream", lambda d: d[h][0].update(upstreams=[{"url": "ftp://x"}]), False, False),
        ("weight 0", lambda d: d[h][0]["upstreams"][0].update(weight=0), False, False),
        ("bad hostname", lambda d: d[h][0].update(hostnames=["a..b"]), False, False),
        ("hostname served twice", lambda d: d[h].append(
            dict(copy.deepcopy(d[h][0]), name="other")), True, False),
        ("minVersion 1.1", lambda d: d[h][0].update(tls={"minVersion": "1.1"}), False, False),
        ("certificate without key", lambda d: d[h][0].update(
            tls={"certificatePEM": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----"}),
         False, False),
        ("clientAuth require without caPEM", lambda d: d[h][0].update(
            tls={"clientAuth": {"mode": "require"}}), False, False),
        ("forceHTTPS without tls", lambda d: d[h][0].update(forceHTTPS=True), True, False),
        ("hsts maxAge as a string", lambda d: d[h][0].update(hsts={"maxAge": "1"}), False, False),
        ("health check path without /", lambda d: d[h][0].update(healthCheck={"path": "x"}),
         False, False),
        ("readMs 0", lambda d: d[h][0].update(timeouts={"readMs": 0}), False, False),
        ("websocket as a number", lambda d: d[h][0].update(websocket=1), False, False),
        ("insecureSkipVerify with caPEM", lambda d: d[h][0].update(upstreamTLS={
            "insecureSkipVerify": True,
            "caPEM": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----"}), False, False),
        ("serverName with a space", lambda d: d[h][0].update(
            upstreamTLS={"serverName": "a b"}), False, False),
        ("token with a slash", lambda d: d.update(
            acmeChallenges=[{"token": "a/b", "keyAuthorization": "a/b.c"}]), False, False),
        ("keyAuthorization of another token", lambda d: d.update(
            acmeChallenges=[{"token": "ab", "keyAuthorization": "cd.e"}]), True, False),
        ("valid challenge", lambda d: d.update(
            acmeChallenges=[{"token": "ab", "keyAuthorization": "ab.e"}]), True, True),
        ("valid hsts and timeouts", lambda d: d[h][0].update(
            hsts={"maxAge": 60, "preload": False}, timeouts={"connectMs": 10}), True, True),
        ("redirectPort", lambda d: d.update(redirectPort=8443), True, True),
    ]


def main():
    with open(os.path.join(SRC, "schemas", "rendered-config.schema.json")) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    if not os.access(DATAPLANE, os.X_OK):
        print(f"Bail out! {DATAPLANE} is not built")
        return 1
    with tempfile.TemporaryDirectory(prefix="aegis-rconf-schema.") as tmpdir:
        tmp = os.path.join(tmpdir, "doc.json")
        seeds = {"minimal.json": True, "test-only-full.json": True, "errors.json": False,
                 "mismatch.json": None}  # None: c-only (the key is another certificate's)
        for name, want in sorted(seeds.items()):
            with open(os.path.join(CORPUS, name)) as f:
                doc = json.load(f)
            schema_ok = validator.is_valid(doc)
            c_ok, err = c_accepts(doc, tmp)
            if want is None:
                result(schema_ok and not c_ok, f"{name}: schema accepts, C refuses (c-only)",
                       [err])
            else:
                result(schema_ok == want and c_ok == want,
                       f"{name}: {'accepted' if want else 'refused'} by both",
                       [f"schema {schema_ok}, C {c_ok}", err])
        with open(os.path.join(CORPUS, "minimal.json")) as f:
            base = json.load(f)
        for what, mutate, want_schema, want_c in mutations(base):
            doc = copy.deepcopy(base)
            mutate(doc)
            schema_ok = validator.is_valid(doc)
            c_ok, err = c_accepts(doc, tmp)
            label = ("accepted by both" if want_c else
                     "refused by both" if not want_schema else "schema accepts, C refuses (c-only)")
            result(schema_ok == want_schema and c_ok == want_c, f"{what}: {label}",
                   [f"schema {schema_ok}, C {c_ok}", err])
    print(f"{counts['n'] - counts['failed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
