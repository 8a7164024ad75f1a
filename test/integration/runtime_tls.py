#!/usr/bin/python3
"""runtime_tls: https from the sync worker, against TLS servers on loopback
(test/mock/tls_server.py) with certificates made for the test by a private
certificate authority (openssl).

  - with the system's bundle (omnichan.http_ca_file empty) the private
    authority is not trusted: the job fails with a certificate error and
    the server answered nothing;
  - omnichan.http_ca_file set to the authority (ALTER SYSTEM + reload):
    a GET and a POST with a JSON body go over HTTP/2 (negotiated by ALPN,
    the body arrives intact), and 30 requests queued at once share a single
    TLS connection (multiplexed);
  - a server that offers only HTTP/1.1 is reached over HTTP/1.1;
  - a certificate for another host name is refused even from the trusted
    authority (host names are verified), and so is an expired one;
  - a relative path or a file that cannot be read is refused by ALTER SYSTEM
    with a message saying why, and the setting keeps its value.
"""

import hashlib
import json
import os
import subprocess
import time

from runtime_lib import (PGBIN, _cleanups, check, enqueue, fatal, finish, say,
                         start_cluster, wait_for, wait_job_done)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "..", "mock", "tls_server.py")

c = start_cluster("runtime_tls", [
    "omnichan.naptime = 200",
    "omnichan.retry_base_delay = 50",
    "omnichan.circuit_failure_threshold = 100",
])

# ------------------------------------------------------------ certificates
tls = os.path.join(c.dir, "tls")
os.makedirs(tls, exist_ok=True)
os.chmod(tls, 0o755)


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), cwd=tls, capture_output=True, text=True)
    if r.returncode != 0:
        fatal(f"openssl {' '.join(args)}: {r.stderr}")


EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
openssl("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=omnichan test CA")


def server_cert(name, san, days="2"):
    openssl("req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", "/CN=omnichan test")
    with open(os.path.join(tls, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    # "expired": valid until yesterday (-days -1)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
            "-days", "-1" if days == "expired" else days)
    for f in os.listdir(tls):
        os.chmod(os.path.join(tls, f), 0o644)


server_cert("good", "IP:127.0.0.1")
server_cert("other", "DNS:omnichan.invalid")
server_cert("expired", "IP:127.0.0.1", days="expired")
CA = os.path.join(tls, "ca.pem")


# ------------------------------------------------------------------ servers
def start_server(name, cert, *extra):
    journal = os.path.join(tls, f"{name}.journal")
    open(journal, "w").close()
    p = subprocess.Popen(["/usr/bin/python3", SERVER, "--cert", os.path.join(tls, f"{cert}.pem"),
                          "--key", os.path.join(tls, f"{cert}.key"), "--journal", journal] + list(extra),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _cleanups.append(p.kill)
    line = p.stdout.readline().strip()
    if not line.isdigit():
        fatal(f"tls_server {name} did not start: {p.stderr.read()}")
    return f"https://127.0.0.1:{line}", journal


def entries(journal):
    with open(journal) as f:
        return [json.loads(line) for line in f if line.strip()]


H2, H2J = start_server("h2", "good")
H1, H1J = start_server("h1", "good", "--no-h2")
OTHER, OTHERJ = start_server("other", "other")
EXPIRED, EXPIREDJ = start_server("expired", "expired")


def response(jid):
    rows = c.sql(f"SELECT convert_from(response_body, 'UTF8') FROM omnichan.job WHERE id = {jid}")
    try:
        return json.loads(rows[0][0])
    except (ValueError, IndexError, TypeError):
        return {}


# ------------------------------------------- the system's bundle: refused
check("omnichan.http_ca_file is empty by default", c.val("SHOW omnichan.http_ca_file") == "")
j = enqueue(c, f"{H2}/untrusted", max_attempts=1)
d = wait_job_done(c, j)
check("a server certified by an authority the system does not trust: the job fails",
      d and d["state"] == "failed" and d["status"] == 0, d)
check("... with a certificate error", d and "certificate" in d["error"].lower(), d)
check("... and the server answered no request", entries(H2J) == [], entries(H2J))

# ------------------------------------------------ the private authority
c.set_conf(http_ca_file=CA)
wait_for("the reload", lambda: c.val("SHOW omnichan.http_ca_file") == CA, 5)
time.sleep(0.5)     # the worker handles its SIGHUP at its next loop

j = enqueue(c, f"{H2}/hello?x=1")
d = wait_job_done(c, j)
check("with omnichan.http_ca_file: the GET succeeds", d and d["state"] == "succeeded" and d["status"] == 200, d)
r = response(j)
check("... over HTTP/2", r.get("proto") == "h2" and r.get("path") == "/hello?x=1", r)

body = json.dumps({"sku": "TLS-1", "quantity": 7, "note": "é" * 300})
jid = int(c.val("SELECT omnichan.http_enqueue('POST', '" + H2 + "/post', "
                "'{\"Content-Type\": \"application/json\"}'::jsonb, "
                "convert_to('" + body.replace("'", "''") + "', 'UTF8'))"))
d = wait_job_done(c, jid)
r = response(jid)
check("a POST with a JSON body over HTTP/2 arrives intact",
      d and d["state"] == "succeeded" and r.get("proto") == "h2" and r.get("method") == "POST"
      and r.get("content_type") == "application/json"
      and r.get("body_sha256") == hashlib.sha256(body.encode()).hexdigest(), (d, r))

before = len(entries(H2J))
ids = [int(x[0]) for x in c.sql(
    f"SELECT omnichan.http_enqueue('GET', '{H2}/many/' || i) FROM generate_series(1, 30) i")]
done = [wait_job_done(c, i) for i in ids]
check("30 requests queued at once all succeed", all(x and x["state"] == "succeeded" for x in done),
      sorted({(x or {}).get("error", "?") or x["state"] for x in done}))
many = entries(H2J)[before:]
conns = {e["conn"] for e in many}
check("... over HTTP/2, multiplexed on one TLS connection",
      len(many) == 30 and all(e["proto"] == "h2" for e in many) and len(conns) == 1, conns)

# ------------------------------------------------------- HTTP/1.1 only
j = enqueue(c, f"{H1}/one")
d = wait_job_done(c, j)
r = response(j)
check("a server offering only HTTP/1.1 is reached over HTTP/1.1",
      d and d["state"] == "succeeded" and r.get("proto") == "http/1.1", (d, r))

# ------------------------------------ host name and validity still checked
j = enqueue(c, f"{OTHER}/name", max_attempts=1)
d = wait_job_done(c, j)
check("a certificate of the trusted authority for another host name is refused",
      d and d["state"] == "failed" and ("host name" in d["error"] or "subject name" in d["error"])
      and entries(OTHERJ) == [], (d, entries(OTHERJ)))
j = enqueue(c, f"{EXPIRED}/old", max_attempts=1)
d = wait_job_done(c, j)
check("an expired certificate of the trusted authority is refused",
      d and d["state"] == "failed" and "expired" in d["error"] and entries(EXPIREDJ) == [],
      (d, entries(EXPIREDJ)))

# ------------------------------------------------------- bad settings
for value, why in (("relative/ca.pem", "absolute path"),
                   ("/nonexistent/ca.pem", "Could not access file")):
    r = subprocess.run([os.path.join(PGBIN, "psql"),
                        "-X", "-At", "-d", "postgres", "-c",
                        f"ALTER SYSTEM SET omnichan.http_ca_file = '{value}'"],
                       env=c.env, capture_output=True, text=True)
    check(f"ALTER SYSTEM SET omnichan.http_ca_file = '{value}' is refused ({why})",
          r.returncode != 0 and "invalid value" in r.stderr and why in r.stderr, r.stderr)
check("... and the setting keeps its value", c.val("SHOW omnichan.http_ca_file") == CA)

say("done")
finish()
