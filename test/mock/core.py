"""Core of the mock marketplace server.

Everything that is not specific to one marketplace lives here:

* ``Request`` / ``Response`` and the response helpers used by route handlers;
* ``Route`` / ``Router``: method + path-regex routing;
* ``State``: the per-server marketplace state (a dict guarded by a lock);
* ``Journal``: bounded, ordered record of every non-admin request;
* ``FaultRule`` / ``FaultSet``: per-route fault injection;
* ``MockApp``: ties the above to one marketplace module and serves the
  ``/_mock/`` admin API;
* ``MockServer`` / ``MockRequestHandler``: the threaded HTTP/1.1 server that
  performs the I/O side of faults (timeouts, resets, truncation, streaming).

The server only ever binds to 127.0.0.1.
"""

import base64
import collections
import copy
import http
import http.server
import json
import re
import select
import socket
import struct
import sys
import threading
import time
import traceback
import urllib.parse

LOOPBACK = "127.0.0.1"
ADMIN_PREFIX = "/_mock/"
MAX_REQUEST_BODY = 64 * 1024 * 1024
STREAM_CHUNK = 64 * 1024
DEFAULT_TIMEOUT_FAULT_MS = 60_000
DEFAULT_OVERSIZED_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------
# Request / Response
# --------------------------------------------------------------------------

def _media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json_media_type(content_type):
    media = _media_type(content_type)
    return media == "application/json" or media.endswith("+json")


class Request:
    """One parsed HTTP request.

    ``path`` is the raw (still percent-encoded) path without the query;
    routes match against it, and ``params`` holds the route's named groups,
    percent-decoded.  ``json`` is the parsed body when the content type is
    JSON (``json_error`` says why it could not be parsed), ``form`` the
    parsed body of an ``application/x-www-form-urlencoded`` request.
    """

    def __init__(self, method, target, headers, body, client_port,
                 connection=None):
        split = urllib.parse.urlsplit(target)
        self.method = method
        self.path = split.path or "/"
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        self.header_items = list(headers.items())
        self._headers = headers
        self.body = body
        self.client_port = client_port
        self.connection = connection
        self.params = {}
        self.route = None
        self.json = None
        self.json_error = None
        self.form = None
        content_type = headers.get("Content-Type")
        if body and is_json_media_type(content_type):
            try:
                self.json = json.loads(body)
            except ValueError as exc:
                self.json_error = str(exc)
        elif _media_type(content_type) == "application/x-www-form-urlencoded":
            self.form = urllib.parse.parse_qs(
                body.decode("utf-8", "replace"), keep_blank_values=True)

    def header(self, name, default=None):
        """Case-insensitive header lookup."""
        return self._headers.get(name, default)

    @property
    def headers(self):
        return headers_dict(self.header_items)


def headers_dict(items):
    """Header pairs as a dict; repeated headers are joined with ", "."""
    result = {}
    for name, value in items:
        result[name] = f"{result[name]}, {value}" if name in result else value
    return result


def body_json(body):
    """A request/response body as JSON-safe fields (text, or base64)."""
    try:
        return {"body": body.decode("utf-8"), "body_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"body": base64.b64encode(body).decode("ascii"),
                "body_encoding": "base64"}


class Response:
    """A response: status, header pairs, and either ``body`` bytes or a
    ``chunks`` iterable producing exactly ``length`` bytes (streamed)."""

    def __init__(self, status=200, headers=None, body=b"", chunks=None,
                 length=None):
        self.status = status
        self.headers = list(headers.items() if isinstance(headers, dict)
                            else headers or [])
        self.body = body
        self.chunks = chunks
        self.length = len(body) if chunks is None else length

    def add_headers(self, headers):
        self.headers.extend((headers or {}).items())
        return self


def json_response(obj, status=200, headers=None):
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    return raw_response(body, status, "application/json", headers)


def text_response(text, status=200, content_type="text/plain; charset=utf-8",
                  headers=None):
    return raw_response(text.encode("utf-8"), status, content_type, headers)


def xml_response(text, status=200, headers=None):
    return text_response(text, status, "application/xml; charset=utf-8",
                         headers)


def raw_response(data, status=200, content_type="application/octet-stream",
                 headers=None):
    return Response(status, [("Content-Type", content_type)], data) \
        .add_headers(headers)


def empty_response(status=204, headers=None):
    return Response(status).add_headers(headers)


def stream_response(length, chunks, status=200,
                    content_type="application/octet-stream", headers=None):
    return Response(status, [("Content-Type", content_type)], chunks=chunks,
                    length=length).add_headers(headers)


def repeat_chunks(pattern, length):
    """Yield ``length`` bytes made of ``pattern`` repeated, in chunks of at
    most STREAM_CHUNK bytes (memory stays bounded whatever the length)."""
    reps = max(1, STREAM_CHUNK // len(pattern))
    block = pattern * reps
    remaining = length
    while remaining > 0:
        piece = block[:remaining]
        remaining -= len(piece)
        yield piece


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

class Route:
    """``methods`` (str or iterable) + a regex that must match the whole raw
    path; ``handler(request, state) -> Response``."""

    def __init__(self, methods, pattern, handler, name=None):
        if isinstance(methods, str):
            methods = methods.split("|")
        self.methods = frozenset(m.upper() for m in methods)
        self.regex = re.compile(pattern)
        self.handler = handler
        self.name = name or f"{'|'.join(sorted(self.methods))} {pattern}"


class Router:
    def __init__(self, routes):
        self.routes = list(routes)

    def match(self, method, path):
        """Return ``(route, match, allowed)``: the matching route (or None)
        and, when only the method was wrong, the methods the path allows."""
        lookup = "GET" if method == "HEAD" else method
        allowed = set()
        for route in self.routes:
            match = route.regex.fullmatch(path)
            if match is None:
                continue
            if lookup in route.methods:
                return route, match, None
            allowed |= route.methods
        return None, None, sorted(allowed) or None


# --------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------

class State:
    """Per-server marketplace state.  Handlers must hold ``lock`` while they
    read or modify ``data``."""

    def __init__(self, marketplace, initial_seed):
        self.lock = threading.RLock()
        self.marketplace = marketplace
        self.initial_seed = initial_seed
        self.data = {}
        self.reset()

    def reset(self):
        with self.lock:
            self.data = self.marketplace.initial_state()
            if self.initial_seed is not None:
                self.marketplace.seed(self.data,
                                      copy.deepcopy(self.initial_seed))

    def seed(self, data):
        with self.lock:
            self.marketplace.seed(self.data, data)

    def snapshot(self):
        with self.lock:
            return copy.deepcopy(self.data)


# --------------------------------------------------------------------------
# Journal
# --------------------------------------------------------------------------

class Journal:
    """Ordered record of requests.  Bounded: the oldest entries are evicted
    once there are more than ``max_entries`` or their bodies exceed
    ``max_body_bytes`` in total.  Bodies are kept raw and only encoded when
    the journal is read."""

    def __init__(self, max_entries=10_000, max_body_bytes=64 * 1024 * 1024):
        self.max_entries = max_entries
        self.max_body_bytes = max_body_bytes
        self._lock = threading.Lock()
        self._entries = collections.deque()
        self._body_bytes = 0
        self._seq = 0
        self._inflight = 0          # requests received and not answered yet
        self._inflight_max = 0      # the most at once since the last reset

    def record(self, request, route_name):
        entry = {
            "seq": 0, "time": time.time(), "method": request.method,
            "path": request.path, "query": request.query,
            "headers": request.header_items, "body": request.body,
            "client_port": request.client_port,
            "connection": request.connection, "route": route_name,
            "status": None, "fault": None, "answered": None,
        }
        with self._lock:
            self._seq += 1
            entry["seq"] = self._seq
            self._inflight += 1
            self._inflight_max = max(self._inflight_max, self._inflight)
            self._entries.append(entry)
            self._body_bytes += len(request.body)
            while len(self._entries) > self.max_entries or (
                    self._body_bytes > self.max_body_bytes
                    and len(self._entries) > 1):
                self._body_bytes -= len(self._entries.popleft()["body"])
        return entry

    def answered(self, entry):
        """The request is no longer in flight: its response is about to be
        sent (so the client cannot start its next request before this), or
        it ends without one.  Only the first call counts."""
        with self._lock:
            if entry["answered"] is None:
                entry["answered"] = time.time()
                self._inflight -= 1

    def inflight(self):
        """(requests in flight now, the most at once since the last reset)"""
        with self._lock:
            return self._inflight, self._inflight_max

    def finish(self, entry, status, rule):
        self.answered(entry)
        with self._lock:
            entry["status"] = status
            entry["fault"] = None if rule is None else \
                {"id": rule.id, "kind": rule.kind}

    def entries(self, since=0, path_regex=None):
        with self._lock:
            live = [dict(e) for e in self._entries
                    if e["seq"] > since
                    and (path_regex is None or path_regex.search(e["path"]))]
        for entry in live:
            entry["headers"] = headers_dict(entry["headers"])
            entry.update(body_json(entry["body"]))
        return live

    def clear(self, restart_seq=False):
        with self._lock:
            self._entries.clear()
            self._body_bytes = 0
            self._inflight_max = self._inflight
            if restart_seq:
                self._seq = 0

    def __len__(self):
        with self._lock:
            return len(self._entries)


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------

# kind -> (required parameters, optional parameters)
FAULT_KINDS = {
    "rate_limit": (set(), {"retry_after", "status", "headers"}),
    "status": ({"status"}, {"headers", "code", "message"}),
    "delay": ({"ms"}, set()),
    "timeout": (set(), {"ms"}),
    "reset": (set(), set()),
    "truncate": (set(), {"bytes"}),
    "malformed": (set(), {"body"}),
    "oversized": (set(), {"bytes"}),
}
_RULE_KEYS = {"route", "method", "kind", "count", "after"}


def _check_int(name, value, minimum, maximum=None):
    if (not isinstance(value, int) or isinstance(value, bool)
            or value < minimum or (maximum is not None and value > maximum)):
        bound = f"{minimum}..{maximum}" if maximum is not None \
            else f">= {minimum}"
        raise ValueError(f"{name} must be an integer {bound}")


def _check_number(name, value):
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
            or value < 0):
        raise ValueError(f"{name} must be a number >= 0")


class FaultRule:
    """A validated fault rule (see README.md for the JSON shape)."""

    def __init__(self, spec, rule_id):
        if not isinstance(spec, dict):
            raise ValueError("a fault rule must be a JSON object")
        kind = spec.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAULT_KINDS)}")
        required, optional = FAULT_KINDS[kind]
        unknown = set(spec) - _RULE_KEYS - required - optional
        if unknown:
            raise ValueError(f"unknown key(s) for kind {kind!r}: "
                             f"{sorted(unknown)}")
        missing = required - set(spec)
        if missing:
            raise ValueError(f"kind {kind!r} needs {sorted(missing)}")
        if not isinstance(spec.get("route"), str):
            raise ValueError("route (a regex on the path) is required")
        try:
            self.regex = re.compile(spec["route"])
        except re.error as exc:
            raise ValueError(f"bad route regex: {exc}") from None
        method = spec.get("method")
        if method is not None and not isinstance(method, str):
            raise ValueError("method must be a string")
        count = spec.get("count", 1)
        after = spec.get("after", 0)
        _check_int("count", count, -1)
        _check_int("after", after, 0)
        params = {k: spec[k] for k in required | optional if k in spec}
        for key in ("ms", "retry_after"):
            if key in params:
                _check_number(key, params[key])
        if "status" in params:
            _check_int("status", params["status"], 200, 599)
        if "bytes" in params:
            _check_int("bytes", params["bytes"], 0)
        if "headers" in params and not (
                isinstance(params["headers"], dict)
                and all(isinstance(v, str) for v in params["headers"].values())):
            raise ValueError("headers must be an object of strings")
        if "code" in params and (isinstance(params["code"], bool) or
                                 not isinstance(params["code"], (str, int))):
            raise ValueError("code must be a string or an integer")
        for key in ("message", "body"):
            if key in params and not isinstance(params[key], str):
                raise ValueError(f"{key} must be a string")
        self.id = rule_id
        self.route = spec["route"]
        self.method = method.upper() if method else None
        self.kind = kind
        self.count = count
        self.after = after
        self.params = params
        self.matched = 0
        self.applied = 0

    def to_json(self):
        return {"id": self.id, "route": self.route, "method": self.method,
                "kind": self.kind, "count": self.count, "after": self.after,
                **self.params, "matched": self.matched,
                "applied": self.applied}


class FaultSet:
    """Ordered fault rules.  Every rule matching a request counts it; the
    first matching rule that is past its ``after`` and still has ``count``
    left is applied (at most one fault per request)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []
        self._next_id = 1

    def add(self, specs):
        """Validate all specs first, then add them all (or none)."""
        if isinstance(specs, dict):
            specs = [specs]
        if not isinstance(specs, list):
            raise ValueError("expected a fault rule object or a list of them")
        with self._lock:
            rules = [FaultRule(spec, self._next_id + i)
                     for i, spec in enumerate(specs)]
            self._rules.extend(rules)
            self._next_id += len(rules)
            return [rule.to_json() for rule in rules]

    def select(self, method, path):
        chosen = None
        with self._lock:
            for rule in self._rules:
                if rule.method not in (None, method) or \
                        not rule.regex.search(path):
                    continue
                rule.matched += 1
                if (chosen is None and rule.matched > rule.after
                        and (rule.count == -1 or rule.applied < rule.count)):
                    rule.applied += 1
                    chosen = rule
        return chosen

    def clear(self):
        with self._lock:
            self._rules = []

    def to_json(self):
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def __len__(self):
        with self._lock:
            return len(self._rules)


# --------------------------------------------------------------------------
# Application: routing + faults + admin API, no socket I/O
# --------------------------------------------------------------------------

class BadRequest(Exception):
    pass


class MockApp:
    def __init__(self, marketplace, seed=None, faults=(), journal=None):
        self.marketplace = marketplace
        self.router = Router(marketplace.routes())
        self.state = State(marketplace, seed)
        self.journal = journal or Journal()
        self.faults = FaultSet()
        self.faults.add(list(faults))
        self._admin = Router([
            Route("GET", r"/_mock/health", self._health),
            Route("POST", r"/_mock/reset", self._reset),
            Route("POST", r"/_mock/seed", self._seed),
            Route("GET", r"/_mock/state", self._get_state),
            Route("GET", r"/_mock/journal", self._get_journal),
            Route("DELETE", r"/_mock/journal", self._clear_journal),
            Route("GET", r"/_mock/faults", self._get_faults),
            Route("POST", r"/_mock/faults", self._add_faults),
            Route("DELETE", r"/_mock/faults", self._clear_faults),
        ])

    # -- non-admin requests -------------------------------------------------

    def begin(self, request):
        """Route and journal a request and pick the fault to apply.
        Returns ``(journal_entry, fault_rule_or_None, allowed_methods)``."""
        route, match, allowed = self.router.match(request.method, request.path)
        if route is not None:
            request.params = {k: urllib.parse.unquote(v)
                              for k, v in match.groupdict().items()
                              if v is not None}
        request.route = route
        entry = self.journal.record(request, route.name if route else None)
        return entry, self.faults.select(request.method, request.path), allowed

    def respond(self, request, allowed):
        """The normal (fault-free) response to a request."""
        if request.route is None:
            if allowed:
                return self.marketplace.error(request, 405).add_headers(
                    {"Allow": ", ".join(allowed)})
            return self.marketplace.error(request, 404)
        try:
            return request.route.handler(request, self.state)
        except Exception:  # a bug in a handler: make it loud, not silent
            trace = traceback.format_exc()
            sys.stderr.write(trace)
            return text_response(trace, 500)

    def fault_response(self, request, allowed, rule):
        """The response for rate_limit/status/malformed/oversized faults."""
        params = rule.params
        if rule.kind == "rate_limit":
            resp = self.marketplace.rate_limit(
                request, params.get("retry_after", 1))
            if "status" in params:
                resp.status = params["status"]
            return resp.add_headers(params.get("headers"))
        if rule.kind == "status":
            return self.marketplace.error(
                request, params["status"], code=params.get("code"),
                message=params.get("message")).add_headers(params.get("headers"))
        if rule.kind == "malformed":
            body = malformed_body(self.respond(request, allowed),
                                  params.get("body"))
            return raw_response(body, 200, "application/json")
        if rule.kind == "oversized":
            return oversized_response(
                params.get("bytes", DEFAULT_OVERSIZED_BYTES))
        raise AssertionError(f"no response for fault kind {rule.kind}")

    # -- admin API ----------------------------------------------------------

    def admin(self, request):
        route, _, allowed = self._admin.match(request.method, request.path)
        if route is None:
            status = 405 if allowed else 404
            return json_response({"error": http.HTTPStatus(status).phrase},
                                 status)
        try:
            return route.handler(request)
        except BadRequest as exc:
            return json_response({"error": str(exc)}, 400)

    def _health(self, _request):
        inflight, inflight_max = self.journal.inflight()
        return json_response({
            "status": "ok", "marketplace": self.marketplace.name,
            "journal": len(self.journal), "faults": len(self.faults),
            "inflight": inflight, "inflight_max": inflight_max})

    def _reset(self, _request):
        self.state.reset()
        self.journal.clear(restart_seq=True)
        self.faults.clear()
        return json_response({"status": "reset"})

    def _seed(self, request):
        data = _json_body(request)
        if not isinstance(data, dict):
            raise BadRequest("seed body must be a JSON object")
        try:
            self.state.seed(data)
        except (ValueError, TypeError, KeyError) as exc:
            raise BadRequest(f"seed rejected: {exc}") from None
        return json_response(self.state.snapshot())

    def _get_state(self, _request):
        return json_response(self.state.snapshot())

    def _get_journal(self, request):
        try:
            since = int(request.query.get("since", ["0"])[-1])
            path = request.query.get("path", [None])[-1]
            regex = re.compile(path) if path is not None else None
        except (ValueError, re.error) as exc:
            raise BadRequest(f"bad journal filter: {exc}") from None
        return json_response(self.journal.entries(since, regex))

    def _clear_journal(self, _request):
        self.journal.clear()
        return json_response({"status": "cleared"})

    def _get_faults(self, _request):
        return json_response(self.faults.to_json())

    def _add_faults(self, request):
        try:
            return json_response(self.faults.add(_json_body(request)))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None

    def _clear_faults(self, _request):
        self.faults.clear()
        return json_response({"status": "cleared"})


def _json_body(request):
    try:
        return json.loads(request.body or b"null")
    except ValueError as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from None


def malformed_body(normal, override):
    """A JSON-looking body that does not parse: ``override`` if given, else
    the first half of the normal JSON object/array body, else a fixed
    cut-off document."""
    if override is not None:
        return override.encode("utf-8")
    body = normal.body if normal.chunks is None else b""
    if body.lstrip()[:1] in (b"{", b"[") and len(body) >= 2:
        return body[:len(body) // 2]
    return b'{"data":[{"id":1,"value":"cut'


def oversized_response(length):
    """A valid JSON document of exactly ``length`` bytes (for length >= 14),
    streamed: {"padding":"xxxx...."}."""
    head, tail = b'{"padding":"', b'"}'
    if length < len(head) + len(tail):
        return stream_response(length, repeat_chunks(b" ", length),
                               content_type="application/json")

    def chunks():
        yield head
        yield from repeat_chunks(b"x", length - len(head) - len(tail))
        yield tail
    return stream_response(length, chunks(), content_type="application/json")


# --------------------------------------------------------------------------
# HTTP server
# --------------------------------------------------------------------------

class MockServer(http.server.ThreadingHTTPServer):
    """Threaded HTTP/1.1 server bound to 127.0.0.1 only."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, app, port=0, host=LOOPBACK, verbose=False,
                 idle_timeout=120.0):
        if host != LOOPBACK:
            raise ValueError(f"refusing to bind to {host!r}: the mock only "
                             f"listens on {LOOPBACK}")
        self.app = app
        self.verbose = verbose
        self.idle_timeout = idle_timeout
        self.stopping = threading.Event()
        self._connections = 0
        self._connections_lock = threading.Lock()
        super().__init__((host, port), MockRequestHandler)

    def next_connection(self):
        """Number of an accepted connection: 1, 2, ... in accept order (not
        restarted by /_mock/reset, unlike the journal's seq)."""
        with self._connections_lock:
            self._connections += 1
            return self._connections

    def server_bind(self):
        # HTTPServer.server_bind would do a (possibly slow) reverse DNS lookup.
        http.server.socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def shutdown(self):
        self.stopping.set()
        super().shutdown()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) and not self.verbose:
            return  # clients hanging up are normal in fault tests
        super().handle_error(request, client_address)


class MockRequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "omnichan-mock/1"
    disable_nagle_algorithm = True

    def setup(self):
        self.timeout = self.server.idle_timeout
        self.connection_number = self.server.next_connection()
        super().setup()

    def version_string(self):
        return self.server_version

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        if self.server.verbose:
            super().log_message(format, *args)

    def _dispatch(self):
        body = self._read_body()
        if body is None:
            return
        app = self.server.app
        request = Request(self.command, self.path, self.headers, body,
                          self.client_address[1], self.connection_number)
        if request.path.startswith(ADMIN_PREFIX):
            self._send(app.admin(request))
            return
        entry, rule, allowed = app.begin(request)
        status = None
        try:
            status = self._serve(request, allowed, rule, entry)
        finally:
            if status is None:      # no response: _serve recorded nothing
                app.journal.finish(entry, None, rule)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = \
        do_OPTIONS = _dispatch

    def _serve(self, request, allowed, rule, entry):
        """Answer (or deliberately fail to answer) a request; return the
        status sent, or None when no response was sent.  The journal entry
        is marked answered, with its status, just before the response is
        written: a client that has read the response finds it complete."""
        app = self.server.app
        kind = rule.kind if rule else None
        if kind == "timeout":
            self._hold(rule.params.get("ms", DEFAULT_TIMEOUT_FAULT_MS))
            return None
        if kind == "reset":
            self._reset_connection()
            return None
        if kind == "delay":
            self.server.stopping.wait(rule.params["ms"] / 1000)
        if kind in ("rate_limit", "status", "malformed", "oversized"):
            response = app.fault_response(request, allowed, rule)
        else:
            response = app.respond(request, allowed)
        app.journal.finish(entry, response.status, rule)
        if kind == "truncate":
            self._send_truncated(response, rule.params.get("bytes"))
        else:
            self._send(response)
        return response.status

    # -- request body -------------------------------------------------------

    def _read_body(self):
        """Read the whole body (Content-Length or chunked).  Answers 400/413
        itself and returns None when the body cannot be accepted."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._refuse(400, "bad Content-Length")
            return None
        if length > MAX_REQUEST_BODY:
            self._refuse(413, "request body too large")
            return None
        return self.rfile.read(length) if length else b""

    def _read_chunked(self):
        parts, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self._refuse(400, "bad chunk size")
                return None
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # discard trailers
                return b"".join(parts)
            total += size
            if total > MAX_REQUEST_BODY:
                self._refuse(413, "request body too large")
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline(3)  # CRLF after the chunk data

    def _refuse(self, status, message):
        self.close_connection = True
        self._send(text_response(message, status,
                                 headers={"Connection": "close"}))

    # -- responses ----------------------------------------------------------

    def _send_head(self, response, length):
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status >= 200 and response.status not in (204, 304):
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, response):
        self._send_head(response, response.length)
        if self.command == "HEAD" or response.status in (204, 304):
            return
        if response.chunks is None:
            self.wfile.write(response.body)
            return
        sent = 0
        for chunk in response.chunks:
            self.wfile.write(chunk)
            sent += len(chunk)
        if sent != response.length:  # a broken stream must not look complete
            raise AssertionError(f"streamed {sent} bytes, "
                                 f"announced {response.length}")

    def _send_truncated(self, response, nbytes):
        """Announce the full Content-Length, send only part of the body
        (half of it unless ``nbytes`` is given), then close the connection."""
        if response.length < 2:
            response = json_response({"truncated": "this body is cut short"},
                                     response.status if response.status != 204
                                     else 200)
        length = response.length
        cut = length // 2 if nbytes is None else min(nbytes, length - 1)
        self.close_connection = True
        self._send_head(response, length)
        chunks = [response.body] if response.chunks is None else response.chunks
        for chunk in chunks:
            if cut <= 0:
                break
            self.wfile.write(chunk[:cut])
            cut -= len(chunk)

    # -- connection-level faults -------------------------------------------

    def _hold(self, ms):
        """Send nothing; keep the connection open until the client closes it,
        ``ms`` elapses or the server stops; then close it."""
        self.close_connection = True
        deadline = time.monotonic() + ms / 1000
        sock = self.connection
        while not self.server.stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            readable, _, _ = select.select([sock], [], [], min(remaining, 1.0))
            if readable and not sock.recv(65536):
                return  # client closed its side

    def _reset_connection(self):
        """Abort the TCP connection: SO_LINGER 0 makes close() send RST."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.rfile.close()  # drop the makefile() reference so close() is real
        self.connection.close()
