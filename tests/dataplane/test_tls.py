#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# aegis-dataplane over real TLS with real clients (curl, openssl s_client): certificates made with
# the openssl CLI (a throwaway CA, leaves for a.test+b.test, *.wild.test and s.test, a self-signed
# fallback), a rendered configuration written here, the dataplane started on free ports of
# 127.0.0.1 and ::1, and an upstream served by this script (http.server in a thread) that echoes
# what it receives. Checked: the certificate chosen by SNI (exact, wildcard, stored, fallback),
# the per-host minimum version, ALPN, the HTTPS redirect, HSTS, the ACME HTTP-01 responder, 421 on
# Host/SNI mismatch, client-certificate authentication, session resumption bound to the SNI
# (TLS 1.2 and 1.3), proxying with X-Forwarded-*, IPv6, a refused configuration, a second
# dataplane on the same ports, an unknown name without fallback (logged once), and the graceful
# stop with a request in flight.
#
# Environment: AEGIS_DATAPLANE (default: build/aegis-dataplane). Output is TAP-like and ends with
# "N passed, N failed"; the exit status is 1 on any failure. Every process started here is killed
# on the way out, whatever happens.

import json
import os
import signal
import socket
import sys
import threading
import time

from dptest import (DATAPLANE, curl, free_port, make_certs, no_sanitizer_report, path, read,
                    result, run, s_client, sanitizer_env, served_cert, session, start_dataplane,
                    start_upstream, stop, summary)

TOKEN = "Xy-_token0123"
KEY_AUTH = TOKEN + ".thumbprint_AbC-09"


def config(http_port, https_port, upstream, fallback=True):
    up = [{"url": f"http://127.0.0.1:{upstream}"}]
    a_tls = {"certificatePEM": read("a.pem"), "privateKeyPEM": read("a.key")}
    cfg = {
        "version": 1, "generation": 42,
        "listeners": {"http": [f"127.0.0.1:{http_port}", f"[::1]:{http_port}"],
                      "https": [f"127.0.0.1:{https_port}", f"[::1]:{https_port}"]},
        "hosts": [
            {"name": "default/a", "hostnames": ["a.test"], "tls": a_tls,
             "hsts": {"maxAge": 600, "includeSubdomains": True}, "upstreams": up},
            {"name": "default/b", "hostnames": ["b.test"], "tls": dict(a_tls), "upstreams": up},
            {"name": "default/wild", "hostnames": ["*.wild.test"],
             "tls": {"certificatePEM": read("wild.pem"), "privateKeyPEM": read("wild.key"),
                     "minVersion": "1.3"},
             "upstreams": up},
            {"name": "default/s", "hostnames": ["s.test"], "tls": {}, "upstreams": up},
            {"name": "default/c", "hostnames": ["c.test"], "tls": {}, "upstreams": up},
            {"name": "default/plain", "hostnames": ["plain.test"], "upstreams": up},
            {"name": "default/mtls", "hostnames": ["m.test"],
             "tls": {"clientAuth": {"mode": "require", "caPEM": read("ca.pem")}},
             "upstreams": up},
        ],
        "certificates": [{"name": "default/stored", "certificatePEM": read("stored.pem"),
                          "privateKeyPEM": read("stored.key")}],
        "acmeChallenges": [{"token": TOKEN, "keyAuthorization": KEY_AUTH}],
    }
    if fallback:
        cfg["fallback"] = {"certificatePEM": read("fb.pem"), "privateKeyPEM": read("fb.key")}
    return cfg


# ---- the checks ----------------------------------------------------------------------------------

def check_certificates(hs):
    for sni, want, what in (("a.test", "CN = a.test", "exact SNI serves the host's certificate"),
                            ("x.wild.test", "CN = *.wild.test", "wildcard SNI"),
                            ("s.test", "CN = s.test", "stored certificate matched by SAN"),
                            ("c.test", "CN = Aegis fallback", "host without a certificate: fallback"),
                            ("nobody.test", "CN = Aegis fallback", "unknown SNI: fallback")):
        text, raw = served_cert(hs, sni)
        result(text is not None and want in text, f"{what} ({sni})", [text or raw])
    text, raw = served_cert(hs, None)
    result(text is not None and "Aegis fallback" in text, "no SNI: fallback", [text or raw])
    text, raw = served_cert(hs, "a.test")
    result(text is not None and "DNS:a.test" in text, "SAN of the served certificate", [text])


def check_versions(hs):
    rc, out, err = s_client(hs, "x.wild.test", "-tls1_2")
    result(rc != 0 and "Cipher is (NONE)" in out, "1.3-only host refuses a TLS 1.2 client",
           [out, err])
    rc, out, err = s_client(hs, "x.wild.test", "-tls1_3")
    result(rc == 0 and "TLSv1.3" in out, "1.3-only host accepts TLS 1.3", [out, err])
    rc, out, err = s_client(hs, "a.test", "-tls1_2")
    result(rc == 0 and "TLSv1.2" in out, "default host accepts TLS 1.2", [out, err])
    rc, out, err = s_client(hs, "a.test", "-tls1_1")
    result(rc != 0, "TLS 1.1 is refused", [out])
    rc, out, err = s_client(hs, "a.test", "-alpn", "h2,http/1.1")
    result("ALPN protocol: h2" in out, "ALPN negotiates h2", [out])
    rc, out, err = s_client(hs, "a.test", "-alpn", "http/1.1")
    result("ALPN protocol: http/1.1" in out, "ALPN http/1.1", [out])


def check_http(hp, hs):
    res = [("a.test", hs, "127.0.0.1"), ("a.test", hp, "127.0.0.1"),
           ("b.test", hs, "127.0.0.1"), ("x.wild.test", hs, "127.0.0.1"),
           ("plain.test", hp, "127.0.0.1")]
    for flag, want in (("--http2", "2"), ("--http1.1", "1.1")):
        st, ver, hdr, body, err = curl(f"https://a.test:{hs}/hello?q=1", flag, resolve=res)
        echo = json.loads(body) if st == 200 else {}
        result(st == 200 and ver == want and echo.get("path") == "/hello?q=1",
               f"proxied to the upstream over HTTP/{want}", [st, ver, body, err])
        h = echo.get("headers", {})
        result(h.get("x-forwarded-proto") == "https" and "127.0.0.1" in
               h.get("x-forwarded-for", ""), f"X-Forwarded-For and -Proto (HTTP/{want})", [h])
        result(hdr.get("strict-transport-security") == "max-age=600; includeSubDomains",
               f"HSTS header (HTTP/{want})", [hdr])

    st, ver, hdr, body, err = curl(f"http://a.test:{hp}/p/a%20th?x=1&y=two", resolve=res)
    result(st == 301 and hdr.get("location") == f"https://a.test:{hs}/p/a%20th?x=1&y=two",
           "forceHTTPS: 301 keeps path and query", [st, hdr, err])
    result("strict-transport-security" not in hdr, "no HSTS over plain HTTP", [hdr])
    st, ver, hdr, body, err = curl(f"http://a.test:{hp}/.well-known/acme-challenge/{TOKEN}",
                                   resolve=res)
    result(st == 200 and body == KEY_AUTH and hdr.get("content-type", "").startswith("text/plain"),
           "HTTP-01 token answered, not redirected", [st, hdr, body])
    st, *_ = curl(f"http://unknown.test:{hp}/.well-known/acme-challenge/{TOKEN}",
                  resolve=[("unknown.test", hp, "127.0.0.1")])
    result(st == 200, "HTTP-01 answered for a name without a host", [st])
    st, ver, hdr, body, err = curl(f"http://a.test:{hp}/.well-known/acme-challenge/nope",
                                   resolve=res)
    result(st == 404, "unknown HTTP-01 token: 404", [st, body])
    st, ver, hdr, body, err = curl(f"http://plain.test:{hp}/x", resolve=res)
    result(st == 200 and json.loads(body)["headers"].get("x-forwarded-proto") == "http",
           "host without TLS is proxied over HTTP", [st, body])
    st, *_ = curl(f"http://nowhere.test:{hp}/", resolve=[("nowhere.test", hp, "127.0.0.1")])
    result(st == 404, "unknown Host: 404", [st])

    for flag in ("--http2", "--http1.1"):
        st, ver, hdr, body, err = curl(f"https://x.wild.test:{hs}/", flag, "-H", "Host: a.test",
                                       resolve=res)
        result(st == 421, f"Host differs from SNI: 421 ({flag})", [st, ver, body, err])
    st, ver, hdr, body, err = curl(f"https://a.test:{hs}/", "-H", "Host: b.test", resolve=res)
    result(st == 200, "hosts sharing the certificate and policy: no 421", [st, body, err])
    st, ver, hdr, body, err = curl(f"https://c.test:{hs}/", "-k", "-H", "Host: x.wild.test",
                                   resolve=[("c.test", hs, "127.0.0.1")])
    result(st == 421, "fallback connection, Host of a host with its own certificate: 421",
           [st, body])

    st, ver, hdr, body, err = curl(f"https://a.test:{hs}/v6", resolve=[("a.test", hs, "::1")])
    result(st == 200, "HTTPS over IPv6", [st, err])
    st, ver, hdr, body, err = curl(f"http://plain.test:{hp}/v6",
                                   resolve=[("plain.test", hp, "::1")])
    result(st == 200, "HTTP over IPv6", [st, err])


def check_client_auth(hs):
    res = [("m.test", hs, "127.0.0.1")]
    st, ver, hdr, body, err = curl(f"https://m.test:{hs}/", "-k", resolve=res)
    result(st == 0, "client auth required: refused without a certificate", [st, err])
    st, ver, hdr, body, err = curl(f"https://m.test:{hs}/", "-k", "--cert", path("client.pem"),
                                   "--key", path("client.key"), resolve=res)
    result(st == 200, "client auth required: served with a certificate", [st, err])
    st, ver, hdr, body, err = curl(f"https://c.test:{hs}/", "-k", "-H", "Host: m.test",
                                   resolve=[("c.test", hs, "127.0.0.1")])
    result(st == 421, "same fallback certificate, different client-auth policy: 421", [st, body])


def check_resumption(hs):
    for version in ("-tls1_2", "-tls1_3"):
        sess = path("sess" + version)
        first, out1 = session(hs, "a.test", version, sess_out=sess)
        again, out2 = session(hs, "a.test", version, sess_in=sess)
        other, out3 = session(hs, "c.test", version, sess_in=sess)
        result(first == "New" and again == "Reused",
               f"session resumed for the same SNI ({version})", [first, again, out2])
        result(other == "New", f"session not resumed under another SNI ({version})", [other, out3])
        shared, out4 = session(hs, "b.test", version, sess_in=sess)
        result(shared == "New", f"not even for a host with the same certificate ({version})",
               [shared, out4])


def check_bad_config():
    bad = {"version": 1, "generation": 1,
           "listeners": {"https": ["127.0.0.1:1"]},
           "hosts": [{"name": "x", "hostnames": ["a.test"], "upstreams": [{"url": "nope"}],
                      "tls": {"certificatePEM": read("a.pem"), "privateKeyPEM": read("fb.key")}},
                     {"name": "y", "hostnames": ["a.test"], "upstreams": [{"url": "http://u"}]}]}
    with open(path("bad.json"), "w") as f:
        json.dump(bad, f)
    r = run([DATAPLANE, "--config", path("bad.json")])
    err = r.stderr.decode()
    result(r.returncode == 1, "bad configuration: exit status 1", [r.returncode, err])
    for want in ("hosts[0].upstreams[0].url:", "hosts[0].tls.privateKeyPEM:",
                 "hosts[1].hostnames[0]:", "3 error(s); configuration refused"):
        result(want in err, f"bad configuration: error list names {want}", [err])
    r = run([DATAPLANE, "--config", path("missing.json")])
    result(r.returncode == 1, "missing configuration file: exit status 1", [r.stderr])


def check_no_fallback(upstream):
    hp, hs = free_port(), free_port()
    p, err = start_dataplane(config(hp, hs, upstream, fallback=False), "nofb", [hp, hs])
    outs = [s_client(hs, "nobody.test") for _ in range(3)]
    result(all(rc != 0 and "Cipher is (NONE)" in out for rc, out, _ in outs),
           "unknown SNI without fallback: handshake fails", [outs[0][1]])
    rc, out, _ = s_client(hs, "a.test")
    result(rc == 0, "known SNI still served", [out])
    r = run([DATAPLANE, "--config", path("nofb.json")], env=sanitizer_env())
    result(r.returncode == 1 and b"another dataplane" in r.stderr,
           "a second dataplane on the same addresses is refused", [r.returncode, r.stderr])
    rc, log = stop(p, err)
    result(log.count('no certificate for server name "nobody.test"') == 1,
           "unknown name logged once, not per connection", [log])
    result(rc == 0, "second instance stops with status 0", [rc, log])


def check_graceful_stop(p, err, hs):
    box = {}

    def slow():
        box["r"] = curl(f"https://a.test:{hs}/slow", resolve=[("a.test", hs, "127.0.0.1")])

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    try:
        socket.create_connection(("127.0.0.1", hs), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    t.join(timeout=15)
    rc, log = stop(p, err)
    st = box.get("r", (0,))[0]
    result(refused, "after SIGTERM no new connection is accepted")
    result(st == 200, "the request in flight at SIGTERM completes", [box.get("r"), log])
    result(rc == 0, "graceful stop: exit status 0", [rc, log])
    result(no_sanitizer_report(log), "no sanitizer report", [log])


def main():
    started = time.time()
    if not os.access(DATAPLANE, os.X_OK):
        sys.exit(f"{DATAPLANE} is not built")
    make_certs()
    upstream = start_upstream()
    hp, hs = free_port(), free_port()
    p, err = start_dataplane(config(hp, hs, upstream), "main", [hp, hs])
    check_certificates(hs)
    check_versions(hs)
    check_http(hp, hs)
    check_client_auth(hs)
    check_resumption(hs)
    check_bad_config()
    check_no_fallback(upstream)
    check_graceful_stop(p, err, hs)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
