#!/usr/bin/python3
"""runtime_standby: a standby idles, a promoted standby syncs.

A throwaway primary with omnichan.databases = 'odoo' and its worker
running; a streaming standby made from it with pg_basebackup -R (as the
postgres OS user, its own data directory, socket directory and port).
Checks:

- the standby is in recovery and streams the primary's changes;
- on the standby no "omnichan launcher" and no "omnichan worker" run (not in
  ps, not in pg_stat_activity: the launcher, which has no database
  connection, shows in ps only): both are BgWorkerStart_RecoveryFinished;
- after pg_ctl promote the launcher and the worker start, and a job queued
  on the promoted server is sent (the mock's journal has it).

Both clusters are stopped and removed on every path (runtime_lib cleanups).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, PGBIN, Cluster, Mock, check, enqueue, fatal, finish, say,  # noqa: E402
                         start_cluster, wait_for, wait_job_done, _cleanups)

STANDBY_PORT = 5433


def as_postgres(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.getuid() == 0 else cmd


def make_standby(primary):
    """A Cluster object for a standby of primary (not started by __init__)."""
    s = Cluster.__new__(Cluster)
    base = os.environ.get("OC_RUN_DIR")
    if base and os.path.isdir(base):
        s.dir = os.path.join(base, "runtime_standby-standby")
        shutil.rmtree(s.dir, ignore_errors=True)
        os.makedirs(s.dir)
    else:
        s.dir = tempfile.mkdtemp(prefix="omnichan-standby-")
        _cleanups.append(lambda: shutil.rmtree(s.dir, ignore_errors=True))
    os.chmod(s.dir, 0o755)
    if os.getuid() == 0:
        shutil.chown(s.dir, "postgres", "postgres")
    s.data = os.path.join(s.dir, "data")
    s.log = os.path.join(s.dir, "server.log")
    s.env = dict(primary.env, PGHOST=s.dir, PGPORT=str(STANDBY_PORT))
    _cleanups.append(s.stop)     # before the primary's stop: runs first

    r = subprocess.run(as_postgres([os.path.join(PGBIN, "pg_basebackup"), "-D", s.data, "-R",
                                    "-X", "stream", "--no-sync", "-c", "fast",
                                    "-h", primary.dir, "-p", "5432", "-U", "postgres"]),
                       env=primary.env, capture_output=True, text=True)
    if r.returncode != 0:
        fatal(f"pg_basebackup failed: {r.stdout}{r.stderr}")
    with open(os.path.join(s.data, "postgresql.conf"), "a") as f:
        f.write(f"\n# the standby's own socket directory and port\n"
                f"unix_socket_directories = '{s.dir}'\nport = {STANDBY_PORT}\n")
    r = s.pg_ctl("-l", s.log, "-w", "-t", "30", "start")
    if r.returncode != 0:
        fatal(f"the standby did not start: {r.stdout}{r.stderr}\n{s.log_tail() if os.path.exists(s.log) else ''}")
    return s


def omnichan_processes(cluster):
    """Titles of the omnichan background processes of cluster (ps: the
    children of its postmaster)."""
    try:
        ppid = cluster.postmaster_pid()
    except OSError:
        return []
    r = subprocess.run(["ps", "-o", "args=", "--ppid", str(ppid)], capture_output=True, text=True)
    return [line.strip() for line in r.stdout.splitlines() if "omnichan" in line]


def activity(cluster):
    rows = cluster.sql_ok("SELECT backend_type FROM pg_stat_activity "
                          " WHERE backend_type LIKE 'omnichan%' ORDER BY 1", db="postgres")
    return None if rows is None else [r[0] for r in rows]


def main():
    primary = start_cluster("runtime_standby", conf=["omnichan.naptime = 500"])
    m = Mock("generic")
    procs = omnichan_processes(primary)
    check("the primary runs the launcher and the worker (ps)",
          any("launcher" in p for p in procs) and any("worker odoo" in p for p in procs), str(procs))
    check("the worker shows in the primary's pg_stat_activity (the launcher, without a "
          "database connection, does not)", activity(primary) == ["omnichan worker"], str(activity(primary)))

    standby = make_standby(primary)
    check("the standby is in recovery", standby.val("SELECT pg_is_in_recovery()") == "t")
    primary.sql("CREATE TABLE public.standby_probe AS SELECT 42 AS v")
    got = wait_for("the standby to replay the primary's change", lambda: standby.sql_ok(
        "SELECT v FROM public.standby_probe") == [["42"]], 10)
    check("the standby streams the primary's changes", got is not None)
    check("the extension is there on the standby too",
          standby.val("SELECT extversion FROM pg_extension WHERE extname = 'omnichan'") is not None)

    # the standby has omnichan.databases = 'odoo' too: give it a moment to
    # (wrongly) start something
    time.sleep(1.5)
    procs = omnichan_processes(standby)
    check("no omnichan launcher or worker process runs on the standby (ps)", procs == [], str(procs))
    check("nor in the standby's pg_stat_activity", activity(standby) == [], str(activity(standby)))
    check("the standby's omnichan.databases is set (so idling is the recovery rule, not the config)",
          standby.val("SHOW omnichan.databases", db="postgres") == "odoo")

    # promote
    primary.stop()
    r = standby.pg_ctl("-w", "-t", "30", "promote")
    check("pg_ctl promote succeeds", r.returncode == 0, r.stdout + r.stderr)
    check("the promoted server is out of recovery", standby.val("SELECT pg_is_in_recovery()") == "f")
    pid = standby.wait_worker("odoo", 15)
    check("after promotion the worker starts", pid is not None, standby.log_tail())
    procs = omnichan_processes(standby)
    check("and the launcher: both show in ps",
          any("launcher" in p for p in procs) and any("worker odoo" in p for p in procs), str(procs))
    jid = enqueue(standby, f"{m.base}/echo?after=promote")
    j = wait_job_done(standby, jid, 10)
    check("a job queued on the promoted server is sent",
          j is not None and j["state"] == "succeeded" and m.count("/echo") == 1,
          f"{j} journal={[e['path'] for e in m.journal()]}")


run(main)
