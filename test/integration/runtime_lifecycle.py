#!/usr/bin/python3
"""runtime_lifecycle: the launcher and the per-database sync workers across
reloads, signals, crashes and extension re-installs; request counts from a
mock marketplace's journal.

  - the worker shows in pg_stat_activity (backend_type and application_name
    'omnichan worker'); while a request is in flight its state is 'active'
    and its query "waiting for 1 request(s) in flight"; with nothing to do
    its state is 'idle';
  - a reload applies a changed omnichan.http_timeout;
  - adding a database to omnichan.databases + reload starts its worker; a
    job queued in each database is sent by its own worker; removing the
    database + reload stops its worker;
  - a worker that cannot start (a database in omnichan.databases that does
    not exist) is started again 1, 2, 4 s after each failure (server log
    times); once the database exists the next attempt, 8 s later, starts a
    worker that stays;
  - SIGTERM of the worker while a request is in flight: it exits in < 2 s,
    the launcher restarts it, the job is re-queued and sent exactly once more;
  - kill -9 of the worker mid-request: the postmaster restarts everything,
    the job is sent once more and completes, a job queued meanwhile too;
  - an immediate shutdown mid-request, then a start: the job completes;
  - kill -9 of the postmaster mid-request: its children (the worker among
    them) exit on their own; once the killed postmaster is reaped a start
    needs no cleanup, and the job is sent exactly once more and completes;
  - DROP EXTENSION / CREATE EXTENSION while the worker runs: the same worker
    serves the new installation.
"""

import collections
import datetime
import os
import re
import signal
import time

from runtime_lib import (Mock, check, enqueue, fatal, finish, gaps, job, say,
                         start_cluster, wait_for, wait_job_done)

c = start_cluster("runtime_lifecycle", [
    "omnichan.naptime = 200",
    "omnichan.retry_base_delay = 100",
    "restart_after_crash = on",
])
m = Mock("generic")
B = m.base


def arrived(path, n=1, timeout=10):
    return wait_for(f"{n} request(s) to {path}",
                    lambda: (lambda e: e if len(e) >= n else None)(m.journal(f"^{path}$")), timeout) or []


# 1. visible in pg_stat_activity
rows = c.sql("SELECT backend_type, application_name, datname FROM pg_stat_activity "
             " WHERE backend_type = 'omnichan worker'", db="postgres")
check("one omnichan worker in pg_stat_activity, application_name 'omnichan worker', database odoo",
      rows == [["omnichan worker", "omnichan worker", "odoo"]], rows)

# 1b. the activity text: busy while a request is in flight, idle after
def activity_samples(seconds):
    """(state, query) of the worker every ~50 ms for that long"""
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rows = c.sql_ok("SELECT state, COALESCE(query, '') FROM pg_stat_activity "
                        " WHERE backend_type = 'omnichan worker' AND datname = 'odoo'", db="postgres")
        if rows:
            out.append(tuple(rows[0]))
        time.sleep(0.05)
    return out


j = enqueue(c, f"{B}/slow/3000")
arrived("/slow/3000")
s = activity_samples(1.5)
say(f"pg_stat_activity of the worker while a request is in flight: {collections.Counter(s)}")
busy = [x for x in s if x == ("active", "waiting for 1 request(s) in flight")]
check("while a request is in flight, the worker is 'active', query 'waiting for 1 request(s) in flight' "
      "(>= 90 % of samples)", len(s) >= 10 and len(busy) >= 0.9 * len(s), collections.Counter(s))
wait_job_done(c, j, 10)
time.sleep(0.5)
s = activity_samples(1.5)
say(f"pg_stat_activity of the worker with nothing to do: {collections.Counter(s)}")
check("with nothing to do, the worker is 'idle' (>= 90 % of samples)",
      len(s) >= 10 and len([x for x in s if x[0] == "idle"]) >= 0.9 * len(s), collections.Counter(s))

# 2. reload applies http_timeout
c.set_conf(http_timeout=300)
wait_for("http_timeout = 300ms", lambda: c.val("SHOW omnichan.http_timeout") == "300ms", 5)
pid = c.workers("odoo")[0]
j = enqueue(c, f"{B}/slow/1000", max_attempts=1)
d = wait_job_done(c, j, 10)
check("after a reload, omnichan.http_timeout = 300ms applies to the worker's next request",
      d["state"] == "failed" and "timed out after 3" in d["error"], d)
c.sql("ALTER SYSTEM RESET omnichan.http_timeout", db="postgres")
c.sql("SELECT pg_reload_conf()", db="postgres")
check("the reload did not restart the worker", c.workers("odoo") == [pid], c.workers())

# 3. a second database
c.create_db("odoo2")
c.set_conf(databases="odoo,odoo2")
pid2 = c.wait_worker("odoo2", 10)
check("adding odoo2 to omnichan.databases + reload starts its worker", pid2)
j1 = enqueue(c, f"{B}/echo?db=odoo")
j2 = enqueue(c, f"{B}/echo?db=odoo2", db="odoo2")
d1, d2 = wait_job_done(c, j1, 10), wait_job_done(c, j2, 10, db="odoo2")
dbs = sorted(x["query"].get("db", [""])[0] for x in m.journal("^/echo$"))
check("a job queued in each database is sent by its own worker",
      d1["state"] == "succeeded" and d2["state"] == "succeeded" and dbs == ["odoo", "odoo2"], (d1, d2, dbs))
c.set_conf(databases="odoo")
gone = wait_for("the worker of odoo2 to stop", lambda: not c.workers("odoo2"), 10)
check("removing odoo2 from omnichan.databases + reload stops its worker, odoo's stays",
      gone and c.workers("odoo") == [pid], c.workers())

# 3b. a worker that cannot start is restarted with a growing backoff
NODB = "omnichan_nodb"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")


def log_times(text):
    """Times (epoch seconds, from the log_line_prefix %m) of the server log
    lines containing text."""
    out = []
    for line in c.log_text().splitlines():
        mt = LOG_TIME.match(line)
        if mt and text in line:
            out.append(datetime.datetime.strptime(mt.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return out


FAILED = f'database "{NODB}" does not exist'
c.set_conf(databases=f"odoo,{NODB}")
wait_for("4 attempts to start the worker", lambda: len(log_times(FAILED)) >= 4, 20)
c.sql(f"CREATE DATABASE {NODB}", db="postgres")
t = log_times(FAILED)
g = gaps([{"time": x} for x in t[:4]])
say(f"start attempts of the worker of {NODB}: gaps {g} s")
check("a worker that fails to start is started again 1, 2, 4 s after each failure",
      len(g) == 3 and 0.9 <= g[0] <= 1.8 and 1.9 <= g[1] <= 2.8 and 3.9 <= g[2] <= 4.8, g)
npid = c.wait_worker(NODB, 15)
check("the launcher says so: restarting in 1 s, 2 s, 4 s, 8 s",
      all(f'"{NODB}" exited; restarting in {n} s' in c.log_text() for n in (1, 2, 4, 8)))
started = log_times(f'omnichan worker started for database "{NODB}"')
check("once the database exists, the next attempt, 8 s after the 4th, starts its worker",
      npid and len(t) == 4 and len(started) == 1 and 7.9 <= started[0] - t[3] <= 9.0,
      (npid, len(t), [round(x - t[3], 3) for x in started]))
time.sleep(1.5)
check("... which stays, and odoo's worker was never touched",
      c.workers(NODB) == [npid] and c.workers("odoo") == [pid], (c.workers(NODB), c.workers("odoo")))
c.set_conf(databases="odoo")
wait_for(f"the worker of {NODB} to stop", lambda: not c.workers(NODB), 10)
c.sql(f"DROP DATABASE {NODB} WITH (FORCE)", db="postgres")

# 4. SIGTERM mid-request
j = enqueue(c, f"{B}/slow/1500")
arrived("/slow/1500")
check("the job is running while its request is in flight", job(c, j)["state"] == "running", job(c, j))
t = time.monotonic()
os.kill(pid, signal.SIGTERM)
stopped = wait_for("the worker to exit", lambda: not os.path.exists(f"/proc/{pid}"), 5, 0.01)
el = time.monotonic() - t
check(f"SIGTERM stops the worker mid-request promptly ({el:.2f} s < 2 s)", stopped and el < 2.0)
newpid = c.wait_worker("odoo", 15, replacing=pid)
check("the launcher restarts the worker", newpid and newpid != pid, newpid)
d = wait_job_done(c, j, 10)
n = len(m.journal("^/slow/1500$"))
check("the interrupted job is re-queued and completes, sent exactly once more",
      d["state"] == "succeeded" and n == 2, f"job {d}, {n} requests")
check("the server log tells the job was re-queued", "re-queued 1 request(s)" in c.log_text())

# 5. kill -9 of the worker mid-request
pid = newpid
j = enqueue(c, f"{B}/slow/1501")
arrived("/slow/1501")
os.kill(pid, signal.SIGKILL)
later = None
newpid = c.wait_worker("odoo", 20, replacing=pid)
check("after kill -9 of the worker the postmaster restarts everything, a new worker runs",
      newpid and newpid != pid, newpid)
later = enqueue(c, f"{B}/echo?after=crash")
d = wait_job_done(c, j, 10)
n = len(m.journal("^/slow/1501$"))
check("the job interrupted by kill -9 completes, sent exactly once more",
      d["state"] == "succeeded" and n == 2, f"job {d}, {n} requests")
d = wait_job_done(c, later, 10)
check("a job queued after the crash is sent", d["state"] == "succeeded", d)

# 6. immediate shutdown mid-request, then start
j = enqueue(c, f"{B}/slow/1502")
arrived("/slow/1502")
r = c.pg_ctl("-m", "immediate", "-w", "stop")
check("pg_ctl stop -m immediate", r.returncode == 0, r.stderr)
r = c.pg_ctl("-l", c.log, "-w", "-t", "60", "start")
check("pg_ctl start", r.returncode == 0, r.stderr)
if not c.wait_worker("odoo", 20):
    fatal(f"no worker after the restart:\n{c.log_tail()}")
d = wait_job_done(c, j, 10)
n = len(m.journal("^/slow/1502$"))
check("after an immediate shutdown and a start, the interrupted job completes (sent once more)",
      d["state"] == "succeeded" and n == 2, f"job {d}, {n} requests")

# 6b. kill -9 of the postmaster mid-request, then a start
def children(ppid):
    """pids of the live (not zombie) processes whose parent is ppid"""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid and fields[0] != "Z":
                out.append(int(d))
    return out


def alive(p):
    try:
        with open(f"/proc/{p}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


wpid = c.workers("odoo")[0]
j = enqueue(c, f"{B}/slow/1503")
arrived("/slow/1503")
pm = c.postmaster_pid()
kids = children(pm)
check("the worker is a child of the postmaster", wpid in kids, (wpid, kids))
os.kill(pm, signal.SIGKILL)
left = wait_for("the postmaster's children to exit", lambda: not [p for p in kids if alive(p)], 20)
check("after kill -9 of the postmaster its children exit on their own (the worker mid-request too)",
      left, [p for p in kids if alive(p)])
# the server refuses to start while the pid in postmaster.pid exists, even
# as a zombie (this machine's init may reap orphans late): wait for it
reaped = wait_for("the killed postmaster to be reaped", lambda: not os.path.exists(f"/proc/{pm}"), 15)
if not reaped:
    say("the killed postmaster was never reaped: its postmaster.pid is stale, removed")
    os.unlink(os.path.join(c.data, "postmaster.pid"))
r = c.pg_ctl("-l", c.log, "-w", "-t", "60", "start")
check("pg_ctl start after kill -9 of the postmaster, once its children are gone ("
      + ("postmaster.pid left as it was)" if reaped else "a stale postmaster.pid removed)"),
      r.returncode == 0, r.stderr + r.stdout)
if r.returncode != 0 or not c.wait_worker("odoo", 20):
    fatal(f"no worker after the postmaster was killed and started again:\n{c.log_tail()}")
d = wait_job_done(c, j, 15)
n = len(m.journal("^/slow/1503$"))
check("the job interrupted by kill -9 of the postmaster completes, sent exactly once more",
      d["state"] == "succeeded" and d["attempts"] == 2 and n == 2, f"job {d}, {n} requests")
time.sleep(1)
check("... and never again", len(m.journal("^/slow/1503$")) == 2)

# 7. DROP EXTENSION / CREATE EXTENSION while the worker runs
pid = c.workers("odoo")[0]
c.sql("DROP EXTENSION omnichan CASCADE")
time.sleep(0.3)  # let the worker notice (it polls the catalog every <= 5 s)
c.sql("CREATE EXTENSION omnichan")
j = enqueue(c, f"{B}/echo?after=reinstall")
d = wait_job_done(c, j, 15)
check("after DROP/CREATE EXTENSION the same worker serves the new installation",
      d["state"] == "succeeded" and c.workers("odoo") == [pid], (d, c.workers()))
check("the new installation's job was sent once",
      len([x for x in m.journal("^/echo$") if x["query"].get("after") == ["reinstall"]]) == 1)
say("server log tail:\n" + c.log_tail(15))
finish()
