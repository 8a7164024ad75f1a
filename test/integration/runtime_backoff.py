#!/usr/bin/python3
"""runtime_backoff: the launcher's restart backoff starts over once a worker
has been healthy for a minute.

A worker that exits is started again after 1 s, then 2 s, 4 s ... up to
60 s while it keeps exiting; one that ran for at least 60 s before it
exited is started again after 1 s, as after a first failure.  Checks, with
SIGTERM of the worker (an exit the postmaster leaves to the launcher):

  - two quick exits: "restarting in b s", then "restarting in 2b s" (b = 1,
    or 2 when the launcher's first start came before the test created the
    database), and the new workers start that long after each exit (server
    log times);
  - an exit after 61 s of healthy running: "restarting in 1 s" again, not
    4b s, and the new worker starts about 1 s later.

About 70 s, most of it the minute the worker must stay up.
"""

import datetime
import os
import re
import signal
import time

from runtime_lib import check, fatal, run, say, start_cluster, wait_for

MSG = re.compile(r'^(\S+ \S+) UTC \[\d+\] LOG:  omnichan worker of database "odoo" exited; '
                 r'restarting in (\d+) s$', re.M)
START = re.compile(r'^(\S+ \S+) UTC \[\d+\] LOG:  omnichan worker started for database "odoo"', re.M)


def stamp(text):
    return datetime.datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")


def main():
    c = start_cluster("runtime_backoff")

    def term_and_wait(pid, what):
        """SIGTERM pid, wait for its replacement; return the new pid."""
        os.kill(pid, signal.SIGTERM)
        new = c.wait_worker("odoo", 15, replacing=pid)
        if not new:
            fatal(f"no worker after {what}:\n{c.log_tail()}")
        return new

    def exits():
        return [(stamp(t), int(n)) for t, n in MSG.findall(c.log_text())]

    def starts():
        return [stamp(t) for t in START.findall(c.log_text())]

    pid = c.wait_worker("odoo")
    started_text = c.log_text()
    if not START.search(started_text):
        fatal("the server log does not say when the worker started (the pattern of this test is stale):\n"
              + c.log_tail())

    # 1. two quick exits (after those of the start: the launcher may have
    #    started the worker before the test created its database)
    before = exits()
    b = before[-1][1] * 2 if before else 1
    say(f"exits before the test: {[n for _, n in before]}; the next backoff is {b} s")
    pid = term_and_wait(pid, "the first SIGTERM")
    pid = term_and_wait(pid, "the second SIGTERM")
    seen_up = time.monotonic()          # the new worker started before this
    ex = exits()[len(before):]
    check(f"two quick exits: restarting in {b} s, then in {2 * b} s (doubling)",
          [n for _, n in ex] == [b, 2 * b], ex)
    st = starts()
    delays = [min((s - t).total_seconds() for s in st if s > t) for t, _ in ex]
    check(f"each new worker starts that long after the exit ({b} s, {2 * b} s; +0.8 s)",
          len(delays) == 2 and b <= delays[0] <= b + 0.8 and 2 * b <= delays[1] <= 2 * b + 0.8, delays)

    # 2. a minute of healthy running, then an exit
    wait = 61.0 - (time.monotonic() - seen_up)
    say(f"letting the worker (pid {pid}) run for a minute: {max(0.0, wait):.0f} s")
    time.sleep(max(0.0, wait))
    check("the worker stayed up meanwhile", c.workers("odoo") == [pid], c.workers("odoo"))
    pid = term_and_wait(pid, "the third SIGTERM")
    ex = exits()[len(before):]
    check(f"an exit after 61 s of healthy running: restarting in 1 s again, not in {4 * b} s",
          [n for _, n in ex] == [b, 2 * b, 1], ex)
    st = starts()
    delay = min((s - ex[-1][0]).total_seconds() for s in st if s > ex[-1][0])
    check("and the new worker starts about 1 s later (+0.8 s)", 1.0 <= delay <= 1.8, delay)
    wait_for("the new worker", lambda: c.workers("odoo") == [pid], 5)


if __name__ == "__main__":
    run(main)
