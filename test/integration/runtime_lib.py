"""Shared helpers of the runtime_*.py integration tests (not a test itself:
it is not executable, so test/run.sh does not run it).

Each test starts its OWN throwaway cluster (it sets omnichan.databases and
kills processes), creates the Odoo fixture database "odoo" in it with
test/lib.sh's oc_create_fixture_db, installs the extension and waits for the
sync worker; mock marketplaces are started with test/mock/mockctl.py.  Every
check prints "ok: ..." or "FAIL: ..."; finish() exits 1 if any failed.
"""

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "mock"))

import mockctl  # noqa: E402

PGBIN = os.environ.get("OC_PGBIN", "/usr/lib/postgresql/15/bin")

_failures = []
_cleanups = []
_t0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - _t0:6.2f}s] {msg}", flush=True)


def check(what, cond, detail=""):
    if cond:
        say(f"ok: {what}")
    else:
        say(f"FAIL: {what}" + (f": {detail}" if detail else ""))
        _failures.append(what)
    return cond


def fatal(msg):
    say(f"FAIL: {msg}")
    _failures.append(msg)
    finish()


def finish():
    for fn in reversed(_cleanups):
        try:
            fn()
        except Exception as e:  # cleanup must not hide the result
            say(f"cleanup error: {e}")
    _cleanups.clear()
    if _failures:
        say(f"{len(_failures)} check(s) failed")
        for f in _failures:
            print(f"  - {f}")
        sys.exit(1)
    say("PASS")
    sys.exit(0)


def run(main):
    """Run a test's main(), then finish(): a crash of the test itself (an
    exception) is a failure, reported with its traceback and cleaned up."""
    try:
        main()
    except SystemExit:
        raise
    except Exception as exc:
        traceback.print_exc()
        fatal(f"the test crashed: {exc!r}")
    finish()


def wait_for(what, fn, timeout=10.0, interval=0.05):
    """Poll fn() until it returns a true value; return it, or None after
    timeout (the caller checks)."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            say(f"(timed out after {timeout}s waiting for {what})")
            return None
        time.sleep(interval)


class Cluster:
    """A throwaway PostgreSQL 15 cluster with omnichan preloaded."""

    def __init__(self, name, conf=()):
        base = os.environ.get("OC_RUN_DIR")
        if base and os.path.isdir(base):
            self.dir = os.path.join(base, name)
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            self.dir = tempfile.mkdtemp(prefix=f"omnichan-{name}-")
            os.chmod(self.dir, 0o755)
            _cleanups.append(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        lines = ["shared_preload_libraries = 'omnichan'",
                 "omnichan.http_allow_plain_loopback = on",
                 "log_min_messages = log"] + list(conf)
        args = " ".join(shlex.quote(a) for a in lines)
        self.env = dict(os.environ, PGHOST=self.dir, PGPORT="5432", PGUSER="postgres")
        for k in ("PGDATABASE", "PGPASSWORD", "PGSERVICE"):
            self.env.pop(k, None)
        self._bash(f"oc_cluster_start {shlex.quote(self.dir)} {args}", "cluster start")
        _cleanups.append(self.stop)

    def _bash(self, script, what):
        r = subprocess.run(["bash", "-c", f". {shlex.quote(ROOT)}/test/lib.sh; {script}"],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            fatal(f"{what} failed: {r.stdout}{r.stderr}")
        return r.stdout

    def pg_ctl(self, *args):
        cmd = [os.path.join(PGBIN, "pg_ctl"), "-D", self.data] + list(args)
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True)

    def stop(self):
        subprocess.run(["bash", "-c", f". {shlex.quote(ROOT)}/test/lib.sh; "
                        f"oc_cluster_stop {shlex.quote(self.dir)}"],
                       env=self.env, capture_output=True)

    def create_db(self, db="odoo"):
        self._bash(f"oc_create_fixture_db {shlex.quote(db)} && "
                   f"oc_psql {shlex.quote(db)} -c 'CREATE EXTENSION omnichan'",
                   f"creating database {db}")

    def sql(self, query, db="odoo", check_error=True):
        """Run query; return the rows of the last statement as lists of
        strings (psql -At, fields split on \\x1f)."""
        r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-d", db, "-c", query],
                           env=self.env, capture_output=True, text=True)
        if r.returncode != 0:
            if check_error:
                fatal(f"SQL failed: {query}\n{r.stderr}")
            return None
        return [line.split("\x1f") for line in r.stdout.splitlines()]

    def val(self, query, db="odoo"):
        rows = self.sql(query, db)
        return rows[0][0] if rows else None

    def sql_ok(self, query, db="odoo"):
        """Run query, tolerating failure (the server may be restarting)."""
        return self.sql(query, db, check_error=False)

    def set_conf(self, **settings):
        """ALTER SYSTEM each omnichan.<name> = value, then reload."""
        for k, v in settings.items():
            self.sql(f"ALTER SYSTEM SET omnichan.{k} = '{v}'", db="postgres")
        self.sql("SELECT pg_reload_conf()", db="postgres")

    def workers(self, db=None):
        """pids of the omnichan workers (of db, or all)."""
        rows = self.sql_ok("SELECT pid, datname FROM pg_stat_activity "
                           " WHERE backend_type = 'omnichan worker' ORDER BY pid",
                           db="postgres") or []
        return [int(r[0]) for r in rows if db is None or r[1] == db]

    def wait_worker(self, db="odoo", timeout=15.0, replacing=None):
        """pid of the worker of db, once there is one; with replacing, a
        worker other than that pid (one just killed: until the postmaster
        has reaped it, pg_stat_activity may still list it, and the cluster
        then goes through crash recovery before a new worker starts)."""
        pids = wait_for(f"the worker of {db}",
                        lambda: [p for p in self.workers(db) if p != replacing], timeout)
        return pids[0] if pids else None

    def postmaster_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])


def start_cluster(name, conf=(), dbs=("odoo",)):
    """Cluster whose omnichan.databases is dbs, each created from the
    fixture with the extension installed and served by a worker."""
    c = Cluster(name, [f"omnichan.databases = '{','.join(dbs)}'"] + list(conf))
    for db in dbs:
        c.create_db(db)
    for db in dbs:
        if not c.wait_worker(db, 20):
            fatal(f"no omnichan worker for {db}:\n{c.log_tail()}")
    say(f"cluster {c.dir} up, workers of {', '.join(dbs)} running")
    return c


class Mock:
    def __init__(self, marketplace="generic"):
        self.proc, self.port = mockctl.start(marketplace)
        self.base = f"http://127.0.0.1:{self.port}"
        _cleanups.append(lambda: mockctl.stop(self.proc))

    def journal(self, path=None):
        return mockctl.journal(self.port, path=path)

    def count(self, path=None):
        return len(self.journal(path))

    def fault(self, rule):
        mockctl.add_fault(self.port, rule)

    def clear_faults(self):
        mockctl.clear_faults(self.port)

    def health(self):
        """journal size, faults, requests in flight now and the most at once"""
        return mockctl.health(self.port)

    def clear_journal(self):
        mockctl.clear_journal(self.port)

    def reset(self):
        mockctl.reset(self.port)


def enqueue(c, url, method="GET", headers=None, channel=None, operation="http",
            max_attempts=8, db="odoo"):
    h = json.dumps(headers or {}).replace("'", "''")
    ch = "NULL" if channel is None else f"'{channel}'"
    return int(c.val(f"SELECT omnichan.http_enqueue('{method}', '{url}', '{h}'::jsonb, NULL, "
                     f"{ch}, '{operation}', {max_attempts})", db))


def job(c, jid, db="odoo"):
    rows = c.sql(f"SELECT state, attempts, COALESCE(response_status, 0), COALESCE(error, '') "
                 f"  FROM omnichan.job WHERE id = {jid}", db)
    if not rows:
        return None
    s, a, st, e = rows[0]
    return {"state": s, "attempts": int(a), "status": int(st), "error": e}


def wait_job_done(c, jid, timeout=15.0, db="odoo"):
    def done():
        j = job(c, jid, db)
        return j if j and j["state"] in ("succeeded", "failed", "cancelled") else None
    return wait_for(f"job {jid} to finish", done, timeout) or job(c, jid, db)


def gaps(entries):
    t = [e["time"] for e in entries]
    return [round(b - a, 3) for a, b in zip(t, t[1:])]
