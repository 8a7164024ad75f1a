#!/usr/bin/python3
"""runtime_http: the sync worker's HTTP engine on its own: which URLs it
sends at all, what it puts on the wire, its connect timeout and its
keep-alive connections, as seen by the generic mock's journal (or by bare
sockets where nothing HTTP should arrive).

  a. plain http: with omnichan.http_allow_plain_loopback off, a job to the
     mock's http://127.0.0.1:PORT fails at once (1 attempt, error "plain
     http is refused") and the mock receives nothing; with it on, host names
     that merely look like loopback (127.evil.invalid, 127.0.0.1.evil.invalid,
     localhost.evil.invalid) and a non-loopback address (192.0.2.1) fail at
     once with "only to a loopback address", nothing sent, while
     http://127.0.0.1:PORT and http://localhost:PORT are sent and succeed
     and http://[::1]:PORT passes the policy (the mock is not on ::1: it is
     refused by the network, a retried error, not by the policy);
  b. only http and https: http_enqueue refuses ftp://, file:// and gopher://
     URLs (SQLSTATE 22023); a job written directly (INSERT, or UPDATE of its
     url) with such a URL is refused by the domain omnichan.job_url (23514);
     and with that domain's check dropped (this throwaway cluster only), the
     engine itself fails such jobs at once ("only http and https URLs are
     allowed", 1 attempt) without opening a connection (a listening socket
     on 127.0.0.1 has nothing in its accept queue);
  c. methods and bodies: DELETE with and without a body, HEAD, PUT of a raw
     text/xml body, PATCH of an application/x-www-form-urlencoded body, POST
     of application/octet-stream bytes with NUL and non-UTF-8 bytes: the
     journal has the exact method, Content-Type and body bytes (length and
     SHA-256), no body where none was given, and the job has the response
     status and body (the echo of the request; HEAD: empty);
  d. connect timeout: with omnichan.http_connect_timeout = 300 ms against a
     listener on 127.0.0.1 whose accept queue is full (its SYNs are dropped:
     checked first with a bare socket), every attempt fails after ~300 ms
     (sync_log duration_ms, far below omnichan.http_timeout = 5 s), is
     retried as a network error, and the error names the connection
     timeout (omnichan.http_connect_timeout); a response slower than
     omnichan.http_timeout on a connection that was made names that
     setting instead;
  e. keep-alive over plain HTTP/1.1: 20 jobs of a channel with
     max_concurrency 1 to the same mock use at most 2 TCP connections (the
     journal's connection number).
"""

import base64
import errno
import hashlib
import json
import socket
import time

from runtime_lib import (Mock, _cleanups, check, enqueue, fatal, finish,
                         say, start_cluster, wait_for, wait_job_done)

HTTP_TIMEOUT_MS = 5000
c = start_cluster("runtime_http", [
    "omnichan.naptime = 200",
    "omnichan.retry_base_delay = 50",
    f"omnichan.http_timeout = {HTTP_TIMEOUT_MS}",
])
m = Mock("generic")
B = m.base
PORT = m.port
RELOAD_S = 0.7                  # time for the worker to take a reload


def q(text):
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def enqueue_body(method, url, headers, body, max_attempts=3):
    """http_enqueue with a body given as bytes (or None)."""
    b = "NULL" if body is None else f"decode('{body.hex()}', 'hex')"
    return int(c.val(f"SELECT omnichan.http_enqueue({q(method)}, {q(url)}, "
                     f"{q(json.dumps(headers))}::jsonb, {b}, "
                     f"max_attempts => {max_attempts})"))


def sync_log(jid):
    return c.sql(f"SELECT attempt, outcome, duration_ms, COALESCE(error, '') "
                 f"  FROM omnichan.sync_log WHERE job_id = {jid} ORDER BY id")


def raw_body(entry):
    """The request body bytes a journal entry records."""
    if entry["body_encoding"] == "base64":
        return base64.b64decode(entry["body"])
    return entry["body"].encode("utf-8")


def header(entry, name):
    for k, v in entry["headers"].items():
        if k.lower() == name.lower():
            return v
    return None


def sha(data):
    return hashlib.sha256(data).hexdigest()[:16]


c.sql("CREATE FUNCTION public.try_sql(query text) RETURNS text LANGUAGE plpgsql AS $$ "
      "BEGIN EXECUTE query; RETURN 'ok'; "
      "EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE || ': ' || SQLERRM; END $$")


def try_sql(query):
    return c.val(f"SELECT public.try_sql({q(query)})")


# ------------------------------------------------ a. plain http policy
say("a. plain http policy")
c.set_conf(http_allow_plain_loopback="off")
time.sleep(RELOAD_S)
j = enqueue(c, f"{B}/echo", max_attempts=3)
r = wait_job_done(c, j, 10)
check("plain http off: a job to http://127.0.0.1 fails at once (1 attempt, not retried)",
      r["state"] == "failed" and r["attempts"] == 1, r)
check("plain http off: the error says plain http is refused",
      "plain http is refused" in r["error"], r["error"])
check("plain http off: one sync_log row, outcome failed",
      [x[:2] for x in sync_log(j)] == [["1", "failed"]], sync_log(j))
check("plain http off: the mock received nothing", m.count() == 0, m.journal())

c.set_conf(http_allow_plain_loopback="on")
time.sleep(RELOAD_S)
lookalikes = [f"http://127.evil.invalid:{PORT}/x", f"http://127.0.0.1.evil.invalid:{PORT}/x",
              f"http://localhost.evil.invalid:{PORT}/x", "http://192.0.2.1/x"]
ids = {u: enqueue(c, u, max_attempts=3) for u in lookalikes}
ok_ids = {u: enqueue(c, u, max_attempts=3)
          for u in (f"{B}/echo?via=ipv4", f"http://localhost:{PORT}/echo?via=localhost")}
v6 = enqueue(c, f"http://[::1]:{PORT}/echo", max_attempts=1)
for u, j in ids.items():
    r = wait_job_done(c, j, 10)
    check(f"plain http on: {u} fails at once (1 attempt) with 'only to a loopback address'",
          r["state"] == "failed" and r["attempts"] == 1
          and "plain http is allowed only to a loopback address" in r["error"], r)
for u, j in ok_ids.items():
    r = wait_job_done(c, j, 10)
    check(f"plain http on: {u} is sent and succeeds", r["state"] == "succeeded" and r["status"] == 200, r)
e = m.journal("^/echo$")
check("plain http on: the mock got exactly the 127.0.0.1 and localhost requests",
      sorted(x["query"].get("via", ["?"])[0] for x in e) == ["ipv4", "localhost"],
      [(x["path"], x["query"]) for x in e])
r = wait_job_done(c, v6, 10)
check("plain http on: http://[::1] passes the policy (refused by the network, as the mock "
      "is on 127.0.0.1 only)",
      r["state"] == "failed" and "loopback" not in r["error"] and "plain http" not in r["error"]
      and r["error"].startswith("gave up after 1 attempts"), r)
m.reset()

# ------------------------------------------------ b. only http and https
say("b. only http and https")
sink = socket.socket()
sink.bind(("127.0.0.1", 0))
sink.listen(16)
sink.setblocking(False)
_cleanups.append(sink.close)
SINK = sink.getsockname()[1]
schemes = [f"ftp://127.0.0.1:{SINK}/x", "file:///etc/passwd", f"gopher://127.0.0.1:{SINK}/x"]
for u in schemes:
    res = try_sql(f"SELECT omnichan.http_enqueue('GET', {q(u)})")
    check(f"http_enqueue refuses {u} (22023, 'url must be an http or https URL')",
          res.startswith("22023: url must be an http or https URL"), res)
    res = try_sql(f"INSERT INTO omnichan.job (method, url) VALUES ('GET', {q(u)})")
    check(f"a job INSERTed with {u} is refused by the domain omnichan.job_url (23514)",
          res.startswith("23514: ") and "job_url_check" in res, res)
    res = try_sql(f"UPDATE omnichan.job SET url = {q(u)} WHERE id = {j}")
    check(f"a job's url UPDATEd to {u} is refused by the domain omnichan.job_url (23514)",
          res.startswith("23514: ") and "job_url_check" in res, res)

# the engine's own check, behind the domain's
url_check = c.val("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                  " WHERE contypid = 'omnichan.job_url'::regtype AND conname = 'job_url_check'")
c.sql("ALTER DOMAIN omnichan.job_url DROP CONSTRAINT job_url_check")
ids = {u: int(c.val(f"INSERT INTO omnichan.job (method, url, max_attempts) VALUES ('GET', {q(u)}, 3) "
                    f"RETURNING id")) for u in schemes}
for u, j in ids.items():
    r = wait_job_done(c, j, 10)
    check(f"domain check dropped: the engine fails {u} at once (1 attempt, "
          f"'only http and https URLs are allowed', no response body)",
          r["state"] == "failed" and r["attempts"] == 1
          and "only http and https URLs are allowed" in r["error"]
          and c.val(f"SELECT response_body IS NULL FROM omnichan.job WHERE id = {j}") == "t", r)
try:
    conn, _ = sink.accept()
    conn.close()
    accepted = True
except BlockingIOError:
    accepted = False
check("domain check dropped: no connection reached the ftp/gopher port", not accepted)
c.sql(f"DELETE FROM omnichan.job WHERE id IN ({','.join(str(j) for j in ids.values())})")
c.sql(f"ALTER DOMAIN omnichan.job_url ADD CONSTRAINT job_url_check {url_check}")
res = try_sql(f"INSERT INTO omnichan.job (method, url) VALUES ('GET', {q(schemes[0])})")
check("the domain's check is back", res.startswith("23514: "), res)
check("the mock received nothing in b", m.count() == 0, m.journal())

# ------------------------------------------------ c. methods and bodies
say("c. methods and bodies")
XML = '<?xml version="1.0" encoding="UTF-8"?>\n<stock sku="A-1">\u00e9t\u00e9 &amp; 3</stock>\n'.encode()
FORM = b"sku=A-1&qty=3&note=caf%C3%A9+%26+more"
BIN = bytes(range(256)) + b"\x00\x00tail\x00"
cases = [
    # name, method, headers, body, expected Content-Type (None: absent)
    ("DELETE with a body", "DELETE", {"Content-Type": "application/json"}, b'{"ids":[1,2]}',
     "application/json"),
    ("DELETE without a body", "DELETE", {}, None, None),
    ("HEAD", "HEAD", {}, None, None),
    ("PUT text/xml", "PUT", {"Content-Type": "text/xml; charset=utf-8"}, XML, "text/xml; charset=utf-8"),
    ("PATCH form", "PATCH", {"Content-Type": "application/x-www-form-urlencoded"}, FORM,
     "application/x-www-form-urlencoded"),
    ("POST binary", "POST", {"Content-Type": "application/octet-stream"}, BIN, "application/octet-stream"),
]
jobs = {}
for i, (name, method, headers, body, _) in enumerate(cases):
    jobs[name] = enqueue_body(method, f"{B}/echo?case={i}", headers, body)
for i, (name, method, headers, body, ctype) in enumerate(cases):
    r = wait_job_done(c, jobs[name], 10)
    check(f"{name}: job succeeded with 200 in 1 attempt",
          r["state"] == "succeeded" and r["status"] == 200 and r["attempts"] == 1, r)
    e = [x for x in m.journal("^/echo$") if x["query"].get("case") == [str(i)]]
    if not check(f"{name}: exactly 1 request in the journal", len(e) == 1, len(e)):
        continue
    e = e[0]
    got = raw_body(e)
    want = body or b""
    check(f"{name}: the journal has method {method}", e["method"] == method, e["method"])
    check(f"{name}: Content-Type is {ctype!r}", header(e, "Content-Type") == ctype, e["headers"])
    check(f"{name}: the exact body bytes ({len(want)} bytes, sha256 {sha(want)})",
          got == want, f"got {len(got)} bytes, sha256 {sha(got)}")
    if body is None:
        check(f"{name}: no Content-Length or Transfer-Encoding sent",
              header(e, "Content-Length") in (None, "0") and header(e, "Transfer-Encoding") is None,
              e["headers"])
    else:
        check(f"{name}: Content-Length {len(body)}", header(e, "Content-Length") == str(len(body)),
              e["headers"])
    row = c.sql(f"SELECT response_status, encode(response_body, 'hex'), "
                f"       response_headers->>'content-length' "
                f"  FROM omnichan.job WHERE id = {jobs[name]}")[0]
    rbody = bytes.fromhex(row[1]) if row[1] else b""
    if method == "HEAD":
        check("HEAD: response_status 200, empty response_body, response_headers kept",
              row[0] == "200" and rbody == b"" and row[2] is not None and int(row[2]) > 0, row)
    else:
        try:
            echo = json.loads(rbody)
        except ValueError:
            echo = {}
        echoed = base64.b64decode(echo.get("body", "")) if echo.get("body_encoding") == "base64" \
            else echo.get("body", "").encode("utf-8")
        check(f"{name}: response_status 200 and response_body is the mock's echo "
              f"(method {method}, same body)",
              row[0] == "200" and echo.get("method") == method and echoed == want,
              f"status {row[0]}, body {rbody[:200]!r}")
m.reset()

# ------------------------------------------------ d. connect timeout
say("d. connect timeout")
# A listener that never accepts, its accept queue filled: Linux then drops
# further SYNs (tcp_abort_on_overflow = 0), so a connect neither succeeds
# nor is refused: it times out.
hole = socket.socket()
hole.bind(("127.0.0.1", 0))
hole.listen(0)
_cleanups.append(hole.close)
HOLE = hole.getsockname()[1]
fillers = []
for _ in range(3):
    f = socket.socket()
    f.setblocking(False)
    f.connect_ex(("127.0.0.1", HOLE))
    fillers.append(f)
    _cleanups.append(f.close)
time.sleep(0.2)
probe = socket.socket()
probe.settimeout(0.5)
try:
    probe.connect(("127.0.0.1", HOLE))
    how = "connected"
except socket.timeout:
    how = "timed out"
except OSError as exc:
    how = errno.errorcode.get(exc.errno, str(exc))
probe.close()
if not check("the full listener's SYNs are dropped: a bare connect times out (not refused)",
             how == "timed out", how):
    finish()

c.set_conf(http_connect_timeout="300")
time.sleep(RELOAD_S)
t0 = time.monotonic()
j = enqueue(c, f"http://127.0.0.1:{HOLE}/never", max_attempts=3)
r = wait_job_done(c, j, 15)
took = time.monotonic() - t0
rows = sync_log(j)
say(f"connect timeout: job {r}, sync_log {rows}, {took:.2f} s in all")
check("connect timeout: 3 attempts, retried as a network error, then gave up",
      r["state"] == "failed" and r["attempts"] == 3 and r["error"].startswith("gave up after 3 attempts")
      and [x[:2] for x in rows] == [["1", "retry"], ["2", "retry"], ["3", "failed"]], rows)
durations = [float(x[2]) for x in rows]
check(f"connect timeout: each attempt took ~300 ms (sync_log duration_ms {durations}), "
      f"far below omnichan.http_timeout ({HTTP_TIMEOUT_MS} ms)",
      len(durations) == 3 and all(290 <= d < 1000 for d in durations), durations)
check("connect timeout: every attempt's error names the connection timeout",
      len(rows) == 3 and all("omnichan.http_connect_timeout" in x[3] for x in rows),
      [x[3] for x in rows])
check("connect timeout: the mock received nothing", m.count() == 0)
for f in fillers:
    f.close()
hole.close()

# the whole-request timeout, on a connection that was made, is named as such
c.set_conf(http_connect_timeout="5000", http_timeout="500")
time.sleep(RELOAD_S)
j = enqueue(c, f"{B}/slow/1500", max_attempts=1)
r = wait_job_done(c, j, 10)
check("request timeout: a 1.5 s answer with omnichan.http_timeout = 500 ms fails, the error naming "
      "omnichan.http_timeout (not the connection timeout)",
      r["state"] == "failed" and "omnichan.http_timeout (500 ms)" in r["error"]
      and "http_connect_timeout" not in r["error"] and m.count("^/slow/1500$") == 1, r)
c.set_conf(http_timeout=str(HTTP_TIMEOUT_MS))
time.sleep(RELOAD_S)

# ------------------------------------------------ e. keep-alive
say("e. keep-alive")
m2 = Mock("generic")
c.sql(f"SELECT omnichan.channel_create('ka', 'etsy', '{{\"shop_id\": 1, \"endpoint\": \"{m2.base}\"}}')")
c.sql("SELECT omnichan.rate_limit_set('ka', '*', 1000, 1000, 1)")
c.sql(f"SELECT omnichan.http_enqueue('GET', '{m2.base}/echo?n=' || i, channel => 'ka', operation => 'push') "
      f"  FROM generate_series(1, 20) i")
wait_for("20 keep-alive jobs to succeed", lambda: c.val(
    "SELECT count(*) FROM omnichan.job j JOIN omnichan.channel ch ON ch.id = j.channel_id "
    " WHERE ch.name = 'ka' AND j.operation = 'push' AND j.state = 'succeeded'") == "20", 20)
e = m2.journal("^/echo$")
conns = sorted({x["connection"] for x in e})
say(f"keep-alive: {len(e)} requests on connections {conns}")
check("keep-alive: 20 requests, all answered 200", len(e) == 20 and all(x["status"] == 200 for x in e),
      len(e))
check(f"keep-alive: 20 sequential requests used <= 2 TCP connections ({len(conns)})",
      0 < len(conns) <= 2, conns)

finish()
