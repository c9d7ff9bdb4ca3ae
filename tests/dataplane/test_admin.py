#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# The admin API and the live configuration swap, against the real aegis-dataplane with real
# clients: curl over the unix socket and over mutual TLS, curl (HTTP/1.1 keep-alive and HTTP/2)
# and a websocket through the dataplane while configurations are swapped, TLS upstreams in Python
# for test-upstream-tls, and a restart from the sealed last good configuration.
#
# Environment: AEGIS_DATAPLANE (default: build/aegis-dataplane).

import asyncio
import datetime
import hashlib
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dptest as d  # noqa: E402
from dptest import path, read, result  # noqa: E402

import websockets  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

STARTED = time.time()


def serial_of(pem_file):
    r = d.run(["openssl", "x509", "-noout", "-serial", "-in", path(pem_file)])
    return r.stdout.decode().strip().split("=", 1)[1].upper()


def served_serial(port, name):
    rc, out, err = d.s_client(port, name)
    r = d.run(["openssl", "x509", "-noout", "-serial"], input=out.encode())
    text = r.stdout.decode().strip()
    return text.split("=", 1)[1].upper() if "=" in text else None


def expired_cert(name, cn, sans):
    """A leaf signed by ca that expired yesterday (the openssl CLI cannot backdate)."""
    ca_cert = x509.load_pem_x509_certificate(read("ca.pem").encode())
    ca_key = serialization.load_pem_private_key(read("ca.key").encode(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=3))
            .not_valid_after(now - datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), False)
            .sign(ca_key, hashes.SHA256()))
    with open(path(name + ".pem"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(path(name + ".key"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


# ---- TLS upstreams for test-upstream-tls ----------------------------------------------------------

def tls_upstream(cert, key, client_ca=None):
    """A TLS server that completes handshakes (requiring a client certificate from client_ca when
    given) and closes; returns its port."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path(cert), path(key))
    if client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(path(client_ca))
    srv = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            conn, _ = srv.accept()
            try:
                conn.settimeout(2)
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(1)
                    try:
                        tls.recv(1)
                    except (OSError, ssl.SSLError):
                        pass
            except (OSError, ssl.SSLError):
                conn.close()
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1]


# ---- websocket echo upstream ---------------------------------------------------------------------

ws_loop = asyncio.new_event_loop()
threading.Thread(target=ws_loop.run_forever, daemon=True).start()


def on_ws(coro, timeout=10):
    return asyncio.run_coroutine_threadsafe(coro, ws_loop).result(timeout)


async def echo(ws, _path=None):
    async for msg in ws:
        await ws.send(msg)


async def start_ws_server():
    server = await websockets.serve(echo, "127.0.0.1", 0)
    return server.sockets[0].getsockname()[1]


# ---- configurations ------------------------------------------------------------------------------

class Ports:
    pass


P = Ports()


def host(name, names, upstream, tls=None, **kw):
    h = {"name": name, "hostnames": names, "upstreams": [{"url": upstream}]}
    if tls:
        h["tls"] = {"certificatePEM": read(tls + ".pem"), "privateKeyPEM": read(tls + ".key")}
    h.update(kw)
    return h


def up_tls(port, server_name, client=False, ca="ca"):
    t = {"caPEM": read(ca + ".pem"), "serverName": server_name}
    if client:
        t["clientCertPEM"] = read("client.pem")
        t["clientKeyPEM"] = read("client.key")
    return {"upstreamTLS": t, "forceHTTPS": False}


def config(gen, cert="a", extra=(), https_port=None):
    up = f"http://127.0.0.1:{P.upstream}"
    hosts = [host("default/a", ["a.test"], up, tls=cert),
             host("default/ws", ["ws.test"], f"http://127.0.0.1:{P.ws}", forceHTTPS=False),
             host("tls/ok", ["up-ok.test"], f"https://127.0.0.1:{P.up_ok}",
                  **up_tls(P.up_ok, "up.test")),
             host("tls/unknown", ["up-unknown.test"], f"https://127.0.0.1:{P.up_other_ca}",
                  **up_tls(P.up_other_ca, "up.test")),
             host("tls/mismatch", ["up-mismatch.test"], f"https://127.0.0.1:{P.up_ok}",
                  **up_tls(P.up_ok, "wrong.test")),
             host("tls/certreq", ["up-certreq.test"], f"https://127.0.0.1:{P.up_mtls}",
                  **up_tls(P.up_mtls, "up.test")),
             host("tls/mtls", ["up-mtls.test"], f"https://127.0.0.1:{P.up_mtls}",
                  **up_tls(P.up_mtls, "up.test", client=True)),
             host("tls/expired", ["up-expired.test"], f"https://127.0.0.1:{P.up_expired}",
                  **up_tls(P.up_expired, "up.test"))]
    hosts += list(extra)
    return {"version": 1, "generation": gen,
            "listeners": {"http": [f"127.0.0.1:{P.http}"],
                          "https": [f"127.0.0.1:{https_port or P.https}"]},
            "hosts": hosts}


def get(name, target="/", *args):
    return d.curl(f"https://{name}:{P.https}{target}", *args,
                  resolve=[(name, P.https, "127.0.0.1")])


def main():
    d.make_certs()
    d.issue_cert("a2", "a.test", "DNS:a.test,DNS:b.test")
    d.issue_cert("n", "n.test", "DNS:n.test")
    d.issue_cert("up", "up.test", "DNS:up.test")
    d.make_ca("ca2", "Another CA")
    d.issue_cert("up2", "up.test", "DNS:up.test", ca="ca2")
    d.issue_cert("other-ca-client", "aegis-controller", "DNS:aegis-controller", ca="ca2",
                 usage="clientAuth")
    d.issue_cert("ctl", "aegis-controller", "DNS:aegis-controller", usage="clientAuth")
    d.issue_cert("stranger", "someone-else", "DNS:someone-else", usage="clientAuth")
    d.issue_cert("admin-node", "dataplane", "IP:127.0.0.1,DNS:localhost")
    expired_cert("up-expired", "up.test", ["up.test"])

    P.upstream = d.start_upstream()
    P.ws = on_ws(start_ws_server())
    P.up_ok = tls_upstream("up.pem", "up.key")
    P.up_other_ca = tls_upstream("up2.pem", "up2.key")
    P.up_mtls = tls_upstream("up.pem", "up.key", client_ca="ca.pem")
    P.up_expired = tls_upstream("up-expired.pem", "up-expired.key")
    P.http, P.https, P.admin_tcp = d.free_port(), d.free_port(), d.free_port()

    sock = path("admin.sock")
    state = path("state")
    keyfile = path("master.key")
    with open(keyfile, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(keyfile, 0o600)
    env_pem = {"AEGIS_ADMIN_CERT_PEM": read("admin-node.pem"),
               "AEGIS_ADMIN_KEY_PEM": read("admin-node.key")}
    os.environ.update(env_pem)
    dp, log = d.start_dataplane(None, "dp", [], args=[
        "--admin-socket", sock, "--state-dir", state, "--master-key-file", keyfile,
        "--admin-listen", f"127.0.0.1:{P.admin_tcp}", "--admin-ca", path("ca.pem"),
        "--log-level", "debug"])
    for k in env_pem:
        del os.environ[k]
    d.wait_for(lambda: os.path.exists(sock))

    # ---- the unix socket, the first configuration ----
    st = os.stat(sock)
    result(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600,
           "the admin socket exists with mode 0600", [oct(st.st_mode)])
    status, doc, hdrs = d.admin(sock, "GET", "/status")
    result(status == 200 and doc["serving"] is False and hdrs.get("content-type") ==
           "application/json", "GET /status before any configuration: not serving", [status, doc])

    c1 = json.dumps(config(1))
    status, doc, _ = d.admin(sock, "PUT", "/config", c1)
    result(status == 200 and doc["generation"] == 1 and doc["changed"] is True and
           doc["sha256"] == hashlib.sha256(c1.encode()).hexdigest(),
           "PUT /config (generation 1) -> 200 with generation and sha256", [status, doc])
    d.wait_for(lambda: get("a.test")[0] == 200, 5)
    code, _, _, body, err = get("a.test", "/hello")
    result(code == 200 and '"/hello"' in body, "the first configuration is served", [code, err])
    result(served_serial(P.https, "a.test") == serial_of("a.pem"),
           "a.test presents certificate a")
    status, doc, _ = d.admin(sock, "GET", "/status")
    ha = next((h for h in doc.get("hosts", []) if h["name"] == "default/a"), None)
    result(status == 200 and doc["generation"] == 1 and
           doc["sha256"] == hashlib.sha256(c1.encode()).hexdigest() and ha is not None and
           ha["hostnames"] == ["a.test"] and ha["tls"] is True and
           ha["certificate"]["serial"] == serial_of("a.pem") and
           ha["certificate"]["notAfter"].endswith("Z") and ha["certificate"]["since"] and
           len(ha["upstreams"]) == 1 and ha["upstreams"][0]["healthy"] is True,
           "GET /status: generation, sha256, hosts, serving certificate serial/notAfter/since",
           [json.dumps(doc)[:1500]])
    result("PRIVATE KEY" not in json.dumps(doc) and "privateKey" not in json.dumps(doc),
           "GET /status holds no key material")
    since1 = ha["certificate"]["since"]

    # ---- a new configuration: new certificate, new host ----
    time.sleep(1.1)  # so that a new "since" differs
    c2 = json.dumps(config(2, cert="a2", extra=[host("default/n", ["n.test"],
                                                     f"http://127.0.0.1:{P.upstream}",
                                                     tls="n")]))
    status, doc, _ = d.admin(sock, "PUT", "/config", c2)
    result(status == 200 and doc["generation"] == 2, "PUT /config (generation 2) -> 200",
           [status, doc])
    code = get("n.test")[0]
    result(code == 200 and served_serial(P.https, "a.test") == serial_of("a2.pem"),
           "new connections get generation 2: new host, new certificate", [code])
    status, doc, _ = d.admin(sock, "GET", "/status")
    ha = next(h for h in doc["hosts"] if h["name"] == "default/a")
    result(ha["certificate"]["serial"] == serial_of("a2.pem") and
           ha["certificate"]["since"] != since1, "status: the new serial, serving since the swap",
           [ha["certificate"], since1])
    n_status = next(h for h in doc["hosts"] if h["name"] == "default/n")
    since_n = n_status["certificate"]["since"]

    # ---- refused configurations ----
    bad = config(3, cert="a2")
    bad["hosts"][0]["tls"]["privateKeyPEM"] = read("a.key")
    bad["hosts"][0]["upstreams"][0]["url"] = "nope"
    status, doc, _ = d.admin(sock, "PUT", "/config", bad)
    paths = [e.get("path") for e in (doc or {}).get("errors", [])]
    result(status == 422 and "hosts[0].tls.privateKeyPEM" in paths and
           "hosts[0].upstreams[0].url" in paths,
           "a bad configuration (key mismatch, bad URL) -> 422 with errors naming their paths",
           [status, doc])
    result(get("n.test")[0] == 200 and d.admin(sock, "GET", "/status")[1]["generation"] == 2,
           "the old configuration keeps serving after a refusal")
    status, doc, _ = d.admin(sock, "PUT", "/config", json.dumps(config(1)))
    result(status == 409 and "lower" in doc.get("error", ""),
           "a lower generation -> 409", [status, doc])
    status, doc, _ = d.admin(sock, "PUT", "/config", c2)
    result(status == 200 and doc["changed"] is False, "the same generation and content -> 200, "
           "no change", [status, doc])
    status, doc, _ = d.admin(sock, "PUT", "/config", config(2))
    result(status == 409, "the same generation with other content -> 409", [status, doc])
    status, doc, _ = d.admin(sock, "PUT", "/config", config(3, https_port=d.free_port()))
    result(status == 422 and doc["errors"][0]["path"] == "listeners" and
           "restart" in doc["errors"][0]["message"],
           "changed listeners -> 422 saying a restart is needed", [status, doc])
    status, doc, hdrs = d.admin(sock, "GET", "/nope")
    result(status == 404 and "error" in doc, "unknown path -> 404 JSON", [status])
    status, doc, hdrs = d.admin(sock, "DELETE", "/config")
    result(status == 405 and hdrs.get("allow") == "PUT" and "error" in doc,
           "wrong method -> 405 with Allow", [status, hdrs])
    status, doc, _ = d.admin(sock, "PUT", "/config", "{not json")
    result(status == 422 and doc.get("errors"), "a body that is not JSON -> 422", [status, doc])

    # ---- swaps under load ----
    async def ws_connect():
        return await websockets.connect(f"ws://ws.test:{P.http}/", host="127.0.0.1",
                                        port=P.http)
    ws = on_ws(ws_connect())
    on_ws(ws.send("before"))
    ws_before = on_ws(ws.recv())
    slow = {}

    def slow_request():
        slow["r"] = get("a.test", "/slow")
    slow_thread = threading.Thread(target=slow_request)
    slow_thread.start()
    time.sleep(0.3)  # the slow request is in flight
    stop_load = threading.Event()
    codes = {"h1": [], "h2": []}
    errors = []

    def load(kind, flag):
        while not stop_load.is_set():
            urls = []
            for i in range(25):
                urls += ["-o", "/dev/null", f"https://a.test:{P.https}/load/{i}"]
            cmd = ["curl", "-sS", "--max-time", "20", "--cacert", path("ca.pem"), flag,
                   "--resolve", f"a.test:{P.https}:127.0.0.1", "-w", "%{http_code}\\n", *urls]
            r = d.run(cmd, timeout=30)
            if r.returncode != 0 or r.stderr:
                errors.append(kind + ": " + r.stderr.decode())
            codes[kind] += r.stdout.decode().split()
    loaders = [threading.Thread(target=load, args=("h1", "--http1.1")),
               threading.Thread(target=load, args=("h2", "--http2"))]
    for t in loaders:
        t.start()
    time.sleep(0.3)
    swap_times, swap_fail = [], []
    for g in range(10, 30):
        t0 = time.time()
        st_, doc, _ = d.admin(sock, "PUT", "/config",
                              config(g, cert="a" if g % 2 else "a2",
                                     extra=[host("default/n", ["n.test"],
                                                 f"http://127.0.0.1:{P.upstream}", tls="n")]))
        swap_times.append(time.time() - t0)
        if st_ != 200:
            swap_fail.append((g, st_, doc))
    time.sleep(0.3)
    stop_load.set()
    for t in loaders:
        t.join()
    slow_thread.join()
    result(not swap_fail, "20 configurations swapped in under load", swap_fail)
    n1, n2 = len(codes["h1"]), len(codes["h2"])
    bad_codes = [c for c in codes["h1"] + codes["h2"] if c != "200"]
    result(not errors and not bad_codes and n1 > 20 and n2 > 20,
           f"continuous HTTP/1.1 keep-alive ({n1}) and HTTP/2 ({n2}) requests during the swaps: "
           "none failed", errors[:3] + bad_codes[:10])
    on_ws(ws.send("after"))
    ws_after = on_ws(ws.recv())
    result(ws_before == "before" and ws_after == "after",
           "a websocket opened before the swaps still echoes after them", [ws_before, ws_after])
    r = slow.get("r")
    result(r is not None and r[0] == 200 and '"/slow"' in r[3],
           "a slow request in flight during the swaps completes with 200", [r])
    print(f"# swap time through the admin API: median {sorted(swap_times)[10] * 1000:.1f} ms, "
          f"max {max(swap_times) * 1000:.1f} ms")
    on_ws(ws.close())
    status, doc, _ = d.admin(sock, "GET", "/status")
    n_status = next(h for h in doc["hosts"] if h["name"] == "default/n")
    result(doc["generation"] == 29 and n_status["certificate"]["since"] == since_n,
           "status: a certificate unchanged across swaps keeps its 'since'",
           [n_status["certificate"], since_n])

    def all_freed():
        log.seek(0)
        text = log.read()
        return all(f"generation {g}: freed" in text for g in [1, 2] + list(range(10, 29)))
    def not_freed():
        log.seek(0)
        text = log.read()
        return [g for g in [1, 2] + list(range(10, 29)) if f"generation {g}: freed" not in text]
    result(d.wait_for(all_freed, 5), "every replaced generation is freed once its connections "
           "are gone", [f"not freed: {not_freed()}"])

    # ---- test-upstream-tls ----
    def tls_test(name):
        st_, doc, _ = d.admin(sock, "POST", f"/hosts/{name}/test-upstream-tls")
        return st_, doc or {}
    st_, doc = tls_test("tls%2Fok")
    result(st_ == 200 and doc.get("ok") is True and doc.get("error") is None and
           doc["chain"] and "up.test" in doc["chain"][0]["subject"] and
           doc["chain"][0]["serial"] == serial_of("up.pem"),
           "test-upstream-tls: success, with the upstream's chain", [st_, doc])
    st_, doc = tls_test("tls/ok")
    result(st_ == 200 and doc.get("ok") is True, "test-upstream-tls: the raw slash form works",
           [st_, doc])
    for name, want in [("tls%2Funknown", "unknown_authority"),
                       ("tls%2Fmismatch", "hostname_mismatch"),
                       ("tls%2Fcertreq", "certificate_required"),
                       ("tls%2Fexpired", "expired")]:
        st_, doc = tls_test(name)
        result(st_ == 200 and doc.get("ok") is False and doc.get("error") == want and
               doc.get("detail"), f"test-upstream-tls: {want}", [st_, doc])
    st_, doc = tls_test("tls%2Fmtls")
    result(st_ == 200 and doc.get("ok") is True,
           "test-upstream-tls: the host's client certificate is presented", [st_, doc])
    st_, doc = tls_test("default%2Fnope")
    result(st_ == 404, "test-upstream-tls: unknown host -> 404", [st_, doc])

    # ---- TCP admin with mutual TLS ----
    def tcp(*cert):
        args = ["--cert", path(cert[0] + ".pem"), "--key", path(cert[0] + ".key")] if cert else []
        r = d.run(["curl", "-sS", "--max-time", "10", "--cacert", path("ca.pem"), *args,
                   "-o", path("tcp-body"), "-w", "%{http_code}",
                   f"https://127.0.0.1:{P.admin_tcp}/status"])
        return r.returncode, r.stdout.decode(), r.stderr.decode()
    rc, code, err = tcp("ctl")
    result(rc == 0 and code == "200", "mTLS admin: a client certificate with an "
           "allowed SAN -> 200", [rc, code, err])
    rc, code, err = tcp("other-ca-client")
    result(rc != 0 or code not in ("200",), "mTLS admin: a certificate from another CA is refused",
           [rc, code, err])
    rc, code, err = tcp("stranger")
    result(rc != 0 or code == "403", "mTLS admin: the right CA but no allowed SAN is refused",
           [rc, code, err])
    rc, code, err = tcp()
    result(rc != 0 or code not in ("200",), "mTLS admin: no client certificate is refused",
           [rc, code, err])
    r = d.run(["curl", "-sS", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
               f"http://127.0.0.1:{P.admin_tcp}/status"])
    result(r.returncode != 0 and r.stdout.decode() in ("", "000"),
           "mTLS admin: plaintext HTTP on the TCP port fails", [r.returncode, r.stdout])

    # ---- restart with the controller absent ----
    rc, text = d.stop(dp, log)
    result(rc == 0 and d.no_sanitizer_report(text), "the dataplane stops cleanly after the swaps "
           "(no sanitizer or leak report)", [rc, text[-3000:]])
    lg = os.path.join(state, "dataplane-last-good.sealed")
    blob = open(lg, "rb").read()
    result(stat.S_IMODE(os.stat(lg).st_mode) == 0o600 and b"BEGIN" not in blob and
           b"PRIVATE" not in blob and b"a.test" not in blob,
           "the last good configuration is mode 0600 and holds no readable PEM or name")
    dp, log = d.start_dataplane(None, "dp-restart", [P.https], args=[
        "--admin-socket", sock, "--state-dir", state, "--master-key-file", keyfile])
    code = get("n.test")[0]
    status, doc, _ = d.admin(sock, "GET", "/status")
    result(code == 200 and doc["generation"] == 29,
           "restarted with only the state directory: the last good configuration is served at "
           "once", [code, doc and doc.get("generation")])
    rc, text = d.stop(dp, log)
    result(rc == 0 and d.no_sanitizer_report(text), "the restarted dataplane stops cleanly",
           [rc, text[-2000:]])
    wrong = path("wrong.key")
    with open(wrong, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(wrong, 0o600)
    r = d.run([d.DATAPLANE, "--admin-socket", sock, "--state-dir", state, "--master-key-file",
               wrong], env=d.sanitizer_env(), timeout=30)
    err = r.stderr.decode()
    result(r.returncode == 1 and "dataplane-last-good.sealed" in err and "master" in err,
           "a wrong master key -> exit 1 with a clear error", [r.returncode, err])

    # ---- development PKI ----
    dev_state, bundle = path("dev-state"), path("bundle")
    port = d.free_port()
    dev_args = ["--admin-dev", "--state-dir", dev_state, "--master-key-file", keyfile]
    dp, log = d.start_dataplane(None, "dp-dev", [port], args=[
        *dev_args, "--admin-listen", f"127.0.0.1:{port}"])
    files = sorted(os.listdir(os.path.join(dev_state, "admin-dev")))
    keys_sealed = all(b"BEGIN" not in open(os.path.join(dev_state, "admin-dev", k), "rb").read()
                      for k in files if k.endswith(".key"))
    result(files == ["ca.key", "ca.pem", "controller.key", "controller.pem", "node.key",
                     "node.pem"] and keys_sealed,
           "--admin-dev makes a CA, node and controller certificates; keys sealed", [files])
    r = d.run([d.DATAPLANE, *dev_args, "--admin-dev-export", bundle], env=d.sanitizer_env())
    ok = r.returncode == 0 and stat.S_IMODE(os.stat(os.path.join(bundle, "controller.key"))
                                            .st_mode) == 0o600
    result(ok, "--admin-dev-export writes the controller bundle (key 0600)", [r.stderr.decode()])

    def dev_status():
        return d.run(["curl", "-sS", "--max-time", "10", "--cacert",
                      os.path.join(bundle, "ca.pem"), "--cert",
                      os.path.join(bundle, "controller.pem"), "--key",
                      os.path.join(bundle, "controller.key"), "-o", "/dev/null", "-w",
                      "%{http_code}", f"https://127.0.0.1:{port}/status"])
    r = dev_status()
    result(r.stdout == b"200", "dev mode: the exported controller certificate is accepted",
           [r.stdout, r.stderr])
    ca_before = open(os.path.join(dev_state, "admin-dev", "ca.pem")).read()
    rc, text = d.stop(dp, log)
    dp, log = d.start_dataplane(None, "dp-dev2", [port], args=[
        *dev_args, "--admin-listen", f"127.0.0.1:{port}"])
    r = dev_status()
    result(r.stdout == b"200" and
           open(os.path.join(dev_state, "admin-dev", "ca.pem")).read() == ca_before,
           "dev mode: a restart reuses the files", [r.stdout, r.stderr])
    rc2, text2 = d.stop(dp, log)
    result(rc == 0 and rc2 == 0 and d.no_sanitizer_report(text + text2),
           "the dev-mode dataplanes stop cleanly", [text[-1500:], text2[-1500:]])
    return d.summary(STARTED)


if __name__ == "__main__":
    sys.exit(main())
