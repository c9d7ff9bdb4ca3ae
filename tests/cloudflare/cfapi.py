#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# A Cloudflare v4 API test server (python3 stdlib + python3-cryptography), written from
# Cloudflare's public API reference (developers.cloudflare.com/api: Origin CA certificates,
# Zones, DNS records) and the error answers users report. It serves, under /client/v4:
#
#   POST   /certificates                     create an Origin CA certificate (signs the CSR with
#                                            this server's own CA, so the certificate is real)
#   GET    /certificates?zone_id=            list (paginated)          GET /certificates/{id}
#   DELETE /certificates/{id}                revoke
#   GET    /zones?name=                      zones lookup (paginated)
#   GET    /zones/{zone}/dns_records         list, filters type/name/content (paginated)
#   POST   /zones/{zone}/dns_records         create
#   DELETE /zones/{zone}/dns_records/{id}    delete
#
# Authentication as the API does it: `Authorization: Bearer <token>` (a token has permissions:
# "ssl" = Zone - SSL and Certificates - Edit, "dns" = Zone - DNS - Edit, "zone" = Zone - Zone -
# Read), `X-Auth-User-Service-Key` (Origin CA key: the certificates endpoints only), or
# `X-Auth-Email` + `X-Auth-Key` (global key: everything). Every answer is the envelope
# {"success", "errors": [{"code", "message"}], "messages", "result"[, "result_info"]}.
#
# Error codes used (the API's, as documented or reported): 10000 Authentication error (403:
# valid credentials without the permission, an unknown Origin CA key), 9109 Invalid access token
# (403), 6003 Invalid request headers with error_chain 6111 (400: a malformed token), 9106
# missing credentials (400), 7003 Could not route ... object identifier is invalid (400: an
# unknown zone id), 7000 No route for that URI (404), 81044 Record does not exist (404), 81058 An
# identical record already exists (400), 971 Please wait and consider throttling your request
# speed (429 with Retry-After), 1010 for a hostname that is not in a zone of the account (the
# exact code Cloudflare uses there is not documented: an assumption), 1004 for a bad request
# body.
#
# DNS records are pushed to pebble-challtestsrv (POST /set-txt, /clear-txt on its management
# port) so Pebble validates DNS-01 against them; a zone made with push=False keeps its records
# to itself (a validation that must fail).
#
# Test controls (in-process: the attributes of CFAPI): down (stop listening) / up, status_all
# (answer every request with this HTTP status, e.g. 503), throttle (answer this many requests
# with 429), requests (a log of (method, path, auth kind)).
#
# Standalone: cfapi.py PORT [CHALLTESTSRV_MGMT_PORT] serves zones example.test with token
# "token-all" (every permission) and Origin CA key "v1.0-origin-key".

import datetime
import http.server
import json
import secrets
import sys
import threading
import urllib.parse
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

VALIDITIES = (7, 30, 90, 365, 730, 1095, 5475)
REQUEST_TYPES = ("origin-rsa", "origin-ecc", "keyless-certificate")


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Fail(Exception):
    def __init__(self, status, code, message, chain=None, headers=None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.chain, self.headers = chain, headers or {}


class CFAPI:
    def __init__(self, challtestsrv_mgmt=None):
        self.mgmt = challtestsrv_mgmt
        self.tokens = {}        # token -> set of permissions
        self.service_keys = set()
        self.global_keys = {}   # email -> key
        self.zones = {}         # id -> {"name", "push"}
        self.records = {}       # id -> record
        self.certs = {}         # id -> certificate object
        self.requests = []
        self.status_all = 0
        self.throttle = 0
        self.lock = threading.Lock()
        self.server = None
        self.port = None
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CloudFlare, Inc."),
                          x509.NameAttribute(NameOID.COMMON_NAME,
                                             "Test CloudFlare Origin Certificate Authority")])
        self.ca_key = key
        self.ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now() - datetime.timedelta(days=1))
                   .not_valid_after(now() + datetime.timedelta(days=6000))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), True)
                   .sign(key, hashes.SHA256()))

    # ---- set-up -----------------------------------------------------------------------------

    def add_zone(self, name, push=True):
        zid = secrets.token_hex(16)
        self.zones[zid] = {"name": name, "push": push}
        return zid

    def ca_pem(self):
        return self.ca.public_bytes(serialization.Encoding.PEM).decode()

    def start(self, port=0):
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                api.handle(self, "GET")

            def do_POST(self):
                api.handle(self, "POST")

            def do_DELETE(self):
                api.handle(self, "DELETE")

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        srv.daemon_threads = True
        self.server, self.port = srv, srv.server_address[1]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        return self.port

    def down(self):
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def up(self):
        self.start(self.port)

    def records_of(self, zone_name):
        with self.lock:
            return [r for r in self.records.values() if r["zone_name"] == zone_name]

    # ---- the envelope -------------------------------------------------------------------------

    @staticmethod
    def reply(h, status, body, headers=None):
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("cf-ray", secrets.token_hex(8) + "-TST")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    @staticmethod
    def ok(result, result_info=None):
        body = {"success": True, "errors": [], "messages": [], "result": result}
        if result_info is not None:
            body["result_info"] = result_info
        return body

    def handle(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((method, url.path, self.auth_kind(h)))
            status_all, throttled = self.status_all, self.throttle > 0
            if throttled:
                self.throttle -= 1
        try:
            if status_all:
                raise Fail(status_all, 1100 if status_all >= 500 else 10000,
                           "Internal Server Error" if status_all >= 500 else "refused")
            if throttled:
                raise Fail(429, 971, "Please wait and consider throttling your request speed",
                           headers={"Retry-After": "1"})
            parts = [p for p in url.path.split("/") if p]
            if parts[:2] != ["client", "v4"]:
                raise Fail(404, 7000, "No route for that URI")
            body = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    raise Fail(400, 6007, "Malformed JSON in request body")
            status, result = self.route(h, method, parts[2:], query, body)
            self.reply(h, status, result)
        except Fail as f:
            err = {"code": f.code, "message": f.message}
            if f.chain:
                err["error_chain"] = f.chain
            self.reply(h, f.status, {"success": False, "errors": [err], "messages": [],
                                     "result": None}, f.headers)

    # ---- authentication -----------------------------------------------------------------------

    @staticmethod
    def auth_kind(h):
        if h.headers.get("Authorization"):
            return "token"
        if h.headers.get("X-Auth-User-Service-Key"):
            return "service-key"
        if h.headers.get("X-Auth-Key"):
            return "global-key"
        return "none"

    def authorize(self, h, need, service_key_ok=False):
        auth = h.headers.get("Authorization")
        if auth is not None:
            if not auth.startswith("Bearer ") or not auth[7:] or any(
                    c.isspace() for c in auth[7:]):
                raise Fail(400, 6003, "Invalid request headers",
                           [{"code": 6111, "message": "Invalid format for Authorization header"}])
            perms = self.tokens.get(auth[7:])
            if perms is None:
                raise Fail(403, 9109, "Invalid access token")
            if need not in perms:
                raise Fail(403, 10000, "Authentication error")
            return
        sk = h.headers.get("X-Auth-User-Service-Key")
        if sk is not None:
            if not service_key_ok or sk not in self.service_keys:
                raise Fail(403, 10000, "Authentication error")
            return
        email, key = h.headers.get("X-Auth-Email"), h.headers.get("X-Auth-Key")
        if email is not None or key is not None:
            if not email or not key:
                raise Fail(400, 9106, "Missing X-Auth-Email or X-Auth-Key header")
            if self.global_keys.get(email) != key:
                raise Fail(403, 9103, "Unknown X-Auth-Key or X-Auth-Email")
            return
        raise Fail(400, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")

    # ---- routes ----------------------------------------------------------------------------

    def route(self, h, method, parts, query, body):
        if parts[:1] == ["certificates"]:
            self.authorize(h, "ssl", service_key_ok=True)
            if method == "POST" and len(parts) == 1:
                return 200, self.ok(self.create_certificate(body))
            if method == "GET" and len(parts) == 1:
                items = sorted(self.certs.values(), key=lambda c: c["id"])
                zid = (query.get("zone_id") or [None])[0]
                if zid is not None:
                    if zid not in self.zones:
                        raise Fail(400, 1003, "Invalid or missing zone id.")
                    zname = self.zones[zid]["name"]
                    items = [c for c in items if any(n == zname or n.endswith("." + zname)
                                                     for n in c["hostnames"])]
                return 200, self.page(items, query)
            if len(parts) == 2 and parts[1] in self.certs:
                c = self.certs[parts[1]]
                if method == "GET":
                    return 200, self.ok(c)
                if method == "DELETE":
                    c["revoked_at"] = iso(now())
                    return 200, self.ok({"id": c["id"], "revoked_at": c["revoked_at"]})
            if len(parts) == 2:
                raise Fail(404, 1001, "Certificate not found")
        if parts[:1] == ["zones"]:
            if len(parts) == 1 and method == "GET":
                self.authorize(h, "zone")
                name = (query.get("name") or [None])[0]
                items = [{"id": zid, "name": z["name"], "status": "active", "paused": False,
                          "type": "full"} for zid, z in sorted(self.zones.items())
                         if name is None or z["name"] == name]
                return 200, self.page(items, query)
            if len(parts) >= 3 and parts[2] == "dns_records":
                self.authorize(h, "dns")
                zid = parts[1]
                if zid not in self.zones:
                    raise Fail(400, 7003, f"Could not route to /zones/{zid}/dns_records, perhaps "
                               "your object identifier is invalid?")
                return self.dns(method, zid, parts[3:], query, body)
        raise Fail(404, 7000, "No route for that URI")

    def page(self, items, query):
        try:
            page = max(int((query.get("page") or ["1"])[0]), 1)
            per = min(max(int((query.get("per_page") or ["20"])[0]), 1), 100)
        except ValueError:
            raise Fail(400, 1004, "page and per_page must be numbers")
        total = len(items)
        pages = (total + per - 1) // per
        chunk = items[(page - 1) * per:page * per]
        return self.ok(chunk, {"page": page, "per_page": per, "count": len(chunk),
                               "total_count": total, "total_pages": pages})

    def zone_of(self, name):
        name = name.lower().rstrip(".")
        best = None
        for zid, z in self.zones.items():
            if name == z["name"] or name.endswith("." + z["name"]):
                if best is None or len(z["name"]) > len(self.zones[best]["name"]):
                    best = zid
        return best

    def create_certificate(self, body):
        if not isinstance(body, dict):
            raise Fail(400, 1004, "The request body is missing")
        names, rtype = body.get("hostnames"), body.get("request_type")
        validity, csr_pem = body.get("requested_validity", 5475), body.get("csr")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise Fail(400, 1004, "hostnames must be a non-empty list")
        if rtype not in REQUEST_TYPES:
            raise Fail(400, 1004, "request_type must be origin-rsa, origin-ecc or "
                       "keyless-certificate")
        if validity not in VALIDITIES:
            raise Fail(400, 1004, "requested_validity must be one of 7, 30, 90, 365, 730, 1095, "
                       "5475")
        for n in names:
            base = n[2:] if n.startswith("*.") else n
            if "*" in base or base.count(".") < 1 or self.zone_of(base) is None:
                raise Fail(400, 1010, f"Failed to validate requested hostname {n}: This zone "
                           "is either not part of your account, or you do not have access to it. "
                           "Please contact support if using a multi-user organization.")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except (ValueError, AttributeError):
            raise Fail(400, 1004, "Invalid CSR")
        if not csr.is_signature_valid:
            raise Fail(400, 1004, "Invalid CSR: bad signature")
        pub = csr.public_key()
        if (rtype == "origin-rsa") != isinstance(pub, rsa.RSAPublicKey) or (
                rtype == "origin-ecc" and not isinstance(pub, ec.EllipticCurvePublicKey)):
            raise Fail(400, 1004, f"The CSR's key does not match request_type {rtype}")
        serial = x509.random_serial_number()
        nb = now() - datetime.timedelta(minutes=5)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CloudFlare, Inc."),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "CloudFlare Origin CA"),
                    x509.NameAttribute(NameOID.COMMON_NAME, "CloudFlare Origin Certificate")]))
                .issuer_name(self.ca.subject).public_key(pub).serial_number(serial)
                .not_valid_before(nb).not_valid_after(nb + datetime.timedelta(days=validity))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                               False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                      x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                               False)
                .sign(self.ca_key, hashes.SHA256()))
        cid = str(serial)  # the API's certificate id is the serial number in decimal
        obj = {"id": cid, "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
               "hostnames": names, "expires_on": str(cert.not_valid_after) + " +0000 UTC",
               "request_type": rtype, "requested_validity": validity, "csr": csr_pem}
        with self.lock:
            self.certs[cid] = obj
        return obj

    # ---- DNS records ----------------------------------------------------------------------

    def push(self, name):
        """Sets challtestsrv's TXT values of name to what the zone holds."""
        if self.mgmt is None:
            return
        values = [r["content"] for r in self.records.values()
                  if r["name"] == name and self.zones[r["zone_id"]]["push"]]
        self.mgmt_post("clear-txt", {"host": name + "."})
        for v in values:
            self.mgmt_post("set-txt", {"host": name + ".", "value": v})

    def mgmt_post(self, ep, body):
        req = urllib.request.Request(f"http://127.0.0.1:{self.mgmt}/{ep}",
                                     data=json.dumps(body).encode(), method="POST")
        urllib.request.urlopen(req, timeout=5).read()

    def dns(self, method, zid, rest, query, body):
        zone = self.zones[zid]
        if not rest and method == "GET":
            with self.lock:
                items = sorted(self.records.values(), key=lambda r: r["created_on"])
            for f in ("type", "name", "content"):
                v = (query.get(f) or [None])[0]
                if v is not None:
                    items = [r for r in items if r[f].lower() == v.lower()]
            return 200, self.page([r for r in items if r["zone_id"] == zid], query)
        if not rest and method == "POST":
            if not isinstance(body, dict) or body.get("type") not in ("TXT", "A", "AAAA",
                                                                      "CNAME"):
                raise Fail(400, 9004, "DNS Validation Error: type is required")
            name = str(body.get("name", "")).lower().rstrip(".")
            if name != zone["name"] and not name.endswith("." + zone["name"]):
                raise Fail(400, 9005, f"Content for {body.get('type')} record is invalid: the "
                           f"name is not in zone {zone['name']}")
            content = body.get("content")
            if not isinstance(content, str) or not content:
                raise Fail(400, 9005, "Content for TXT record is invalid.")
            ttl = body.get("ttl", 1)
            if not isinstance(ttl, int) or (ttl != 1 and not 60 <= ttl <= 86400):
                raise Fail(400, 9021, "Invalid TTL. Must be between 60 and 86400 seconds, or 1 "
                           "for Automatic.")
            with self.lock:
                for r in self.records.values():
                    if (r["zone_id"], r["type"], r["name"], r["content"]) == (
                            zid, body["type"], name, content):
                        raise Fail(400, 81058, "An identical record already exists.")
                t = iso(now())
                rec = {"id": secrets.token_hex(16), "zone_id": zid, "zone_name": zone["name"],
                       "name": name, "type": body["type"], "content": content,
                       "proxiable": False, "proxied": False, "ttl": ttl, "locked": False,
                       "meta": {"auto_added": False, "source": "primary"}, "comment": None,
                       "tags": [], "created_on": t, "modified_on": t}
                self.records[rec["id"]] = rec
                self.push(name)
            return 200, self.ok(rec)
        if len(rest) == 1 and method == "DELETE":
            with self.lock:
                rec = self.records.get(rest[0])
                if rec is None or rec["zone_id"] != zid:
                    raise Fail(404, 81044, "Record does not exist.")
                del self.records[rest[0]]
                self.push(rec["name"])
            return 200, self.ok({"id": rest[0]})
        raise Fail(404, 7000, "No route for that URI")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: cfapi.py PORT [CHALLTESTSRV_MGMT_PORT]")
    api = CFAPI(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    api.tokens["token-all"] = {"ssl", "dns", "zone"}
    api.service_keys.add("v1.0-origin-key")
    api.add_zone("example.test")
    port = api.start(int(sys.argv[1]))
    print(f"cfapi on http://127.0.0.1:{port}/client/v4", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
