#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
#
# A Kubernetes API test server (not a test itself): plain HTTP on 127.0.0.1, bearer-token auth,
# an in-memory store with one global resourceVersion counter, written from the API conventions so
# that the real kubectl and the controller's Kubernetes client can be tested against it. What is
# faithful and what is simplified: tests/k8s/README.md.
#
# Use from a test:
#     srv = APIServer(token="t", history=50, bookmark_interval=0.5).start()
#     write_kubeconfig(path, srv.url, "t")
#     ... srv.stop()
# or standalone: apiserver.py [--port N] [--token T] [--history N] [--kubeconfig PATH]

import argparse
import base64
import collections
import copy
import datetime
import http.server
import json
import re
import os
import socketserver
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid

VERSION = {"major": "1", "minor": "29", "gitVersion": "v1.29.0-aegis-test", "gitCommit": "0" * 40,
           "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.21",
           "compiler": "gc", "platform": "linux/amd64"}
# Named limits: a request body larger than this is refused (413), as the real server does at 3 MiB.
MAX_BODY = 3 * 1024 * 1024
# Default and largest page size of a list (the real server has no default; kubectl asks 500).
MAX_LIMIT = 10000
TABLE_MEDIA = "as=Table"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Success" if code < 300 else "Failure", "message": message,
            "reason": reason, "code": code}
    if details:
        body["details"] = details
    return body


# Per request: the fieldValidation mode and the warnings for the Warning header.
_request = threading.local()


class APIError(Exception):
    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.body = status_body(code, reason, message, details)
        self.code = code


def not_found(rt, name):
    return APIError(404, "NotFound", f'{rt.qualified} "{name}" not found',
                    {"name": name, "group": rt.group, "kind": rt.plural})


class ResourceType:
    """One served resource: group/version/plural, its kind, scope and behaviour flags."""

    def __init__(self, group, version, plural, kind, namespaced, singular=None, short=(),
                 categories=(), status=False, generation=False, columns=None, crd=None):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.status, self.generation = namespaced, status, generation
        self.singular = singular or kind.lower()
        self.short, self.categories = list(short), list(categories)
        self.columns = columns  # additionalPrinterColumns, for the Table output
        self.crd = crd  # name of the CRD that defined it
        self.schema = None  # its openAPIV3Schema
        self.storage_key = (group, plural)  # one storage for all versions of a group resource
        self.to_storage = self.from_storage = lambda o: o

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural


# events.k8s.io/v1 Events and core v1 Events are one resource served in two shapes (the real
# server converts between them): stored in the core shape, renamed on the way in and out.
_EVENT_FIELDS = [("involvedObject", "regarding"), ("message", "note"), ("count", "deprecatedCount"),
                 ("source", "deprecatedSource"), ("firstTimestamp", "deprecatedFirstTimestamp"),
                 ("lastTimestamp", "deprecatedLastTimestamp"),
                 ("reportingComponent", "reportingController")]


def _rename(obj, pairs):
    for a, b in pairs:
        if a in obj:
            obj[b] = obj.pop(a)
    return obj


def _events_v1():
    rt = ResourceType("events.k8s.io", "v1", "events", "Event", True, short=["ev"])
    rt.storage_key = ("", "events")
    rt.to_storage = lambda o: _rename(o, [(b, a) for a, b in _EVENT_FIELDS])
    rt.from_storage = lambda o: _rename(o, _EVENT_FIELDS)
    return rt


def _secret_in(obj):
    """stringData is write-only: merged into data, base64-encoded, as the real server does."""
    sd = obj.pop("stringData", None)
    if isinstance(sd, dict):
        data = obj.get("data") or {}
        for k, v in sd.items():
            data[k] = base64.b64encode(str(v).encode()).decode()
        obj["data"] = data
    return obj


def _secrets():
    rt = ResourceType("", "v1", "secrets", "Secret", True)
    rt.to_storage = _secret_in
    return rt


BUILTIN = [
    ResourceType("", "v1", "namespaces", "Namespace", False, short=["ns"], status=True),
    _secrets(),
    ResourceType("", "v1", "events", "Event", True, short=["ev"]),
    ResourceType("coordination.k8s.io", "v1", "leases", "Lease", True),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    _events_v1(),
    ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                 "CustomResourceDefinition", False, short=["crd", "crds"], status=True,
                 generation=True),
]


# ---- JSONPath (the subset additionalPrinterColumns use) and selectors --------------------------

_JP_TOKEN = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*'
                       r'["\']([^"\']*)["\']\)\]|\[\*\]')


def jsonpath(obj, path):
    """Evaluates .a.b, [n], [*] and [?(@.k=="v")]; returns the list of results."""
    cur, pos = [obj], 0
    while pos < len(path):
        m = _JP_TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"unsupported JSONPath {path!r} at {pos}")
        pos = m.end()
        nxt = []
        for v in cur:
            if m.group(1) is not None:
                if isinstance(v, dict) and m.group(1) in v:
                    nxt.append(v[m.group(1)])
            elif m.group(2) is not None:
                if isinstance(v, list) and int(m.group(2)) < len(v):
                    nxt.append(v[int(m.group(2))])
            elif m.group(3) is not None:
                if isinstance(v, list):
                    nxt.extend(e for e in v if isinstance(e, dict)
                               and str(dotted(e, m.group(3))) == m.group(4))
            elif isinstance(v, list):
                nxt.extend(v)
        cur = nxt
    return cur


def dotted(obj, path):
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


def parse_selector(text, what):
    """A label or field selector: a list of (key, op, values); ops =, !=, in, notin, exists, !."""
    reqs = []
    if not text:
        return reqs
    for part in re.split(r',(?![^(]*\))', text):
        part = part.strip()
        m = re.fullmatch(r'([^\s!=]+)\s*(==|=|!=)\s*(\S*)', part)
        if m:
            reqs.append((m.group(1), "!=" if m.group(2) == "!=" else "=", [m.group(3)]))
            continue
        m = re.fullmatch(r'(\S+)\s+(in|notin)\s+\(([^)]*)\)', part)
        if m and what == "label":
            reqs.append((m.group(1), m.group(2), [v.strip() for v in m.group(3).split(",")]))
            continue
        m = re.fullmatch(r'(!?)([A-Za-z0-9_./-]+)', part)
        if m and what == "label":
            reqs.append((m.group(2), "!" if m.group(1) else "exists", []))
            continue
        raise APIError(400, "BadRequest", f"unable to parse requirement: {part!r} "
                       f"in {what}Selector")
    return reqs


def selector_matches(reqs, get):
    for key, op, vals in reqs:
        v = get(key)
        if op == "=" and v != vals[0]:
            return False
        if op == "!=" and v == vals[0]:
            return False
        if op == "in" and v not in vals:
            return False
        if op == "notin" and v in vals:
            return False
        if op == "exists" and v is None:
            return False
        if op == "!" and v is not None:
            return False
    return True


def field_value(obj, key):
    v = dotted(obj, key)
    return None if v is None else str(v)


# ---- patches ----------------------------------------------------------------------------------

def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def strategic_merge_patch(target, patch):
    """The part of a strategic merge patch kubectl apply sends for the built-in kinds served here
    (Secrets, Namespaces, Leases, EndpointSlices, Events have no merge-keyed lists that matter):
    a merge patch, minus the $-directives."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: v for k, v in patch.items() if not k.startswith("$")}
    if patch.get("$patch") == "delete":
        return None
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if k.startswith("$setElementOrder/") or k.startswith("$deleteFromPrimitiveList/"):
            continue
        if v is None:
            out.pop(k, None)
        else:
            merged = strategic_merge_patch(out.get(k), v)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
    return out


def json_patch(target, ops):
    """RFC 6902 JSON patch (add, remove, replace, test), for completeness."""
    doc = copy.deepcopy(target)

    def walk(path):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        return parent, parts[-1]

    try:
        for op in ops:
            parent, key = walk(op["path"])
            if isinstance(parent, list):
                idx = len(parent) if key == "-" else int(key)
            if op["op"] in ("add", "replace"):
                if isinstance(parent, list):
                    if op["op"] == "add":
                        parent.insert(idx, op["value"])
                    else:
                        parent[idx] = op["value"]
                else:
                    if op["op"] == "replace" and key not in parent:
                        raise KeyError(key)
                    parent[key] = op["value"]
            elif op["op"] == "remove":
                del parent[idx if isinstance(parent, list) else key]
            elif op["op"] == "test":
                if (parent[idx] if isinstance(parent, list) else parent.get(key)) != op["value"]:
                    raise APIError(422, "Invalid", f"test operation failed at {op['path']}")
            else:
                raise APIError(400, "BadRequest", f"unsupported JSON patch op {op['op']!r}")
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise APIError(422, "Invalid", f"the JSON patch does not apply: {e}") from e
    return doc


# ---- structural schema: pruning, defaulting, validation --------------------------------------

_PATTERNS = {}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def _type_ok(schema, v):
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(v, (int, str)) and not isinstance(v, bool)
    t = schema.get("type")
    if t is None:
        return True
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, _TYPES.get(t, object))


def structural(schema, v, path, errs, unknown, apply=True):
    """What the real server does with a custom resource against the CRD's openAPIV3Schema: drops
    unknown fields (listed in `unknown`) unless x-kubernetes-preserve-unknown-fields, drops nulls
    of non-nullable fields, fills in defaults, and validates type, required, enum, pattern,
    lengths, item counts, bounds, oneOf and anyOf. Not checked: format and
    x-kubernetes-validations (CEL). Returns v, maybe changed (only when apply)."""
    if not _type_ok(schema, v):
        errs.append((path, f'Invalid value: "{type(v).__name__}": {path} in body must be of '
                     f'type {schema.get("type")}'))
        return v
    if isinstance(v, dict):
        props = schema.get("properties") or {}
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        for k in list(v):
            if path == "" and k == "metadata":
                continue  # metadata is the server's, never pruned
            sub = props.get(k, addl if isinstance(addl, dict) else None)
            child = f"{path}.{k}" if path else k
            if sub is None:
                if not preserve and not addl and not (path == "" and k in ("apiVersion", "kind",
                                                                              "metadata")):
                    unknown.append(child)
                    if apply:
                        del v[k]
                continue
            if v[k] is None and not sub.get("nullable"):
                if apply:
                    del v[k]
                continue
            v[k] = structural(sub, v[k], child, errs, unknown, apply)
        if apply:
            for k, sub in props.items():
                if k not in v and "default" in sub:
                    v[k] = structural(sub, copy.deepcopy(sub["default"]),
                                      f"{path}.{k}" if path else k, errs, [], apply)
        for k in schema.get("required") or []:
            if k not in v:
                errs.append((f"{path}.{k}" if path else k, "Required value"))
    elif isinstance(v, list):
        for i, item in enumerate(v):
            if isinstance(schema.get("items"), dict):
                v[i] = structural(schema["items"], item, f"{path}[{i}]", errs, unknown, apply)
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errs.append((path, f"Too many: {len(v)}: must have at most {schema['maxItems']} "
                         "items"))
        if "minItems" in schema and len(v) < schema["minItems"]:
            errs.append((path, f"Invalid value: {len(v)}: {path} in body should have at least "
                         f"{schema['minItems']} items"))
    elif isinstance(v, str):
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errs.append((path, f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "minLength" in schema and len(v) < schema["minLength"]:
            errs.append((path, f'Invalid value: "{v}": {path} in body should be at least '
                         f"{schema['minLength']} chars long"))
        if "pattern" in schema:
            rx = _PATTERNS.setdefault(schema["pattern"], re.compile(schema["pattern"]))
            if not rx.search(v):
                errs.append((path, f'Invalid value: "{v}": {path} in body should match '
                             f"'{schema['pattern']}'"))
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and v < schema["minimum"]:
            errs.append((path, f"Invalid value: {v}: {path} in body should be greater than or "
                         f"equal to {schema['minimum']}"))
        if "maximum" in schema and v > schema["maximum"]:
            errs.append((path, f"Invalid value: {v}: {path} in body should be less than or "
                         f"equal to {schema['maximum']}"))
    if "enum" in schema and v not in schema["enum"]:
        errs.append((path, f"Unsupported value: {json.dumps(v)}: supported values: "
                     + ", ".join(json.dumps(e) for e in schema["enum"])))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            ok = 0
            for alt in schema[key]:
                e2 = []
                structural(alt, copy.deepcopy(v), path, e2, [], apply=False)
                ok += not e2
            if (key == "oneOf" and ok != 1) or (key == "anyOf" and ok == 0):
                errs.append((path, f"Invalid value: {path} must validate "
                             f"{'one and only one' if key == 'oneOf' else 'at least one'} "
                             f"schema ({key})"))
    return v


# ---- the store --------------------------------------------------------------------------------

# prev: the object before a MODIFIED, for watches whose selector it enters or leaves.
Event = collections.namedtuple("Event", "rv key type obj prev")


class Store:
    """Objects by (storage key, namespace, name), one resourceVersion counter, and the history of
    the last `history` events that watches replay; older versions are gone (410)."""

    def __init__(self, history):
        self.cond = threading.Condition()
        self.rv = 1
        self.objects = {}
        self.events = collections.deque()
        self.history = history
        self.compacted = 0  # events with rv <= this are no longer kept
        self.closed = False
        self.drops = 0  # drop_watches() count: a watch that sees it change ends

    def record(self, rt, etype, obj, prev=None):
        """Called with cond held: assigns the next resourceVersion and logs the event."""
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append(Event(self.rv, rt.storage_key, etype, copy.deepcopy(obj),
                                 copy.deepcopy(prev)))
        while len(self.events) > self.history:
            self.compacted = self.events.popleft().rv
        self.cond.notify_all()


class APIServer:
    def __init__(self, token="aegis-test-token", port=0, history=1000, bookmark_interval=1.0,
                 log=None, tls=False):
        self.token = token
        self.store = Store(history)
        self.bookmark_interval = bookmark_interval
        self.log = log
        self.types = {}  # (group, version, plural) -> ResourceType
        for rt in BUILTIN:
            self.types[(rt.group, rt.version, rt.plural)] = rt
        self.requests = []  # (method, path) of every request, for tests
        self.faults = []  # [method, compiled path regex, code, times left], see inject()
        self.httpd = _Server(("127.0.0.1", port), _Handler)
        self.httpd.api = self
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ca_pem = None
        if tls:
            # kubectl (client-go) sends a bearer token only over TLS (kubernetes/kubectl#744).
            self.ca_pem, chain, key = make_tls_material()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            with tempfile.TemporaryDirectory() as d:
                cpath, kpath = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
                with open(cpath, "wb") as f:
                    f.write(chain)
                with open(kpath, "wb") as f:
                    f.write(key)
                ctx.load_cert_chain(cpath, kpath)
            # The handshake happens in the request thread: a stalled client blocks only itself.
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True,
                                                do_handshake_on_connect=False)
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = None
        ns = self.types[("", "v1", "namespaces")]
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(ns, None, {"metadata": {"name": name}})

    def start(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        with self.store.cond:
            self.store.closed = True
            self.store.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    def drop_watches(self):
        """Ends every open watch stream (cleanly, as an API server restart or a load balancer
        timeout would): the clients must watch again from their last resourceVersion."""
        with self.store.cond:
            self.store.drops += 1
            self.store.cond.notify_all()

    def inject(self, method, pattern, code, times=1):
        """The next `times` requests whose method and path (with query) match `pattern` (a
        regex, searched) are answered with `code` and a Status (429 with Retry-After: 1)."""
        with self.store.cond:
            self.faults.append([method, re.compile(pattern), code, times])

    def _fault(self, method, path):
        with self.store.cond:
            for f in self.faults:
                if f[3] > 0 and f[0] == method and f[1].search(path):
                    f[3] -= 1
                    return f[2]
        return None

    def compact(self):
        """Forgets the whole history, as an etcd compaction does: every older resourceVersion a
        watch or continue token names is then 410 Gone."""
        with self.store.cond:
            self.store.events.clear()
            self.store.compacted = self.store.rv

    # -- types and discovery --

    def find_type(self, group, version, plural):
        rt = self.types.get((group, version, plural))
        if rt is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        return rt

    def groups(self):
        out = collections.OrderedDict()
        for rt in self.types.values():
            if rt.group:
                out.setdefault(rt.group, [])
                if rt.version not in out[rt.group]:
                    out[rt.group].append(rt.version)
        return out

    def api_group(self, group):
        versions = self.groups().get(group)
        if not versions:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        vs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group, "versions": vs,
                "preferredVersion": vs[0]}

    def resource_list(self, group, version):
        res = []
        for rt in self.types.values():
            if rt.group != group or rt.version != version:
                continue
            verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update",
                     "watch"]
            entry = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                     "kind": rt.kind, "verbs": verbs}
            if rt.short:
                entry["shortNames"] = rt.short
            if rt.categories:
                entry["categories"] = rt.categories
            res.append(entry)
            if rt.status:
                res.append({"name": rt.plural + "/status", "singularName": "",
                            "namespaced": rt.namespaced, "kind": rt.kind,
                            "verbs": ["get", "patch", "update"]})
        if not res:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        gv = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv,
                "resources": res}

    def _sync_crd(self, crd, deleted=False):
        """Called with the store lock held: serves (or stops serving) a CRD's resources."""
        name = crd["metadata"]["name"]
        for key in [k for k, rt in self.types.items() if rt.crd == name]:
            del self.types[key]
        if deleted:
            return
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for v in spec.get("versions", []):
            if not v.get("served", True):
                continue
            rt = ResourceType(spec.get("group", ""), v["name"], names.get("plural", ""),
                              names.get("kind", ""), spec.get("scope") == "Namespaced",
                              singular=names.get("singular"), short=names.get("shortNames", ()),
                              categories=names.get("categories", ()),
                              status="status" in (v.get("subresources") or {}),
                              generation=True, columns=v.get("additionalPrinterColumns"),
                              crd=name)
            rt.schema = ((v.get("schema") or {}).get("openAPIV3Schema")
                         or (spec.get("validation") or {}).get("openAPIV3Schema"))
            self.types[(rt.group, rt.version, rt.plural)] = rt
        old = crd.get("status") if isinstance(crd.get("status"), dict) else {}
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")],
            "conditions": old.get("conditions") or [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": now_rfc3339()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted",
                 "lastTransitionTime": now_rfc3339()}]}

    # -- CRUD; every method takes the store lock --

    def _check_namespace(self, rt, ns):
        if rt.namespaced:
            if (("", "namespaces"), None, ns) not in self.store.objects:
                raise APIError(404, "NotFound", f'namespaces "{ns}" not found',
                               {"name": ns, "kind": "namespaces"})
            if dotted(self.store.objects[(("", "namespaces"), None, ns)],
                      "metadata.deletionTimestamp"):
                raise APIError(403, "Forbidden", f'unable to create new content in namespace '
                               f'{ns} because it is being terminated')

    def _validate(self, rt, obj, name):
        """The CRD's schema applied to a custom resource about to be stored (pruned and
        defaulted in place); unknown fields per the request's fieldValidation (Strict: 400,
        Warn, the default: a Warning header, Ignore)."""
        if not rt.schema:
            return
        errs, unknown = [], []
        structural(rt.schema, obj, "", errs, unknown)
        mode = getattr(_request, "field_validation", "Warn")
        if unknown and mode == "Strict":
            raise APIError(400, "BadRequest", "strict decoding error: " + ", ".join(
                f'unknown field "{u}"' for u in unknown))
        if unknown and mode != "Ignore" and hasattr(_request, "warnings"):
            _request.warnings += [f'unknown field "{u}"' for u in unknown]
        if errs:
            text = [f"{f}: {m}" for f, m in errs]
            raise APIError(422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: '
                           + (text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"),
                           {"name": name, "group": rt.group, "kind": rt.kind,
                            "causes": [{"reason": "FieldValueInvalid", "message": m,
                                        "field": f} for f, m in errs]})

    def _stamp(self, rt, obj):
        obj["apiVersion"] = rt.api_version
        obj["kind"] = rt.kind
        return obj

    def _out(self, rt, obj):
        """A stored object as this group version serves it (a copy)."""
        return self._stamp(rt, rt.from_storage(copy.deepcopy(obj)))

    def get(self, rt, ns, name):
        with self.store.cond:
            obj = self.store.objects.get((rt.storage_key, ns, name))
            if obj is None:
                raise not_found(rt, name)
            return self._out(rt, obj)

    def create(self, rt, ns, obj, dry_run=False):
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise APIError(400, "BadRequest", "the body is not an object with metadata")
        obj = rt.to_storage(copy.deepcopy(obj))
        meta = obj.setdefault("metadata", {})
        with self.store.cond:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
            name = meta.get("name")
            if not name:
                raise APIError(422, "Invalid", f'{rt.kind} "" is invalid: metadata.name: '
                               'Required value: name or generateName is required')
            if obj.get("kind") not in (None, rt.kind):
                raise APIError(400, "BadRequest", f"the body's kind {obj.get('kind')!r} is not "
                               f"{rt.kind!r}")
            if rt.namespaced:
                if meta.get("namespace") not in (None, ns):
                    raise APIError(400, "BadRequest", "the namespace of the provided object "
                                   "does not match the namespace sent on the request")
                self._check_namespace(rt, ns)
                meta["namespace"] = ns
            else:
                meta.pop("namespace", None)
            key = (rt.storage_key, ns if rt.namespaced else None, name)
            if key in self.store.objects:
                raise APIError(409, "AlreadyExists", f'{rt.qualified} "{name}" already exists',
                               {"name": name, "group": rt.group, "kind": rt.plural})
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            for k in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
                meta.pop(k, None)
            if rt.generation:
                meta["generation"] = 1
            else:
                meta.pop("generation", None)
            if rt.status and rt.crd:
                obj.pop("status", None)  # status only through the subresource
            self._validate(rt, obj, name)
            if rt.plural == "namespaces":
                obj["spec"] = {"finalizers": ["kubernetes"]}
                obj["status"] = {"phase": "Active"}
            if rt.plural == "customresourcedefinitions" and not dry_run:
                self._sync_crd(obj)
            self._stamp(rt, obj)
            if dry_run:
                return self._out(rt, obj)
            self.store.objects[key] = obj
            self.store.record(rt, "ADDED", obj)
            return self._out(rt, obj)

    def update(self, rt, ns, name, obj, sub=None, require_rv=True, dry_run=False):
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise APIError(400, "BadRequest", "the body is not an object with metadata")
        obj = rt.to_storage(copy.deepcopy(obj))
        meta = obj.setdefault("metadata", {})
        with self.store.cond:
            key = (rt.storage_key, ns if rt.namespaced else None, name)
            old = self.store.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            if meta.get("name", name) != name:
                raise APIError(400, "BadRequest", "the name of the object "
                               f"({meta.get('name')}) does not match the name on the URL "
                               f"({name})")
            rv = meta.get("resourceVersion")
            if not rv and require_rv and rt.crd:
                raise APIError(422, "Invalid", f'{rt.kind}.{rt.group} "{name}" is invalid: '
                               'metadata.resourceVersion: Invalid value: 0x0: must be specified '
                               'for an update')
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise APIError(409, "Conflict", f'Operation cannot be fulfilled on '
                               f'{rt.qualified} "{name}": the object has been modified; please '
                               'apply your changes to the latest version and try again',
                               {"name": name, "group": rt.group, "kind": rt.plural})
            if sub == "status":
                # Only status changes; everything else, metadata included, stays as it was.
                new = copy.deepcopy(old)
                if "status" in obj:
                    new["status"] = obj["status"]
                else:
                    new.pop("status", None)
                self._validate(rt, new, name)
            else:
                new = obj
                nmeta = new["metadata"]
                for k in ("uid", "creationTimestamp", "deletionTimestamp", "namespace",
                          "deletionGracePeriodSeconds"):
                    if k in old["metadata"]:
                        nmeta[k] = old["metadata"][k]
                    else:
                        nmeta.pop(k, None)
                nmeta["name"] = name
                if rt.status:
                    # The main resource ignores status when a status subresource exists.
                    if "status" in old:
                        new["status"] = copy.deepcopy(old["status"])
                    else:
                        new.pop("status", None)
                self._validate(rt, new, name)
                if rt.generation:
                    def body(o):
                        return {k: v for k, v in o.items()
                                if k not in ("metadata", "status", "apiVersion", "kind")}
                    gen = old["metadata"].get("generation", 1)
                    if body(new) != body(old) or (not rt.status and
                                                  new.get("status") != old.get("status")):
                        gen += 1
                    nmeta["generation"] = gen
                else:
                    nmeta.pop("generation", None)
                if rt.plural == "customresourcedefinitions" and not dry_run:
                    self._sync_crd(new)
            self._stamp(rt, new)
            # An update without a resourceVersion is unconditional; the comparison is not.
            new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            if new == old:
                return self._out(rt, old)  # a no-op update writes nothing, as the real server
            if dry_run:
                return self._out(rt, new)
            if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
                del self.store.objects[key]
                self.store.record(rt, "DELETED", new)
                self._after_delete(rt, new)
                return self._out(rt, new)
            self.store.objects[key] = new
            self.store.record(rt, "MODIFIED", new, old)
            return self._out(rt, new)

    def patch(self, rt, ns, name, ctype, patch, sub=None, dry_run=False):
        with self.store.cond:  # reentrant use below: Condition wraps an RLock
            cur = self.get(rt, ns, name)
            if ctype.startswith("application/merge-patch+json"):
                if not isinstance(patch, dict):
                    raise APIError(400, "BadRequest", "a merge patch must be a JSON object")
                new = merge_patch(cur, patch)
            elif ctype.startswith("application/strategic-merge-patch+json"):
                if rt.crd:
                    raise APIError(415, "UnsupportedMediaType", "strategic merge patch is not "
                                   "supported for custom resources; use a merge patch")
                new = strategic_merge_patch(cur, patch)
            elif ctype.startswith("application/json-patch+json"):
                new = json_patch(cur, patch if isinstance(patch, list) else [])
            else:
                raise APIError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format: {ctype}")
            return self.update(rt, ns, name, new, sub=sub, require_rv=False, dry_run=dry_run)

    def delete(self, rt, ns, name, options=None):
        options = options or {}
        with self.store.cond:
            key = (rt.storage_key, ns if rt.namespaced else None, name)
            old = self.store.objects.get(key)
            if old is None:
                raise not_found(rt, name)
            pre = options.get("preconditions") or {}
            if (pre.get("uid") and pre["uid"] != old["metadata"]["uid"]) or \
                    (pre.get("resourceVersion") and
                     pre["resourceVersion"] != old["metadata"]["resourceVersion"]):
                raise APIError(409, "Conflict", f'Operation cannot be fulfilled on '
                               f'{rt.qualified} "{name}": the precondition does not hold '
                               '(uid or resourceVersion)',
                               {"name": name, "group": rt.group, "kind": rt.plural})
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return self._out(rt, old)
                new = copy.deepcopy(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                self.store.objects[key] = new
                self.store.record(rt, "MODIFIED", new, old)
                return self._out(rt, new)
            del self.store.objects[key]
            gone = copy.deepcopy(old)
            self.store.record(rt, "DELETED", gone)
            self._after_delete(rt, gone)
            return self._out(rt, gone)

    def _after_delete(self, rt, obj):
        """Called with the lock held: what the namespace and CRD controllers and the garbage
        collector would do after a while, done at once."""
        if rt.plural == "customresourcedefinitions":
            group = obj["spec"]["group"]
            plural = obj["spec"]["names"]["plural"]
            crt = next((t for t in self.types.values() if t.crd == obj["metadata"]["name"]), None)
            self._sync_crd(obj, deleted=True)
            for key in [k for k in self.store.objects if k[0] == (group, plural)]:
                gone = self.store.objects.pop(key)
                if crt:
                    self.store.record(crt, "DELETED", gone)
        if rt.plural == "namespaces" and not rt.group:
            name = obj["metadata"]["name"]
            for key in [k for k in self.store.objects if k[1] == name]:
                gone = self.store.objects.pop(key)
                t = self._type_of(key[0])
                if t:
                    self.store.record(t, "DELETED", gone)
        uid = obj["metadata"]["uid"]
        for key, dep in list(self.store.objects.items()):
            refs = dep["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == uid for r in refs):
                continue
            t = self._type_of(key[0])
            if t is None:
                continue
            rest = [r for r in refs if r.get("uid") != uid]
            if rest:
                new = copy.deepcopy(dep)
                new["metadata"]["ownerReferences"] = rest
                self.store.objects[key] = new
                self.store.record(t, "MODIFIED", new, dep)
            elif key in self.store.objects:
                self.delete(t, key[1], key[2])

    def _type_of(self, storage_key):
        return next((t for t in self.types.values() if t.storage_key == storage_key), None)

    def list(self, rt, ns, query):
        labels = parse_selector(query.get("labelSelector", ""), "label")
        fields = parse_selector(query.get("fieldSelector", ""), "field")
        try:
            limit = int(query.get("limit") or 0)
        except ValueError as e:
            raise APIError(400, "BadRequest", "limit must be an integer") from e
        limit = min(max(limit, 0), MAX_LIMIT)
        start = ""
        with self.store.cond:
            if query.get("continue"):
                try:
                    tok = json.loads(base64.urlsafe_b64decode(query["continue"]))
                    start, tok_rv = tok["start"], int(tok["rv"])
                except (ValueError, KeyError, TypeError) as e:
                    raise APIError(400, "BadRequest", "invalid continue token") from e
                if tok_rv <= self.store.compacted:
                    raise APIError(410, "Expired", "The provided continue parameter is too old "
                                   "to display a consistent list result. You can start a new "
                                   "list without the continue parameter.")
            items = []
            for key in sorted(k for k in self.store.objects if k[0] == rt.storage_key):
                if rt.namespaced and ns is not None and key[1] != ns:
                    continue
                pos = f"{key[1] or ''}/{key[2]}"
                if pos <= start:
                    continue
                obj = self.store.objects[key]
                if not self._matches(obj, labels, fields):
                    continue
                items.append((pos, obj))
            meta = {"resourceVersion": str(self.store.rv)}
            if limit and len(items) > limit:
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(
                    {"start": items[limit - 1][0], "rv": self.store.rv}).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            return {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta,
                    "items": [self._out(rt, o) for _, o in items]}

    @staticmethod
    def _matches(obj, labels, fields):
        lab = obj["metadata"].get("labels") or {}
        return selector_matches(labels, lab.get) and \
            selector_matches(fields, lambda k: field_value(obj, k))

    # -- Table --

    def table(self, rt, objs, rv, include="PartialObjectMetadata"):
        cols = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                 "description": "Name must be unique within a namespace."}]
        spec_cols = rt.columns
        if spec_cols is None:
            spec_cols = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
        for c in spec_cols:
            cols.append({"name": c["name"], "type": c.get("type", "string"),
                         "format": c.get("format", ""), "description": c.get("description", ""),
                         "priority": c.get("priority", 0)})
        rows = []
        for obj in objs:
            cells = [obj["metadata"]["name"]]
            for c in spec_cols:
                try:
                    vals = jsonpath(obj, c["jsonPath"])
                except ValueError:
                    vals = []
                if not vals:
                    cells.append(None)
                elif c.get("type") == "date":
                    cells.append(human_age(vals[0]))
                elif len(vals) == 1 and not isinstance(vals[0], (dict, list)):
                    cells.append(vals[0])
                else:
                    cells.append(",".join(json.dumps(v) if isinstance(v, (dict, list)) else str(v)
                                          for v in vals))
            row = {"cells": cells}
            if include == "Object":
                row["object"] = obj
            elif include != "None":
                row["object"] = {"kind": "PartialObjectMetadata",
                                 "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}
            rows.append(row)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": rv}, "columnDefinitions": cols, "rows": rows}


def human_age(ts):
    """The real server's duration.HumanDuration, short form."""
    try:
        t = datetime.datetime.strptime(str(ts), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        return str(ts)
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    if s < 600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 3 * 3600:
        return f"{s // 60}m"
    if s < 8 * 3600:
        return f"{s // 3600}h{(s % 3600) // 60}m" if (s % 3600) // 60 else f"{s // 3600}h"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    if s < 8 * 86400:
        return f"{s // 86400}d{(s % 86400) // 3600}h" if (s % 86400) // 3600 else \
            f"{s // 86400}d"
    if s < 2 * 365 * 86400:
        return f"{s // 86400}d"
    return f"{s // (365 * 86400)}y"


# ---- HTTP -------------------------------------------------------------------------------------

class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A failed handshake or a client gone away is the client's problem: one log line.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError)):
            if self.api.log:
                self.api.log(f"{client_address[0]}:{client_address[1]}: {exc}")
            return
        super().handle_error(request, client_address)


def _pb_str(field, data):
    """A length-delimited protobuf field (lengths here stay below 128: one varint byte)."""
    assert len(data) < 128
    return bytes([(field << 3) | 2, len(data)]) + data


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aegis-k8s-test-apiserver"

    def log_message(self, fmt, *args):
        if self.server.api.log:
            self.server.api.log(fmt % args)

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_PUT(self):
        self._serve("PUT")

    def do_PATCH(self):
        self._serve("PATCH")

    def do_DELETE(self):
        self._serve("DELETE")

    def _send(self, code, body, ctype="application/json"):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(code)
        for w in getattr(_request, "warnings", []):
            self.send_header("Warning", f'299 - {json.dumps(w)}')
        if code == 429:
            self.send_header("Retry-After", "1")
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise APIError(413, "RequestEntityTooLarge", f"the request body is larger than "
                           f"{MAX_BODY} bytes")
        raw = self.rfile.read(n) if n else b""
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as e:
            raise APIError(400, "BadRequest", f"the request body is not JSON: {e}") from e

    def _serve(self, method):
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        path = url.path.rstrip("/") or "/"
        api.requests.append((method, self.path))
        _request.field_validation = query.get("fieldValidation", "Warn")
        _request.warnings = []
        try:
            if path in ("/healthz", "/livez", "/readyz"):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                return
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                raise APIError(401, "Unauthorized", "Unauthorized")
            code = api._fault(method, self.path)
            if code:
                reason = {409: "Conflict", 410: "Expired", 429: "TooManyRequests",
                          500: "InternalError", 503: "ServiceUnavailable",
                          504: "Timeout"}.get(code, "Unknown")
                raise APIError(code, reason, f"injected by the test: {reason}")
            self._route(method, path, query)
        except APIError as e:
            self._send(e.code, e.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # noqa: BLE001 - a server bug: a 500 Status that names it
            self._send(500, status_body(500, "InternalError", f"test apiserver: "
                                        f"{type(e).__name__}: {e}"))

    def _route(self, method, path, query):
        api = self.server.api
        parts = path.strip("/").split("/")
        if method == "GET":
            if path == "/version":
                return self._send(200, VERSION)
            if path == "/openapi/v2":
                # kubectl validates client-side with this document when the server has no
                # OpenAPI v3 and gives up when it is missing; one with no definitions makes it
                # skip validation of every kind, as it does for a kind the document lacks.
                # The protobuf (gnostic openapi_v2.Document): swagger "2.0" and info title and
                # version; JSON for clients that ask for it.
                if "protobuf" in (self.headers.get("Accept") or ""):
                    info = _pb_str(1, b"Kubernetes") + _pb_str(2, VERSION["gitVersion"].encode())
                    data = _pb_str(1, b"2.0") + _pb_str(2, info)
                    self.send_response(200)
                    self.send_header("Content-Type",
                                     "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                return self._send(200, {"swagger": "2.0", "info": {
                    "title": "Kubernetes", "version": VERSION["gitVersion"]},
                    "paths": {}, "definitions": {}})
            if path == "/api":
                return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [
                                            {"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": f"127.0.0.1:{api.port}"}]})
            if path == "/apis":
                with api.store.cond:
                    groups = [api.api_group(g) for g in api.groups()]
                for g in groups:
                    del g["kind"], g["apiVersion"]
                return self._send(200, {"kind": "APIGroupList", "apiVersion": "v1",
                                        "groups": groups})
            if path == "/api/v1":
                with api.store.cond:
                    return self._send(200, api.resource_list("", "v1"))
            if parts[0] == "apis" and len(parts) == 2:
                with api.store.cond:
                    return self._send(200, api.api_group(parts[1]))
            if parts[0] == "apis" and len(parts) == 3:
                with api.store.cond:
                    return self._send(200, api.resource_list(parts[1], parts[2]))
        if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        with api.store.cond:
            ns = None
            if rest[0] == "namespaces" and len(rest) >= 3 and \
                    not (group == "" and len(rest) == 3 and rest[2] == "status"):
                ns, rest = rest[1], rest[2:]
                rt = api.find_type(group, version, rest[0])
                if not rt.namespaced:
                    raise APIError(404, "NotFound", "the server could not find the requested "
                                   "resource")
            else:
                rt = api.find_type(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub and (sub != "status" or not rt.status)):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        dry = bool(query.get("dryRun"))
        if name is None:
            if rt.namespaced is False:
                ns = None
            if method == "GET":
                if query.get("watch") in ("1", "true"):
                    return self._watch(rt, ns, query)
                lst = api.list(rt, ns, query)
                if TABLE_MEDIA in (self.headers.get("Accept") or ""):
                    return self._send(200, api.table(rt, lst["items"],
                                                     lst["metadata"]["resourceVersion"],
                                                     query.get("includeObject", "")) |
                                      {"metadata": lst["metadata"]})
                return self._send(200, lst)
            if method == "POST":
                if rt.namespaced and ns is None:
                    raise APIError(405, "MethodNotAllowed", "create needs a namespace")
                return self._send(201, api.create(rt, ns, self._body(), dry_run=dry))
            if method == "DELETE":
                lst = api.list(rt, ns, query)
                opts = self._body()
                for o in lst["items"]:
                    try:
                        api.delete(rt, o["metadata"].get("namespace"), o["metadata"]["name"],
                                   opts)
                    except APIError:
                        pass
                return self._send(200, lst)
            raise APIError(405, "MethodNotAllowed", f"{method} is not allowed on a collection")
        if rt.namespaced and ns is None:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET":
            obj = api.get(rt, ns, name)
            if TABLE_MEDIA in (self.headers.get("Accept") or ""):
                return self._send(200, api.table(rt, [obj], obj["metadata"]["resourceVersion"],
                                                 query.get("includeObject", "")))
            return self._send(200, obj)
        if method == "PUT":
            return self._send(200, api.update(rt, ns, name, self._body(), sub=sub, dry_run=dry))
        if method == "PATCH":
            return self._send(200, api.patch(rt, ns, name, self.headers.get("Content-Type", ""),
                                             self._body(), sub=sub, dry_run=dry))
        if method == "DELETE" and sub is None:
            obj = api.delete(rt, ns, name, self._body())
            return self._send(200, obj)
        raise APIError(405, "MethodNotAllowed", f"{method} is not allowed here")

    # -- watch --

    def _chunk(self, obj):
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _watch(self, rt, ns, query):
        api, store = self.server.api, self.server.api.store
        labels = parse_selector(query.get("labelSelector", ""), "label")
        fields = parse_selector(query.get("fieldSelector", ""), "field")
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        try:
            timeout = float(query.get("timeoutSeconds") or 1800)
        except ValueError as e:
            raise APIError(400, "BadRequest", "timeoutSeconds must be a number") from e
        deadline = time.monotonic() + timeout
        rv_param = query.get("resourceVersion", "")
        try:
            since = int(rv_param) if rv_param not in ("", "0") else None
        except ValueError as e:
            raise APIError(400, "BadRequest", f"invalid resourceVersion {rv_param!r}") from e
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        table = TABLE_MEDIA in (self.headers.get("Accept") or "")

        def shaped(etype, obj):
            # `kubectl get -w` asks for Tables: each event then carries a one-row Table.
            o = api._out(rt, obj)
            if table:
                o = api.table(rt, [o], o["metadata"].get("resourceVersion", ""),
                              query.get("includeObject", ""))
            return {"type": etype, "object": o}

        def visible(key, obj):
            return key == rt.storage_key and \
                (not rt.namespaced or ns is None or obj["metadata"].get("namespace") == ns) and \
                api._matches(obj, labels, fields)

        try:
            with store.cond:
                drops = store.drops
                if since is None:
                    # No resourceVersion: the current state as ADDED events, then what follows.
                    initial = [shaped("ADDED", o) for k, o in sorted(store.objects.items())
                               if visible(k[0], o)]
                    since = store.rv
                else:
                    initial = []
            for ev in initial:
                self._chunk(ev)
            last_bookmark = time.monotonic()
            while True:
                with store.cond:
                    pending = None if since < store.compacted else \
                        [e for e in store.events if e.rv > since]
                    if pending == [] and not store.closed and store.drops == drops:
                        wait = min(deadline, last_bookmark + api.bookmark_interval) - \
                            time.monotonic()
                        if wait > 0:
                            store.cond.wait(wait)
                        pending = None if since < store.compacted else \
                            [e for e in store.events if e.rv > since]
                    gone, closed = store.compacted, store.closed or store.drops != drops
                if pending is None:
                    # Events this watch has not seen are gone: the real server's watch answers
                    # 200 and then an ERROR event carrying a 410 Status; the client relists.
                    self._chunk({"type": "ERROR", "object": status_body(
                        410, "Expired", f"too old resource version: {since} ({gone + 1})")})
                    break
                for e in pending:
                    since = e.rv
                    now_in = visible(e.key, e.obj)
                    was_in = e.prev is not None and visible(e.key, e.prev)
                    if e.type == "MODIFIED" and now_in != was_in:
                        # Entering the selector is ADDED, leaving it DELETED, as the real
                        # watch cache reports it.
                        self._chunk(shaped("ADDED" if now_in else "DELETED", e.obj))
                    elif now_in:
                        self._chunk(shaped(e.type, e.obj))
                if closed or time.monotonic() >= deadline:
                    break
                if time.monotonic() - last_bookmark >= api.bookmark_interval:
                    last_bookmark = time.monotonic()
                    if bookmarks:
                        # Everything up to this resourceVersion has been sent.
                        self._chunk({"type": "BOOKMARK", "object": {
                            "kind": rt.kind, "apiVersion": rt.api_version,
                            "metadata": {"resourceVersion": str(since)}}})
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True


# ---- TLS and kubeconfig ----

def make_tls_material():
    """A throwaway CA and a server certificate for 127.0.0.1 (PEM: CA, chain, key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aegis k8s test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_pem = ca.public_bytes(pem)
    return ca_pem, cert.public_bytes(pem) + ca_pem, key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

def write_kubeconfig(path, url, token, ca_pem=None, namespace="default", context="aegis-test"):
    """A kubeconfig with one cluster, user and context (JSON is valid YAML); ca_pem (bytes) is
    the server's CA for an https URL."""
    cluster = {"server": url}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": context,
           "clusters": [{"name": context, "cluster": cluster}],
           "users": [{"name": context, "user": {"token": token}}],
           "contexts": [{"name": context, "context": {"cluster": context, "user": context,
                                                      "namespace": namespace}}],
           "preferences": {}}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
    return path


def write_serviceaccount(directory, token, ca_pem=None, namespace="default"):
    """The files a pod's service account mount holds (token, ca.crt, namespace), for testing the
    in-cluster configuration: point the client at `directory` and set KUBERNETES_SERVICE_HOST=
    127.0.0.1 and KUBERNETES_SERVICE_PORT=<srv.port>. Rewrite it (and set srv.token) to rotate
    the token."""
    os.makedirs(directory, exist_ok=True)
    files = {"token": token.encode(), "namespace": namespace.encode()}
    if ca_pem:
        files["ca.crt"] = ca_pem
    for name, data in files.items():
        tmp = os.path.join(directory, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(directory, name))  # atomic, as the kubelet's swap
    return directory


def main():
    ap = argparse.ArgumentParser(description="Kubernetes API test server (tests/k8s/README.md)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="aegis-test-token")
    ap.add_argument("--history", type=int, default=1000, help="watch events kept (410 beyond)")
    ap.add_argument("--bookmark-interval", type=float, default=60.0)
    ap.add_argument("--kubeconfig", help="write a kubeconfig for this server here")
    ap.add_argument("--tls", action="store_true", help="serve https (kubectl needs it to send "
                    "the token)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    srv = APIServer(args.token, args.port, args.history, args.bookmark_interval,
                    log=(lambda m: print(m, file=sys.stderr)) if args.verbose else None,
                    tls=args.tls)
    if args.kubeconfig:
        write_kubeconfig(args.kubeconfig, srv.url, args.token, srv.ca_pem)
    print(srv.url, flush=True)
    try:
        srv.httpd.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
