#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# Shared helpers of the dataplane and controller tests (imported by tests/*/test_*.py; not a test
# itself): TAP-like results, a work directory removed at exit, certificates made with the openssl
# CLI, free ports, an echoing upstream, starting and stopping aegis-dataplane, and curl and
# openssl s_client wrappers. Every process started through start_dataplane or track() is killed
# on the way out, whatever happens.
#
# Environment: AEGIS_DATAPLANE, AEGIS_CONTROLLER, AEGISCTL (default: build/...);
# AEGIS_KEEP_TEST_DIR=1 keeps the work directory (configurations, logs) for a look after a failure.

import atexit
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("AEGIS_SOURCE_DIR",
                     os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATAPLANE = os.environ.get("AEGIS_DATAPLANE", os.path.join(SRC, "build", "aegis-dataplane"))
CONTROLLER = os.environ.get("AEGIS_CONTROLLER", os.path.join(SRC, "build", "aegis-controller"))
AEGISCTL = os.environ.get("AEGISCTL", os.path.join(SRC, "build", "aegisctl"))

procs = []
workdir = tempfile.mkdtemp(prefix="aegis-dp-test.")
counts = {"n": 0, "passed": 0, "failed": 0}


def strays():
    """Processes still running with the work directory on their command line: a supervised
    dataplane whose controller was killed, say (it runs in a process group of its own)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    if workdir.encode() in f.read():
                        out.append(int(d))
            except OSError:
                pass
    return out


def cleanup():
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for pid in strays():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if not os.environ.get("AEGIS_KEEP_TEST_DIR"):
        shutil.rmtree(workdir, ignore_errors=True)


atexit.register(cleanup)
for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda *_: sys.exit(1))


def result(ok, what, notes=()):
    counts["n"] += 1
    counts["passed" if ok else "failed"] += 1
    print(f"{'ok' if ok else 'not ok'} {counts['n']} - {what}")
    if not ok:
        for note in notes:
            for line in str(note).splitlines()[:30]:
                print(f"#   {line}")
    sys.stdout.flush()
    return ok


def run(cmd, timeout=15, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


# ---- certificates --------------------------------------------------------------------------------

def path(name):
    return os.path.join(workdir, name)


def write(rel, text, mode=None):
    """Writes <work>/rel as an editor does (a temp file renamed into place; directories made),
    with mode if given, so a watching controller never reads it half-written."""
    p = path(rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p + ".tmp", "w") as f:
        f.write(text)
    if mode:
        os.chmod(p + ".tmp", mode)
    os.rename(p + ".tmp", p)


def openssl(*args):
    r = run(["openssl", *args])
    if r.returncode != 0:
        sys.exit(f"openssl {' '.join(args[:2])} failed: {r.stderr.decode()}")


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


def make_ca(name="ca", cn="Aegis Test CA"):
    """A self-signed CA: <name>.pem and <name>.key in the work directory."""
    openssl("req", "-x509", *EC, "-keyout", path(name + ".key"), "-out", path(name + ".pem"),
            "-days", "2", "-subj", "/CN=" + cn)


def issue_cert(name, cn, sans=None, ca="ca", usage="serverAuth", days="2"):
    """A P-256 leaf signed by ca: <name>.pem and <name>.key. sans: "DNS:a,IP:127.0.0.1" or None;
    usage: serverAuth or clientAuth; days: negative for an expired one is not possible with
    `x509 -req`, use not_after() instead."""
    openssl("req", *EC, "-keyout", path(name + ".key"), "-out", path(name + ".csr"),
            "-subj", "/CN=" + cn)
    with open(path(name + ".ext"), "w") as f:
        if sans:
            f.write(f"subjectAltName={sans}\n")
        f.write(f"basicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"
                "keyUsage=digitalSignature\n")
    openssl("x509", "-req", "-in", path(name + ".csr"), "-CA", path(ca + ".pem"), "-CAkey",
            path(ca + ".key"), "-CAcreateserial", "-days", days, "-extfile", path(name + ".ext"),
            "-out", path(name + ".pem"))


def make_certs():
    """The set most tests use: ca, a (a.test + b.test), wild (*.wild.test), stored (s.test),
    client (client.test, clientAuth) and fb (a self-signed fallback)."""
    make_ca()
    issue_cert("a", "a.test", "DNS:a.test,DNS:b.test")
    issue_cert("wild", "*.wild.test", "DNS:*.wild.test")
    issue_cert("stored", "s.test", "DNS:s.test")
    issue_cert("client", "client.test", usage="clientAuth")
    openssl("req", "-x509", *EC, "-keyout", path("fb.key"), "-out", path("fb.pem"), "-days", "2",
            "-subj", "/CN=Aegis fallback", "-addext", "subjectAltName=DNS:fallback.invalid")


def read(name):
    with open(path(name)) as f:
        return f.read()


# ---- ports and the upstream ----------------------------------------------------------------------

def free_port():
    """A port free on both 127.0.0.1 and ::1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s4:
            s4.bind(("127.0.0.1", 0))
            port = s4.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s6:
                    s6.bind(("::1", port))
                    return port
            except OSError:
                continue
    sys.exit("no free port")


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(1.5)
        body = json.dumps({"path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


class AppUpstream:
    """An upstream that names itself: every answer is JSON {"id", "path", "headers", "sni"}.
    GET /healthz answers 200, or 503 while self.healthy is False; /sleep/<ms>/... waits first;
    /status/<code> answers that status with the body "from upstream".
    tls: None, or a dict for ssl.SSLContext settings: cert, key (file names in the work
    directory), client_ca (require a client certificate chaining to it), max_version ("1.2").
    The server names seen in TLS handshakes are kept in self.sni."""

    def __init__(self, ident, tls=None):
        self.ident = ident
        self.conns = []  # accepted sockets, for kill()
        self.healthy = True
        self.sni = []
        self.health_hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path == "/healthz":
                    outer.health_hits += 1
                    code = 200 if outer.healthy else 503
                    self.send_response(code)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                m = re.match(r"^/status/(\d+)", self.path)
                if m:
                    self.send_response(int(m.group(1)))
                    self.send_header("Content-Length", "14")
                    self.end_headers()
                    self.wfile.write(b"from upstream\n")
                    return
                m = re.match(r"^/sleep/(\d+)", self.path)
                if m:
                    time.sleep(int(m.group(1)) / 1000)
                body = json.dumps({"id": outer.ident, "path": self.path,
                                   "headers": {k.lower(): v for k, v in self.headers.items()},
                                   "sni": outer.sni[-1] if outer.sni else None}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                outer.conns.append(sock)
                if outer.ctx is not None:
                    # The handshake runs in the request's thread, on its first read.
                    sock = outer.ctx.wrap_socket(sock, server_side=True,
                                                 do_handshake_on_connect=False)
                return sock, addr

            def handle_error(self, request, client_address):
                pass  # failed handshakes are what some tests want

        self.ctx = None
        if tls:
            self.ctx = server_tls_context(tls)
            self.ctx.sni_callback = lambda obj, name, ctx: self.sni.append(name)
        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kill(self):
        """Dies as a crashed upstream does: the port refuses, open connections are closed."""
        self.server.shutdown()
        self.server.server_close()
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def server_tls_context(tls):
    """An ssl.SSLContext for a test server (see AppUpstream)."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path(tls["cert"] + ".pem"), path(tls["key"] + ".key"))
    if tls.get("client_ca"):
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(path(tls["client_ca"] + ".pem"))
    if tls.get("max_version") == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def closed_port():
    """A port nothing listens on (connections to it are refused)."""
    return free_port()


def blackhole():
    """A listening socket that never accepts, its queue filled: a connection to its port hangs
    (the kernel drops the SYN) until the client gives up. Returns (port, sockets to keep)."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    keep = [lsock]
    for _ in range(8):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(0.3)
        try:
            c.connect(("127.0.0.1", port))
            keep.append(c)
        except OSError:
            c.close()
            return port, keep
    sys.exit("blackhole: the listen queue never filled")


def start_ws_upstream(tls=None):
    """A websocket echo server (python3-websockets) on 127.0.0.1; tls as for AppUpstream.
    Returns its port."""
    import asyncio
    import websockets
    ready = threading.Event()
    port = [0]
    ctx = server_tls_context(tls) if tls else None

    async def echo(ws, _path=None):
        async for message in ws:
            await ws.send(message)

    def runner():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(websockets.serve(echo, "127.0.0.1", 0, ssl=ctx))
        port[0] = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()

    threading.Thread(target=runner, daemon=True).start()
    if not ready.wait(10):
        sys.exit("the websocket upstream did not start")
    return port[0]


def ws_echo(port, host, messages, timeout=5):
    """Opens a websocket to 127.0.0.1:port with Host host (HTTP/1.1, plain), sends each message
    and returns the replies, or raises."""
    import asyncio
    import websockets

    async def go():
        sock = socket.create_connection(("127.0.0.1", port))
        async with websockets.connect(f"ws://{host}:{port}/ws", sock=sock,
                                      open_timeout=timeout) as ws:
            replies = []
            for m in messages:
                await ws.send(m)
                replies.append(await asyncio.wait_for(ws.recv(), timeout))
            return replies

    return asyncio.run(go())


# ---- the dataplane -------------------------------------------------------------------------------

def sanitizer_env():
    """libh2o has no frame pointers: ASan's fast unwinder stops in it, and the h2o suppressions
    of tests/lsan.supp name frames it would not see. The slow unwinder is only slower."""
    env = dict(os.environ)
    if env.get("ASAN_OPTIONS"):
        env["ASAN_OPTIONS"] += ":fast_unwind_on_malloc=0"
    return env


def track(p):
    """Registers a process to be killed at exit; returns it."""
    procs.append(p)
    return p


def start_dataplane(cfg, name, ports, args=(), workers=2):
    """Writes cfg (a dict; None: no --config) and starts the dataplane with args, waiting until
    every port of ports accepts. Returns (process, log file)."""
    cmd = [DATAPLANE, "--workers", str(workers), *args]
    if cfg is not None:
        cfg_path = path(name + ".json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        cmd += ["--config", cfg_path]
    err = open(path(name + ".log"), "w+")
    p = track(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=sanitizer_env()))
    deadline = time.time() + 15
    while time.time() < deadline:
        if p.poll() is not None:
            break
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p, err
        except OSError:
            time.sleep(0.05)
    err.seek(0)
    sys.exit(f"{name}: the dataplane did not start:\n{err.read()}")


def stop(p, err, timeout=20):
    """SIGTERM, then the exit status (None when it had to be killed) and the log's text."""
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = None
    err.seek(0)
    return rc, err.read()


def start_controller(name, hp, hs, *args):
    """aegis-controller watching <work>/res with its state in <work>/state, its supervised
    dataplane on 127.0.0.1:hp (HTTP) and :hs (HTTPS). Returns (process, log file)."""
    log = open(path(name + ".log"), "w+")
    p = track(subprocess.Popen(
        [CONTROLLER, "--watch", path("res"), "--state-dir", path("state"),
         "--http", f"127.0.0.1:{hp}", "--https", f"127.0.0.1:{hs}", "--workers", "1",
         "--dataplane-bin", DATAPLANE, *args],
        stdout=subprocess.DEVNULL, stderr=log, env=sanitizer_env()))
    return p, log


# ---- clients -------------------------------------------------------------------------------------

def curl(url, *args, resolve=None):
    cmd = ["curl", "-sS", "--max-time", "10", "--cacert", path("ca.pem"), "-D", "-",
           "-o", path("body"), "-w", "\n%{http_code} %{http_version}", *args]
    for host, port, addr in resolve or []:
        cmd += ["--resolve", f"{host}:{port}:{addr}"]
    r = run(cmd + [url])
    out = r.stdout.decode(errors="replace")
    status = out.rsplit("\n", 1)[-1].split() if r.returncode == 0 else ["000", "0"]
    headers = {}
    for line in out.split("\n"):
        if ":" in line and not line.startswith("HTTP/"):
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    try:
        body = open(path("body"), "rb").read().decode(errors="replace")
    except OSError:
        body = ""
    return int(status[0]), status[1], headers, body, r.stderr.decode(errors="replace")


def s_client(port, servername=None, *args, addr="127.0.0.1", wait=0.0):
    cmd = ["openssl", "s_client", "-connect", f"{addr}:{port}", "-CAfile", path("ca.pem")]
    if servername:
        cmd += ["-servername", servername]
    p = subprocess.Popen(cmd + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # TLS 1.3 tickets arrive after the handshake: keep the connection open a moment for them.
    time.sleep(wait)
    out, err = p.communicate(b"", timeout=15)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def served_cert(port, servername, *args):
    rc, out, err = s_client(port, servername, *args)
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    if not m:
        return None, out + err
    r = run(["openssl", "x509", "-noout", "-subject", "-ext", "subjectAltName"],
            input=m.group(0).encode())
    return r.stdout.decode(), out


def session(port, servername, version, sess_out=None, sess_in=None):
    args = [version]
    if sess_out:
        args += ["-sess_out", sess_out]
    if sess_in:
        args += ["-sess_in", sess_in]
    rc, out, err = s_client(port, servername, *args, wait=0.4 if sess_out else 0.0)
    m = re.search(r"^(New|Reused),", out, re.M)
    return m.group(1) if m else "failed", out + err


def admin(sock, method, target, body=None, *args):
    """One admin API request over the unix socket sock (curl --unix-socket). body: bytes, a str or
    a dict (sent as JSON). Returns (status, parsed JSON or None, headers)."""
    cmd = ["curl", "-sS", "--max-time", "30", "--unix-socket", sock, "-X", method, "-D", "-",
           "-o", path("admin-body"), "-w", "\n%{http_code}", *args]
    if body is not None:
        if isinstance(body, dict):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        with open(path("admin-req"), "wb") as f:
            f.write(body)
        cmd += ["--data-binary", "@" + path("admin-req")]
    r = run(cmd + ["http://localhost" + target], timeout=40)
    out = r.stdout.decode(errors="replace")
    status = int(out.rsplit("\n", 1)[-1] or 0) if r.returncode == 0 else 0
    headers = {}
    for line in out.split("\n"):
        if ":" in line and not line.startswith("HTTP/"):
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    try:
        doc = json.load(open(path("admin-body")))
    except (OSError, ValueError):
        doc = None
    return status, doc, headers


def wait_for(pred, timeout=15):
    """Polls pred() until it is true; returns whether it became true."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def no_sanitizer_report(log):
    return ("ERROR: AddressSanitizer" not in log and "LeakSanitizer" not in log and
            "runtime error" not in log)


def summary(started):
    """Prints the totals; the exit status for main()."""
    print(f"# {time.time() - started:.1f} s")
    print(f"{counts['passed']} passed, {counts['failed']} failed")
    return 1 if counts["failed"] else 0


# ---- metrics and the access log ------------------------------------------------------------------

def scrape(port, addr="127.0.0.1", path_="/metrics"):
    """GET http://addr:port/metrics: (status, content type, body text)."""
    host = f"[{addr}]" if ":" in addr else addr
    r = run(["curl", "-sS", "--max-time", "10", "-D", path("scrape.headers"), "-o",
             path("scrape.body"), "-w", "%{http_code}", f"http://{host}:{port}{path_}"])
    ctype = ""
    try:
        for line in open(path("scrape.headers")).read().splitlines():
            if line.lower().startswith("content-type:"):
                ctype = line.split(":", 1)[1].strip()
        body = open(path("scrape.body")).read()
    except OSError:
        body = ""
    return int(r.stdout.decode() or 0), ctype, body


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """The samples of a Prometheus text exposition: {(name, ((label, value), ...)): float}, label
    values unescaped and labels sorted."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = tuple(sorted((k, re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n"
                                          else e.group(1), v))
                              for k, v in _LABEL.findall(m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def metric(samples, name, **labels):
    """One sample's value (0.0 when absent: zero per-host counters are left out)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


_LOGFMT = re.compile(r'([a-z_]+)=("(?:[^"\\]|\\.)*"|[^ "]*)(?: |$)')


def parse_logfmt(line):
    """The fields of one access-log line (docs/metrics.md): a list of (key, value) in order,
    quoted values unescaped (\\" \\\\ \\xHH) to bytes decoded as latin-1; None when the line does
    not parse as a whole."""
    fields, pos = [], 0
    while pos < len(line):
        m = _LOGFMT.match(line, pos)
        if not m:
            return None
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r'\\x([0-9a-f]{2})|\\(["\\])',
                       lambda e: chr(int(e.group(1), 16)) if e.group(1) else e.group(2), v[1:-1])
        fields.append((m.group(1), v))
        pos = m.end()
    return fields
