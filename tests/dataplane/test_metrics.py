#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# aegis-dataplane's metrics listener and access log with real clients: the dataplane runs with
# --metrics-listen and --access-log, curl makes requests over HTTP/1.1 and HTTP/2 on TLS and over
# plain HTTP, openssl s_client and curl make handshakes fail (an unknown name without fallback, a
# TLS 1.2 client against a 1.3-only host, a missing client certificate, a client that distrusts
# the certificate). Checked: `promtool check metrics` passes on the scrape; requests_total by host
# and status class; the histogram's count equals the requests and a slow request lands in its
# bucket; handshakes and failures by reason; the generation, host count and certificate not-after
# values; the content type and 404 of the listener, IPv6; every access-log line parses in the
# documented logfmt with the documented fields; and no private key or query string reaches either.
#
# Environment: AEGIS_DATAPLANE (default: build/aegis-dataplane). Output is TAP-like.

import calendar
import os
import socket
import ssl
import sys
import time

from dptest import (DATAPLANE, curl, free_port, make_certs, metric, no_sanitizer_report,
                    parse_logfmt, parse_metrics, path, read, result, run, s_client, scrape,
                    start_dataplane, start_upstream, stop, summary)

GENERATION = 42
SECRET = "s3cr3t-query-token"
LOG_FIELDS = ["ts", "host", "authority", "client", "method", "path", "proto", "status", "bytes",
              "dur_ms", "tls", "sni", "upstream"]


def config(hp, hs, upstream):
    up = [{"url": f"http://127.0.0.1:{upstream}"}]
    return {
        "version": 1, "generation": GENERATION,
        "listeners": {"http": [f"127.0.0.1:{hp}"], "https": [f"127.0.0.1:{hs}"]},
        "hosts": [
            {"name": "default/a", "hostnames": ["a.test"],
             "tls": {"certificatePEM": read("a.pem"), "privateKeyPEM": read("a.key")},
             "upstreams": up},
            {"name": "default/wild", "hostnames": ["*.wild.test"],
             "tls": {"certificatePEM": read("wild.pem"), "privateKeyPEM": read("wild.key"),
                     "minVersion": "1.3"},
             "upstreams": up},
            {"name": "default/s", "hostnames": ["s.test"], "tls": {}, "upstreams": up},
            {"name": "default/m", "hostnames": ["m.test"],
             "tls": {"certificatePEM": read("a.pem"), "privateKeyPEM": read("a.key"),
                     "clientAuth": {"mode": "require", "caPEM": read("ca.pem")}},
             "upstreams": up},
            {"name": "default/plain", "hostnames": ["plain.test"], "upstreams": up},
        ],
        "certificates": [{"name": "default/stored", "certificatePEM": read("stored.pem"),
                          "privateKeyPEM": read("stored.key")}],
    }


def not_after(name):
    r = run(["openssl", "x509", "-noout", "-enddate", "-in", path(name + ".pem")])
    text = r.stdout.decode().strip().split("=", 1)[1]
    return calendar.timegm(time.strptime(text, "%b %d %H:%M:%S %Y %Z"))


def raw_https(port, sni, request):
    """Sends request bytes over TLS and returns the status line (the path may hold bytes curl
    would not send)."""
    ctx = ssl.create_default_context(cafile=path("ca.pem"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            t.sendall(request)
            data = b""
            while b"\r\n" not in data:
                chunk = t.recv(4096)
                if not chunk:
                    break
                data += chunk
    return data.split(b"\r\n", 1)[0].decode(errors="replace")


def make_traffic(hp, hs):
    """The requests and handshakes the checks count; returns the expected figures."""
    res = [("a.test", hs, "127.0.0.1"), ("x.wild.test", hs, "127.0.0.1"),
           ("plain.test", hp, "127.0.0.1"), ("zzz.test", hp, "127.0.0.1"),
           ("m.test", hs, "127.0.0.1"), ("s.test", hs, "127.0.0.1")]
    statuses = []
    for _ in range(3):
        statuses.append(curl(f"https://a.test:{hs}/one", "--http1.1", resolve=res)[:2])
    statuses.append(curl(f"https://a.test:{hs}/q?token={SECRET}", "--http2", resolve=res)[:2])
    statuses.append(curl(f"https://a.test:{hs}/slow", "--http2", resolve=res)[:2])
    statuses.append(curl(f"https://x.wild.test:{hs}/w", "--http2", resolve=res)[:2])
    statuses.append(curl(f"https://a.test:{hs}/", "-H", "Host: zzz.test", resolve=res)[:2])
    statuses.append(curl(f"http://plain.test:{hp}/p", resolve=res)[:2])
    statuses.append(curl(f"http://zzz.test:{hp}/", resolve=res)[:2])
    status_line = raw_https(hs, "a.test", b'GET /odd"q\\\xc3\xa9 HTTP/1.1\r\nHost: a.test\r\n'
                                          b'Connection: close\r\n\r\n')
    want = [(200, "1.1")] * 3 + [(200, "2")] * 3 + [(404, "2"), (200, "1.1"), (404, "1.1")]
    ok = statuses == want and " 200 " in status_line
    result(ok, "the requests were answered as expected", [statuses, status_line])

    # Failing handshakes, one of each reason.
    rc1, out1, _ = s_client(hs, "nobody.test")
    rc2, out2, _ = s_client(hs, "x.wild.test", "-tls1_2")
    st3 = curl(f"https://m.test:{hs}/", resolve=res)
    rc5, out5, _ = s_client(hs, "m.test", "-tls1_2")  # TLS 1.2 says handshake_failure
    st4 = run(["curl", "-sS", "--max-time", "10", "--resolve", f"a.test:{hs}:127.0.0.1",
               f"https://a.test:{hs}/"])  # the system store does not know the test CA
    result(rc1 != 0 and rc2 != 0 and st3[0] == 0 and st4.returncode != 0 and rc5 != 0,
           "the failing handshakes failed", [out1, out2, st3, st4.stderr, out5])
    return {
        "handshakes": 8,  # 7 curl over TLS + the raw request; scrapes are plain HTTP
        ("default/a", "2xx"): 6, ("default/wild", "2xx"): 1, ("default/plain", "2xx"): 1,
        ("", "4xx"): 2, "requests": 10,
    }


def check_metrics(mp, want, certs):
    status, ctype, text = scrape(mp)
    result(status == 200 and ctype.startswith("text/plain; version=0.0.4"),
           "GET /metrics: 200, text/plain; version=0.0.4", [status, ctype])
    with open(path("scrape.txt"), "w") as f:
        f.write(text)
    r = run(["promtool", "check", "metrics"], input=text.encode())
    result(r.returncode == 0, "promtool check metrics passes",
           [r.stdout.decode(), r.stderr.decode()])
    s = parse_metrics(text)
    for (host, code), n in ((k, v) for k, v in want.items() if isinstance(k, tuple)):
        got = metric(s, "aegis_dataplane_requests_total", host=host, code=code)
        result(got == n, f"requests_total{{host={host!r},code={code}}} == {n}", [got])
    total = sum(v for (name, _), v in s.items() if name == "aegis_dataplane_requests_total")
    count = metric(s, "aegis_dataplane_request_duration_seconds_count")
    result(total == want["requests"] and count == want["requests"],
           "histogram count equals the requests", [total, count])
    inf = metric(s, "aegis_dataplane_request_duration_seconds_bucket", le="+Inf")
    le1 = metric(s, "aegis_dataplane_request_duration_seconds_bucket", le="1")
    le25 = metric(s, "aegis_dataplane_request_duration_seconds_bucket", le="2.5")
    dsum = metric(s, "aegis_dataplane_request_duration_seconds_sum")
    result(inf == count and le25 - le1 == 1 and 1.5 <= dsum < 30,
           "the 1.5 s request is in the (1, 2.5] bucket; +Inf equals count; sum", [le1, le25, dsum])
    got = metric(s, "aegis_dataplane_tls_handshakes_total")
    result(got == want["handshakes"], f"tls_handshakes_total == {want['handshakes']} "
           "(once per handshake, TLS 1.3 included)", [got])
    # client_cert: TLS 1.3 certificate_required, and TLS 1.2 handshake_failure while reading
    # the client's Certificate message.
    for reason, n in (("unknown_name", 1), ("protocol", 1), ("client_cert", 2),
                      ("client_refused", 1)):
        got = metric(s, "aegis_dataplane_tls_handshake_failures_total", reason=reason)
        result(got == n, f"tls_handshake_failures_total{{reason={reason}}} == {n}", [got])
    got = metric(s, "aegis_dataplane_tls_handshake_failures_total", reason="other")
    result(got == 0, "no failure counted as other", [got])
    result(metric(s, "aegis_dataplane_config_generation") == GENERATION, "config_generation",
           [metric(s, "aegis_dataplane_config_generation")])
    swap = metric(s, "aegis_dataplane_config_last_swap_timestamp_seconds")
    result(abs(swap - time.time()) < 120, "last swap timestamp is the start", [swap])
    result(metric(s, "aegis_dataplane_config_hosts") == 5, "config_hosts == 5", [])
    for host, cert in certs.items():
        got = metric(s, "aegis_dataplane_certificate_not_after_timestamp_seconds", host=host)
        result(got == not_after(cert), f"certificate not-after of {host} ({cert}.pem)",
               [got, not_after(cert)])
    result(("aegis_dataplane_certificate_not_after_timestamp_seconds",
            (("host", "default/plain"),)) not in s, "no not-after for a host without TLS", [])
    result("aegis_dataplane_connections_active" in {n for n, _ in s},
           "connections_active is exposed", [])
    return text


def check_access_log(log_text, want):
    lines = log_text.splitlines()
    parsed = [parse_logfmt(line) for line in lines]
    bad = [line for line, p in zip(lines, parsed) if p is None or [k for k, _ in p] != LOG_FIELDS]
    result(len(lines) == want["requests"] and not bad,
           f"{want['requests']} access-log lines, each with the documented fields in order",
           [len(lines), *bad[:3], *lines[:2]])
    recs = [dict(p) for p in parsed if p]
    by_path = {r["path"]: r for r in recs}
    q = by_path.get("/q", {})
    result(q.get("host") == "default/a" and q.get("proto") == "HTTP/2" and
           q.get("status") == "200" and q.get("sni") == "a.test" and q.get("tls") == "TLSv1.3" and
           q.get("client") == "127.0.0.1" and q.get("method") == "GET" and
           q.get("authority", "").startswith("a.test") and int(q.get("bytes", 0)) > 0,
           "HTTP/2 request: host, proto, status, sni, tls, client, bytes", [q])
    result(all(r["ts"].endswith("Z") and len(r["ts"]) == 24 for r in recs),
           "ts is RFC 3339 UTC with milliseconds", [recs[0].get("ts") if recs else None])
    slow = by_path.get("/slow", {})
    result(float(slow.get("dur_ms", 0)) >= 1500, "dur_ms of the 1.5 s request", [slow])
    plain = by_path.get("/p", {})
    result(plain.get("proto") == "HTTP/1.1" and plain.get("tls") == "-" and
           plain.get("sni") == "-" and plain.get("host") == "default/plain",
           "plain HTTP request: no tls, no sni", [plain])
    unknown = [r for r in recs if r["host"] == "-"]
    result(len(unknown) == 2 and all(r["status"] == "404" for r in unknown),
           "requests without a configured host: host=-", [unknown])
    odd = by_path.get('/odd"q\\\xc3\xa9', {})
    raw_odd = [line for line in lines if "/odd" in line]
    result(bool(odd) and raw_odd and r'path="/odd\"q\\\xc3\xa9"' in raw_odd[0],
           "quote, backslash and non-ASCII bytes escaped in a quoted value", raw_odd)
    result(all(line.isascii() for line in lines), "every line is ASCII", [])


def check_no_secrets(texts):
    key_lines = set()
    for name in ("a", "wild", "stored"):
        key_lines.update(line for line in read(name + ".key").splitlines()
                         if line and not line.startswith("-----"))
    for what, text in texts.items():
        leaked = [k for k in key_lines if k in text]
        result(not leaked and "PRIVATE KEY" not in text and SECRET not in text,
               f"no private key and no query string in {what}", leaked[:2])


def check_listener(mp):
    status, _, body = scrape(mp, path_="/other")
    result(status == 404, "metrics listener: other paths are 404", [status, body])
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
             f"http://127.0.0.1:{mp}/metrics"])
    result(r.stdout.decode() == "405", "metrics listener: POST is 405", [r.stdout])


def check_ipv6_and_flags(upstream):
    hp, hs, mp = free_port(), free_port(), free_port()
    p, err = start_dataplane(config(hp, hs, upstream), "v6", [hp, hs],
                             args=["--metrics-listen", f"[::1]:{mp}"], workers=1)
    status, ctype, text = scrape(mp, addr="::1")
    result(status == 200 and "aegis_dataplane_config_generation 42" in text,
           "metrics listener on [::1]", [status, text[:200]])
    # A second dataplane cannot take the same metrics port.
    hp2, hs2 = free_port(), free_port()
    r = run([DATAPLANE, "--config", path("v6.json"), "--metrics-listen", f"[::1]:{mp}"],
            timeout=30)
    result(r.returncode == 1, "metrics port in use: refused", [r.returncode, r.stderr])
    rc, log = stop(p, err)
    result(rc == 0 and no_sanitizer_report(log), "IPv6 instance stopped cleanly", [rc, log])
    r = run([DATAPLANE, "--config", path("v6.json"), "--metrics-listen", "localhost:9145"])
    result(r.returncode == 1 and b"numeric ADDRESS:PORT" in r.stderr,
           "--metrics-listen with a name: refused with a message", [r.returncode, r.stderr])
    del hp2, hs2


def check_upstream_errors_and_connections(upstream):
    """A refused upstream counts in upstream_errors_total; the access log names the upstream a
    request went to; an open client connection shows in connections_active, and leaves it."""
    hp, hs, mp = free_port(), free_port(), free_port()
    closed = free_port()  # nothing listens there
    cfg = {"version": 1, "generation": 7,
           "listeners": {"http": [f"127.0.0.1:{hp}"], "https": [f"127.0.0.1:{hs}"]},
           "hosts": [{"name": "default/down", "hostnames": ["down.test"],
                      "upstreams": [{"url": f"http://127.0.0.1:{closed}"}]},
                     {"name": "default/up", "hostnames": ["up.test"],
                      "upstreams": [{"url": f"http://127.0.0.1:{upstream}"}]}]}
    log_path = path("access-up.log")
    p, err = start_dataplane(cfg, "up", [hp, hs, mp], workers=1,
                             args=["--metrics-listen", f"127.0.0.1:{mp}",
                                   "--access-log", log_path])
    res = [("down.test", hp, "127.0.0.1"), ("up.test", hp, "127.0.0.1")]
    st_down = curl(f"http://down.test:{hp}/", resolve=res)[0]
    st_up = curl(f"http://up.test:{hp}/u", resolve=res)[0]
    s = parse_metrics(scrape(mp)[2])
    got = metric(s, "aegis_dataplane_upstream_errors_total", host="default/down", kind="connect")
    result(st_down == 502 and st_up == 200 and got == 1,
           "a refused upstream: 502, and upstream_errors_total{kind=connect} == 1",
           [st_down, st_up, got])

    held = socket.create_connection(("127.0.0.1", hp), timeout=5)
    held.sendall(b"GET /u HTTP/1.1\r\nHost: up.test\r\n\r\n")
    held.recv(65536)
    active = metric(parse_metrics(scrape(mp)[2]), "aegis_dataplane_connections_active")
    held.close()
    deadline, after = time.time() + 5, None
    while time.time() < deadline:
        after = metric(parse_metrics(scrape(mp)[2]), "aegis_dataplane_connections_active")
        if after == 0:
            break
        time.sleep(0.1)
    result(active == 1 and after == 0,
           "connections_active counts an open client connection, and drops when it closes",
           [active, after])
    rc, log = stop(p, err)
    with open(log_path, encoding="latin-1") as f:
        recs = [dict(x) for x in map(parse_logfmt, f.read().splitlines()) if x]
    up = [r for r in recs if r.get("path") == "/u"]
    result(bool(up) and up[0].get("upstream") == f"http://127.0.0.1:{upstream}",
           "the access log names the upstream a request went to", [up[:1]])
    result(rc == 0 and no_sanitizer_report(log), "second instance stopped cleanly", [rc, log])


def main():
    started = time.time()
    if not os.access(DATAPLANE, os.X_OK):
        sys.exit(f"{DATAPLANE} is not built")
    make_certs()
    upstream = start_upstream()
    hp, hs, mp = free_port(), free_port(), free_port()
    log_path = path("access.log")
    p, err = start_dataplane(config(hp, hs, upstream), "main", [hp, hs, mp],
                             args=["--metrics-listen", f"127.0.0.1:{mp}", "--access-log", log_path])
    want = make_traffic(hp, hs)
    # Requests are counted when h2o disposes them, just after their last byte.
    deadline = time.time() + 5
    while time.time() < deadline:
        s = parse_metrics(scrape(mp)[2])
        if metric(s, "aegis_dataplane_request_duration_seconds_count") >= want["requests"]:
            break
        time.sleep(0.1)
    # Lines are buffered per worker and flushed at the latest a second after the first one.
    deadline = time.time() + 3
    while time.time() < deadline:
        with open(log_path, encoding="latin-1") as f:
            n_lines = len(f.read().splitlines())
        if n_lines >= want["requests"]:
            break
        time.sleep(0.1)
    result(n_lines == want["requests"], "access-log lines written within the flush interval "
           "while serving", [n_lines])
    text = check_metrics(mp, want, {"default/a": "a", "default/wild": "wild",
                                    "default/s": "stored", "default/m": "a"})
    check_listener(mp)
    rc, log = stop(p, err)
    result(rc == 0 and no_sanitizer_report(log), "stopped cleanly (exit 0, no sanitizer report)",
           [rc, log])
    log_text = open(log_path, encoding="latin-1").read()
    check_access_log(log_text, want)
    check_no_secrets({"/metrics": text, "the access log": log_text, "the error log": log})
    check_ipv6_and_flags(upstream)
    check_upstream_errors_and_connections(upstream)
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
