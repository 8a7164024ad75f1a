#!/usr/bin/python3
"""bench/push_mock.py -- test/mock/server.py for bench/push.sh, with two
additions the benchmark needs (test/mock itself is not changed):

* request counters per route (the journal keeps only the latest 10 000
  entries, a 100k-listing resync sends more requests than that);
* for Shopify, the time the mock applied each quantity of the inventory items
  it is told to watch (inventorySetQuantities, recorded under the state lock
  right after the levels were written).

Admin routes added (never journaled, like the others):

  GET    /_mock/bench          {"requests": N, "by_route": {...}, "applied": {item: [[t, qty], ...]}}
  POST   /_mock/bench          {"watch": [inventory item gid, ...]}: record those items' applies
  DELETE /_mock/bench          counters and applies back to zero (the watch list stays)

Usage: push_mock.py MARKETPLACE PORT_FILE [SEED.json]
The journal is limited to 1000 entries (bodies of 100k-listing runs are not
worth keeping); everything else is test/mock/core.py as is.
"""

import collections
import json
import os
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "test", "mock"))

import core  # noqa: E402
import marketplaces  # noqa: E402
import server  # noqa: E402


def main():
    name, port_file = sys.argv[1], sys.argv[2]
    seed = None
    if len(sys.argv) > 3:
        with open(sys.argv[3], encoding="utf-8") as f:
            seed = json.load(f)
    mp = marketplaces.load(name)
    app = core.MockApp(mp, seed, (), journal=core.Journal(max_entries=1000))

    lock = threading.Lock()
    counts = collections.Counter()
    watch = set()
    applied = collections.defaultdict(list)

    begin = app.begin

    def counting_begin(request):
        entry, rule, allowed = begin(request)
        with lock:
            counts[request.route.name if request.route else "(no route)"] += 1
        return entry, rule, allowed
    app.begin = counting_begin

    if name == "shopify":
        set_quantities = mp._set_quantities

        def recording_set_quantities(version, inp, quantities, data):
            result = set_quantities(version, inp, quantities, data)
            if not result["data"]["inventorySetQuantities"]["userErrors"]:
                t = time.time()
                with lock:
                    for q in quantities:
                        if q["inventoryItemId"] in watch:
                            applied[q["inventoryItemId"]].append([t, q["quantity"]])
            return result
        mp._set_quantities = recording_set_quantities

    def bench_get(_request):
        with lock:
            return core.json_response({"requests": sum(counts.values()),
                                       "by_route": dict(counts), "applied": dict(applied)})

    def bench_post(request):
        body = json.loads(request.body or b"{}")
        with lock:
            watch.update(body.get("watch", []))
        return core.json_response({"watching": len(watch)})

    def bench_delete(_request):
        with lock:
            counts.clear()
            applied.clear()
        return core.json_response({"status": "cleared"})

    app._admin.routes += [core.Route("GET", r"/_mock/bench", bench_get),
                          core.Route("POST", r"/_mock/bench", bench_post),
                          core.Route("DELETE", r"/_mock/bench", bench_delete)]

    srv = core.MockServer(app, 0, idle_timeout=600)

    def stop(_signum, _frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.write_port_file(port_file, srv.server_address[1])
        srv.serve_forever(poll_interval=0.1)
    finally:
        srv.server_close()
        try:
            os.unlink(port_file)
        except FileNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
