#!/usr/bin/python3
"""runtime_secrets: credentials sent by the sync worker never leak into
omnichan.sync_log, omnichan.channel_status, the jobs' error texts,
pg_stat_activity or the server log.

Jobs of a channel carry an "Authorization: Bearer <secret>" header and an
"access_token=<secret>" query parameter, and end in every way: success,
404, 503 until giving up, connection reset, timeout, oversized body, and a
plain-http URL refused before sending.  The mock's journal shows that the
secrets were really sent; sync_log shows the URL with access_token=***.
"""

from runtime_lib import (Mock, check, enqueue, finish, start_cluster,
                         wait_job_done)

AUTH = "Bearer S3CRET-AUTH-7f3a9c"
TOKEN = "S3CRET-QUERY-b81d44"
c = start_cluster("runtime_secrets", [
    "omnichan.naptime = 200",
    "omnichan.retry_base_delay = 50",
    "omnichan.http_timeout = 500",
    "omnichan.http_max_response_size = 16",
    "log_min_messages = debug1",
    "omnichan.circuit_failure_threshold = 100",
])
m = Mock("generic")
c.sql(f"SELECT omnichan.channel_create('sec', 'etsy', '{{\"shop_id\": 1, \"endpoint\": \"{m.base}\"}}')")
c.sql("SELECT omnichan.rate_limit_set('sec', '*', 100, 100)")
m.fault({"route": "^/bytes/10$", "kind": "reset", "count": -1})
m.fault({"route": "^/bytes/11$", "kind": "timeout", "ms": 3000, "count": -1})

q = f"?shop=1&access_token={TOKEN}&x=y"
urls = [f"{m.base}/echo{q}", f"{m.base}/status/404{q}", f"{m.base}/status/503{q}",
        f"{m.base}/bytes/10{q}", f"{m.base}/bytes/11{q}", f"{m.base}/bytes/100000{q}",
        f"http://192.0.2.1/orders{q}"]
ids = [enqueue(c, u, headers={"Authorization": AUTH}, channel="sec", max_attempts=2) for u in urls]
done = [wait_job_done(c, j, 15) for j in ids]
check("every job finished", all(d and d["state"] in ("succeeded", "failed") for d in done), done)

e = m.journal()
check("the mock really received the Authorization header",
      any(x["headers"].get("Authorization") == AUTH for x in e))
check("the mock really received the access_token",
      any(x["query"].get("access_token") == [TOKEN] for x in e))

sync_log = c.val("SELECT string_agg(l::text, E'\\n') FROM omnichan.sync_log l")
status = c.val("SELECT string_agg(s::text, E'\\n') FROM omnichan.channel_status s")
errors = c.val("SELECT string_agg(COALESCE(error, '') || ' ' || COALESCE(response_headers::text, ''), E'\\n') "
               "  FROM omnichan.job")
state = c.val("SELECT string_agg(s::text, E'\\n') FROM omnichan.channel_state s")
activity = c.val("SELECT string_agg(COALESCE(query, ''), E'\\n') FROM pg_stat_activity "
                 " WHERE backend_type = 'omnichan worker'")
log = c.log_text()
for where, text in (("sync_log", sync_log), ("channel_status", status), ("channel_state", state),
                    ("job.error / response_headers", errors), ("pg_stat_activity of the worker", activity),
                    ("the server log", log)):
    text = text or ""
    for what, secret in (("Authorization value", AUTH.split()[1]), ("access_token value", TOKEN)):
        check(f"the {what} is not in {where}", secret not in text,
              [ln for ln in text.splitlines() if secret in ln][:3])
rows = c.sql("SELECT DISTINCT url FROM omnichan.sync_log ORDER BY 1")
check("sync_log has the URLs with access_token=*** (and the other parameters)",
      len(rows) == len(urls) and all("access_token=***" in r[0] and "shop=1" in r[0] and "x=y" in r[0]
                                     for r in rows), rows)
check("sync_log has one row per attempt, all attempts logged",
      c.val("SELECT count(*) FROM omnichan.sync_log") == str(sum(d["attempts"] for d in done if d)))
finish()
