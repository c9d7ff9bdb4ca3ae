#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The balancing reverse proxy of aegis-dataplane with real clients (curl over HTTP/1.1 and HTTP/2,
# python3-websockets) and real upstreams served by this script (HTTP servers naming themselves,
# TLS servers requiring client certificates and recording the SNI, websocket echo servers, a port
# that refuses and one that never answers). Checked: weighted round robin, ejection by active
# health checks and the return after healthyThreshold passes, 503 when every upstream is down,
# retries when one upstream of two is down (no 502), connect timeout and read timeout (504),
# refused (502), upstream mutual TLS and each of its failure modes (unknown CA, wrong name under
# TLS 1.2 and 1.3, no client certificate, insecureSkipVerify), the serverName override as SNI,
# X-Forwarded-For/-Proto, preserveHost, the URL's path prefix, websockets through plain and TLS
# upstreams, the edge client-certificate headers and their removal when a client forges them,
# and a clean exit under the sanitizers.
#
# Environment: AEGIS_DATAPLANE (default: build/aegis-dataplane). Output is TAP-like and ends with
# "N passed, N failed"; the exit status is 1 on any failure.

import json
import re
import sys
import time

from dptest import (AppUpstream, blackhole, closed_port, curl, free_port, issue_cert, make_ca,
                    no_sanitizer_report, path, read, result, run, start_dataplane,
                    start_ws_upstream, stop, summary, ws_echo)

HEALTH = {"path": "/healthz", "intervalMs": 150, "timeoutMs": 500, "healthyThreshold": 2,
          "unhealthyThreshold": 2}


def make_certs():
    make_ca()                       # signs everything the tests trust
    make_ca("ca2", "Other CA")      # a CA the upstream's certificate does not chain to
    issue_cert("edge", "*.proxy.test", "DNS:*.proxy.test")
    issue_cert("backend", "backend.test", "DNS:backend.test")
    issue_cert("client", "client.test", "DNS:client.test,email:c@client.test,IP:127.0.0.2",
               usage="clientAuth")


def host(name, upstreams, **kw):
    h = {"name": "default/" + name, "hostnames": [name + ".proxy.test"],
         "upstreams": [u if isinstance(u, dict) else {"url": u} for u in upstreams]}
    h.update(kw)
    return h


def config(hp, hs, ups):
    client = {"clientCertPEM": read("client.pem"), "clientKeyPEM": read("client.key")}
    good = dict(client, caPEM=read("ca.pem"), serverName="backend.test")
    t13, t12 = ups["t13"].port, ups["t12"].port
    return {
        "version": 1, "generation": 1,
        "listeners": {"http": [f"127.0.0.1:{hp}"], "https": [f"127.0.0.1:{hs}"]},
        "certificates": [{"name": "default/edge", "certificatePEM": read("edge.pem"),
                          "privateKeyPEM": read("edge.key")}],
        "hosts": [
            host("rr", [{"url": f"http://127.0.0.1:{ups['a'].port}", "weight": 1},
                        {"url": f"http://127.0.0.1:{ups['b'].port}", "weight": 1},
                        {"url": f"http://127.0.0.1:{ups['c'].port}", "weight": 2}],
                 tls={}, forceHTTPS=False),
            host("hc", [f"http://127.0.0.1:{ups['d'].port}", f"http://127.0.0.1:{ups['e'].port}"],
                 healthCheck=HEALTH),
            host("dies", [f"http://127.0.0.1:{ups['g'].port}",
                          f"http://127.0.0.1:{ups['h'].port}"]),
            host("retry", [f"http://127.0.0.1:{ups['f'].port}",
                           f"http://127.0.0.1:{ups['closed']}"]),
            host("refused", [f"http://127.0.0.1:{ups['closed']}"]),
            host("ctimeout", [f"http://127.0.0.1:{ups['hole']}"],
                 timeouts={"connectMs": 300, "readMs": 5000}),
            host("rtimeout", [f"http://127.0.0.1:{ups['f'].port}"],
                 timeouts={"connectMs": 1000, "readMs": 500}),
            host("hdr", [f"http://127.0.0.1:{ups['f'].port}"], tls={}, forceHTTPS=False),
            host("ph", [f"http://127.0.0.1:{ups['f'].port}"], preserveHost=True),
            host("prefix", [f"http://127.0.0.1:{ups['f'].port}/base/"]),
            host("mtls", [f"https://127.0.0.1:{t13}"], upstreamTLS=good),
            host("mtls12", [f"https://127.0.0.1:{t12}"], upstreamTLS=good),
            host("badca", [f"https://127.0.0.1:{t13}"],
                 upstreamTLS=dict(good, caPEM=read("ca2.pem"))),
            host("name13", [f"https://127.0.0.1:{t13}"],
                 upstreamTLS=dict(good, serverName="wrong.test")),
            host("name12", [f"https://127.0.0.1:{t12}"],
                 upstreamTLS=dict(good, serverName="wrong.test")),
            host("nocert", [f"https://127.0.0.1:{t13}"],
                 upstreamTLS={"caPEM": read("ca.pem"), "serverName": "backend.test"}),
            host("insecure", [f"https://127.0.0.1:{t13}"],
                 upstreamTLS=dict(client, insecureSkipVerify=True)),
            host("hctls", [f"https://127.0.0.1:{t13}"], upstreamTLS=good, healthCheck=HEALTH),
            host("hcbad", [f"https://127.0.0.1:{t13}"],
                 upstreamTLS=dict(good, caPEM=read("ca2.pem")), healthCheck=HEALTH),
            host("ws", [f"http://127.0.0.1:{ups['ws']}"]),
            host("wss", [f"https://127.0.0.1:{ups['wss']}"], upstreamTLS=good),
            host("cc", [f"http://127.0.0.1:{ups['f'].port}"], forceHTTPS=False,
                 tls={"clientAuth": {"mode": "optional", "caPEM": read("ca.pem")}}),
        ],
    }


def url(name, port, p="/", scheme="http"):
    return f"{scheme}://{name}.proxy.test:{port}{p}"


def get(name, port, p="/", *args, scheme="http"):
    """(status, body as parsed JSON or text, headers) through the dataplane."""
    st, _, hdrs, body, err = curl(url(name, port, p, scheme), "--http1.1", *args,
                                  resolve=[(name + ".proxy.test", port, "127.0.0.1")])
    try:
        return st, json.loads(body), hdrs
    except ValueError:
        return st, body, hdrs


def many(name, port, n, *args, scheme="http"):
    """n requests with one curl (one connection): the list of (status, id or body)."""
    cmd = ["curl", "-sS", "--max-time", "20", "--cacert", path("ca.pem"), *args,
           "--resolve", f"{name}.proxy.test:{port}:127.0.0.1"]
    for _ in range(n):
        cmd += ["-w", "\\n@@%{http_code}@@\\n", url(name, port, "/", scheme)]
    out = run(cmd, timeout=30).stdout.decode(errors="replace")
    parts = re.split(r"\n@@(\d{3})@@\n", out)
    res = []
    for body, code in zip(parts[0::2], parts[1::2]):
        try:
            res.append((int(code), json.loads(body)["id"]))
        except ValueError:
            res.append((int(code), body))
    return res


def wait_until(cond, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_round_robin(hp, hs):
    for proto, port, scheme in (("--http1.1", hp, "http"), ("--http2", hs, "https")):
        res = many("rr", port, 40, proto, scheme=scheme)
        counts = {i: sum(1 for st, who in res if who == i) for i in ("a", "b", "c")}
        result(len(res) == 40 and all(st == 200 for st, _ in res) and
               counts == {"a": 10, "b": 10, "c": 20},
               f"round robin {proto}: weights 1/1/2 give 10/10/20 of 40", [counts, res[:5]])
        seq = [who for _, who in res[:8]]
        result(max(len(run_) for run_ in "".join(seq).replace("a", " ").replace("b", " ").split())
               <= 2, f"round robin {proto}: picks are interleaved ({''.join(seq)})")


def test_health(hp, ups, log):
    d, e = ups["d"], ups["e"]
    e.healthy = False
    # unhealthyThreshold 2 at 150 ms: out after about 0.3 s.
    ok = wait_until(lambda: "upstream http://127.0.0.1:%d: unhealthy" % e.port in read_log(log))
    result(ok, "health: a failing /healthz is logged unhealthy after the threshold",
           [read_log(log)[-2000:]])
    res = many("hc", hp, 20)
    result(all(st == 200 and who == "d" for st, who in res),
           "health: the unhealthy upstream gets no traffic", [res])
    e.healthy = True
    ok = wait_until(lambda: "upstream http://127.0.0.1:%d: healthy" % e.port in read_log(log))
    res = many("hc", hp, 20)
    result(ok and {who for _, who in res} == {"d", "e"},
           "health: back after healthyThreshold passing checks", [res])
    t13 = ups["t13"]
    ok = wait_until(lambda: "host default/hcbad: upstream https://127.0.0.1:%d: unhealthy "
                    "(TLS handshake failed: certificate verify failed" % t13.port in read_log(log))
    st, body, _ = get("hcbad", hp)
    result(ok and st == 503, "health over TLS: a check failing verification marks the upstream "
           "unhealthy, with the reason", [st, body, read_log(log)[-1500:]])
    st, body, _ = get("hctls", hp)
    result(st == 200 and t13.health_hits > 0 and "host default/hctls: upstream" not in
           read_log(log), "health over TLS: checks with the host's client certificate and "
           "serverName pass", [st, body, t13.health_hits])
    d.healthy = e.healthy = False
    ok = wait_until(lambda: get("hc", hp)[0] == 503)
    st, body, _ = get("hc", hp)
    result(ok and st == 503 and "no upstream is available" in str(body),
           "health: every upstream down gives 503 with a body saying so", [st, body])
    d.healthy = e.healthy = True
    ok = wait_until(lambda: get("hc", hp)[0] == 200)
    result(ok, "health: served again once the upstreams pass")


def test_errors(hp, log):
    res = many("retry", hp, 50)
    res += [(st, b.get("id") if isinstance(b, dict) else b)
            for st, b, _ in (get("retry", hp) for _ in range(10))]
    bad = [r for r in res if r[0] != 200]
    result(len(res) == 60 and not bad,
           "retry: one upstream of two refusing, 60 requests, no 502", [bad[:5], len(res)])
    result("ejected for 10 s" in read_log(log), "retry: the refusing upstream is ejected (logged)")

    for i in range(2):
        st, body, _ = get("refused", hp)
        result(st == 502 and "upstream connection refused" in str(body),
               f"refused: the only upstream down gives 502 with a body (request {i + 1})",
               [st, body])

    t = time.time()
    st, body, _ = get("ctimeout", hp)
    took = time.time() - t
    result(st == 504 and "upstream connect timeout" in str(body) and took < 2.5,
           f"connect timeout: 504 after connectMs ({took:.2f} s)", [st, body])

    t = time.time()
    st, body, _ = get("rtimeout", hp, "/sleep/1500")
    took = time.time() - t
    result(st == 504 and "upstream read timeout" in str(body) and took < 1.4,
           f"read timeout: 504 after readMs ({took:.2f} s)", [st, body])
    st, body, _ = get("hdr", hp, "/status/502")
    result(st == 502 and body == "from upstream\n",
           "an upstream's own 502 is passed through untouched", [st, body])
    st, body, _ = get("rtimeout", hp, "/sleep/100")
    result(st == 200, "read timeout: a quick answer on the same host is served", [st, body])


def test_upstream_dies(hp, ups):
    """An upstream that dies while the pool holds idle connections to it: the next requests find
    those connections dead, connect, are refused, and go to the other upstream - no 502."""
    warm = many("dies", hp, 10)
    ids = {b for st, b in warm}
    ups["g"].kill()
    res = many("dies", hp, 20)
    bad = [r for r in res if r[0] != 200]
    result(ids == {"g", "h"} and len(res) == 20 and not bad,
           "an upstream dying with idle pooled connections: 20 requests, no 502",
           [ids, bad[:5]])


def test_upstream_tls(hp, ups, log):
    for name in ("mtls", "mtls12"):
        st, body, _ = get(name, hp)
        result(st == 200 and isinstance(body, dict) and body["sni"] == "backend.test",
               f"upstream TLS {name}: mutual TLS works, SNI is the serverName", [st, body])
    cases = [("badca", "certificate verify failed"),
             ("name13", "hostname mismatch"),
             ("name12", "hostname mismatch"),
             ("nocert", "certificate required")]
    for name, reason in cases:
        st, body, _ = get(name, hp)
        line = [ln for ln in read_log(log).splitlines() if f"host default/{name}:" in ln]
        if name == "nocert" and any("502 I/O error" in ln for ln in line):
            # TLS 1.3: the upstream refuses the certificate after our side finished the
            # handshake; when its reset beats the alert, only an I/O error is seen (a known
            # limit, docs/dataplane.md).
            result(st == 502, f"upstream TLS {name}: 502 (the alert was lost to the reset)",
                   [st, body] + line)
            continue
        result(st == 502 and "upstream TLS handshake failed" in str(body) and
               any(reason in ln for ln in line),
               f"upstream TLS {name}: 502 and the log names the reason ({reason})",
               [st, body] + line)
    st, body, _ = get("insecure", hp)
    result(st == 200 and "host default/insecure: upstream certificates are not verified" in
           read_log(log), "upstream TLS insecureSkipVerify: served, and warned in the log",
           [st, body])


def test_headers(hp, hs):
    st, body, _ = get("hdr", hp, "/x?q=1", "-H", "X-Forwarded-For: 192.0.2.9")
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and h.get("x-forwarded-for") == "192.0.2.9, 127.0.0.1" and
           h.get("x-forwarded-proto") == "http" and body["path"] == "/x?q=1",
           "X-Forwarded-For appended, X-Forwarded-Proto http, path and query kept", [st, body])
    result(h.get("host", "").startswith("127.0.0.1:"),
           "preserveHost off: the upstream gets the URL's host", [h.get("host")])
    st, body, _ = get("hdr", hs, "/", scheme="https")
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and h.get("x-forwarded-proto") == "https", "X-Forwarded-Proto https",
           [st, body])
    st, body, _ = get("ph", hp)
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and h.get("host") == f"ph.proxy.test:{hp}",
           "preserveHost on: the upstream gets the client's Host", [st, body])
    st, body, _ = get("prefix", hp, "/y/z?k=v")
    result(st == 200 and body.get("path") == "/base/y/z?k=v",
           "the upstream URL's path prefix is put before the request's path", [st, body])


def test_client_cert(hp, hs):
    forged = ["-H", "X-Client-Cert-Subject: CN=evil", "-H", "x-client-cert-verified: SUCCESS",
              "-H", "X-Client-Cert-SAN: DNS:evil"]
    st, body, _ = get("cc", hs, "/", "--cert", path("client.pem"), "--key", path("client.key"),
                      *forged, scheme="https")
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and h.get("x-client-cert-verified") == "SUCCESS" and
           h.get("x-client-cert-subject") == "CN=client.test" and
           h.get("x-client-cert-san") == "DNS:client.test, email:c@client.test, IP:127.0.0.2",
           "client cert: verified subject and SAN passed upstream, forged values replaced",
           [st, h])
    st, body, _ = get("cc", hs, "/", *forged, scheme="https")
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and h.get("x-client-cert-verified") == "NONE" and
           "x-client-cert-subject" not in h and "x-client-cert-san" not in h,
           "client cert: none sent - Verified NONE, forged subject and SAN removed", [st, h])
    st, body, _ = get("hdr", hs, "/", *forged, scheme="https")
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and not any(k.startswith("x-client-cert-") for k in h),
           "client cert: forged headers removed on a host without client auth", [st, h])
    st, body, _ = get("hdr", hp, "/", *forged)
    h = body["headers"] if isinstance(body, dict) else {}
    result(st == 200 and not any(k.startswith("x-client-cert-") for k in h),
           "client cert: forged headers removed on plain HTTP", [st, h])


def test_websocket(hp):
    for name in ("ws", "wss"):
        try:
            replies = ws_echo(hp, f"{name}.proxy.test", ["hello", "x" * 70000, "bye"])
            ok, note = replies == ["hello", "x" * 70000, "bye"], replies[:1]
        except Exception as e:  # noqa: BLE001 - any failure is the test's result
            ok, note = False, repr(e)
        result(ok, f"websocket echo through the proxy ({name} upstream)", [note])


def read_log(log):
    log.seek(0)
    return log.read()


def main():
    started = time.time()
    make_certs()
    ups = {k: AppUpstream(k) for k in "abcdefgh"}
    ups["t13"] = AppUpstream("t13", {"cert": "backend", "key": "backend", "client_ca": "ca"})
    ups["t12"] = AppUpstream("t12", {"cert": "backend", "key": "backend", "client_ca": "ca",
                                     "max_version": "1.2"})
    ups["closed"] = closed_port()
    ups["hole"], keep = blackhole()
    ups["ws"] = start_ws_upstream()
    ups["wss"] = start_ws_upstream({"cert": "backend", "key": "backend", "client_ca": "ca"})
    hp, hs = free_port(), free_port()
    p, log = start_dataplane(config(hp, hs, ups), "proxy", [hp, hs])

    test_round_robin(hp, hs)
    test_errors(hp, log)
    test_upstream_dies(hp, ups)
    test_upstream_tls(hp, ups, log)
    test_headers(hp, hs)
    test_client_cert(hp, hs)
    test_websocket(hp)
    test_health(hp, ups, log)

    rc, text = stop(p, log)
    result(rc == 0, "the dataplane stops with status 0", [rc, text[-3000:]])
    result(no_sanitizer_report(text), "no sanitizer report", [text[-3000:]])
    del keep
    return summary(started)


if __name__ == "__main__":
    sys.exit(main())
