#!/usr/bin/python3
"""Tests of the mock marketplace server itself (real server subprocesses on
127.0.0.1, real sockets).  Run: /usr/bin/python3 test/mock/test_mock.py"""

import errno
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import core  # noqa: E402
import marketplaces  # noqa: E402
import mockctl  # noqa: E402

SERVERS = {}  # marketplace -> (proc, port)
SEED = {"stock": {"SKU-1": 5}}


def setUpModule():
    SERVERS["generic"] = mockctl.start("generic", seed=SEED)
    for name in ("amazon", "shopify", "walmart", "ebay", "tiktok", "etsy",
                 "lazada"):
        SERVERS[name] = mockctl.start(name)


def tearDownModule():
    for proc, _ in SERVERS.values():
        proc.terminate()
    for proc, _ in SERVERS.values():
        mockctl.stop(proc)


def port_of(name="generic"):
    return SERVERS[name][1]


def request(method, path, body=None, headers=None, name="generic",
            timeout=5.0):
    """One request on a fresh connection: (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(name),
                                      timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def raw_exchange(data, timeout=5.0):
    """Send raw bytes to the generic server; return everything read until
    the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port_of()),
                                  timeout=timeout) as sock:
        sock.sendall(data)
        parts = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)


class MockTestCase(unittest.TestCase):
    def setUp(self):
        for name in SERVERS:
            mockctl.reset(port_of(name))

    def fault(self, rule, name="generic"):
        return mockctl.add_fault(port_of(name), rule)


class JournalTest(MockTestCase):
    def test_records_request(self):
        status, _, _ = request(
            "POST", "/echo?a=1&a=2&b=", body=b'{"qty": 3}',
            headers={"Content-Type": "application/json",
                     "Authorization": "Bearer secret-token",
                     "X-Custom": "v"})
        self.assertEqual(status, 200)
        (entry,) = mockctl.journal(port_of())
        self.assertEqual(entry["seq"], 1)
        self.assertEqual(entry["method"], "POST")
        self.assertEqual(entry["path"], "/echo")
        self.assertEqual(entry["query"], {"a": ["1", "2"], "b": [""]})
        self.assertEqual(entry["headers"]["Authorization"],
                         "Bearer secret-token")
        self.assertEqual(entry["headers"]["X-Custom"], "v")
        self.assertEqual(entry["body"], '{"qty": 3}')
        self.assertEqual(entry["route"], "echo")
        self.assertEqual(entry["status"], 200)
        self.assertIsNone(entry["fault"])
        self.assertAlmostEqual(entry["time"], time.time(), delta=5)

    def test_binary_body_base64_and_filters(self):
        request("PUT", "/echo", body=b"\xff\x00\xfe")
        request("GET", "/status/201")
        entries = mockctl.journal(port_of())
        self.assertEqual([e["seq"] for e in entries], [1, 2])
        self.assertEqual(entries[0]["body_encoding"], "base64")
        self.assertEqual(entries[0]["body"], "/wD+")
        self.assertEqual([e["path"] for e in mockctl.journal(
            port_of(), since=1)], ["/status/201"])
        self.assertEqual([e["path"] for e in mockctl.journal(
            port_of(), path="^/echo$")], ["/echo"])

    def test_admin_not_journaled_and_clear(self):
        request("GET", "/echo")
        mockctl.health(port_of())
        mockctl.faults(port_of())
        self.assertEqual(len(mockctl.journal(port_of())), 1)
        mockctl.clear_journal(port_of())
        self.assertEqual(mockctl.journal(port_of()), [])

    def test_journal_is_bounded(self):
        journal = core.Journal(max_entries=3, max_body_bytes=10)
        request = core.Request("POST", "/p?q=1", http.client.HTTPMessage(),
                               b"123456", 1)
        for _ in range(5):
            journal.record(request, None)
        self.assertEqual([e["seq"] for e in journal.entries()], [5])
        journal.max_body_bytes = 100
        for _ in range(4):
            journal.record(request, None)
        self.assertEqual([e["seq"] for e in journal.entries()], [7, 8, 9])

    def test_inflight(self):
        """health counts the requests received and not answered yet, and
        the most at once; each journal entry says when it was answered."""
        import threading
        threads = [threading.Thread(target=request, args=("GET", "/slow/600"))
                   for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 3
        while (mockctl.health(port_of())["inflight"] < 3
               and time.monotonic() < deadline):
            time.sleep(0.02)
        self.assertEqual(mockctl.health(port_of())["inflight"], 3)
        for t in threads:
            t.join()
        request("GET", "/echo")
        health = mockctl.health(port_of())
        self.assertEqual((health["inflight"], health["inflight_max"]), (0, 3))
        entries = mockctl.journal(port_of(), path="^/slow/")
        self.assertEqual(len(entries), 3)
        for e in entries:
            self.assertGreaterEqual(e["answered"] - e["time"], 0.59)
        mockctl.clear_journal(port_of())
        self.assertEqual(mockctl.health(port_of())["inflight_max"], 0)

    def test_chunked_request_body(self):
        raw = raw_exchange(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "))
        self.assertEqual(json.loads(raw.split(b"\r\n\r\n", 1)[1])["body"],
                         "abcdefg")


class StateTest(MockTestCase):
    def test_seed_and_reset(self):
        self.assertEqual(mockctl.state(port_of()), SEED)
        mockctl.seed(port_of(), {"stock": {"SKU-2": 1}, "other": [1]})
        self.assertEqual(mockctl.state(port_of()),
                         {"stock": {"SKU-1": 5, "SKU-2": 1}, "other": [1]})
        request("GET", "/echo")
        self.fault({"route": "^/echo", "kind": "status", "status": 500})
        mockctl.reset(port_of())
        self.assertEqual(mockctl.state(port_of()), SEED)
        self.assertEqual(mockctl.journal(port_of()), [])
        self.assertEqual(mockctl.faults(port_of()), [])
        self.assertEqual(request("GET", "/echo")[0], 200)
        self.assertEqual(mockctl.journal(port_of())[0]["seq"], 1)


class FaultKindTest(MockTestCase):
    def test_rate_limit_amazon(self):
        self.fault({"route": "^/orders/v0/orders$", "kind": "rate_limit",
                    "retry_after": 2}, "amazon")
        status, headers, body = request(
            "GET", "/orders/v0/orders?MarketplaceIds=ATVPDKIKX0DER",
            name="amazon")
        self.assertEqual(status, 429)
        self.assertEqual(headers["x-amzn-RateLimit-Limit"], "0.5")
        self.assertTrue(headers["x-amzn-RequestId"])
        self.assertEqual(json.loads(body)["errors"][0]["code"],
                         "QuotaExceeded")

    def test_rate_limit_shopify_rest_and_graphql(self):
        self.fault({"route": "/admin/api/", "kind": "rate_limit",
                    "count": 2}, "shopify")
        status, headers, body = request(
            "GET", "/admin/api/2024-10/orders.json", name="shopify")
        self.assertEqual(status, 429)
        self.assertEqual(headers["Retry-After"], "1.0")
        self.assertEqual(headers["X-Shopify-Shop-Api-Call-Limit"], "40/40")
        self.assertIn("errors", json.loads(body))
        status, _, body = request(
            "POST", "/admin/api/2024-10/graphql.json", body=b"{}",
            headers={"Content-Type": "application/json"}, name="shopify")
        self.assertEqual(status, 200)
        doc = json.loads(body)
        self.assertEqual(doc["errors"][0]["extensions"]["code"], "THROTTLED")
        throttle = doc["extensions"]["cost"]["throttleStatus"]
        self.assertEqual(set(throttle), {"maximumAvailable",
                                         "currentlyAvailable", "restoreRate"})

    def test_rate_limit_walmart(self):
        self.fault({"route": "^/v3/inventory", "kind": "rate_limit",
                    "retry_after": 3}, "walmart")
        before = time.time()
        status, headers, body = request("PUT", "/v3/inventory?sku=A",
                                        name="walmart")
        self.assertEqual(status, 429)
        self.assertEqual(headers["x-current-token-count"], "0")
        replenish = int(headers["x-next-replenish-time"]) / 1000
        self.assertAlmostEqual(replenish, before + 3, delta=1)
        self.assertIn("code", json.loads(body)["errors"][0])

    def test_rate_limit_other_marketplaces(self):
        expectations = {
            "ebay": (429, lambda h, d: d["errors"][0]["errorId"] == 2001),
            "tiktok": (429, lambda h, d: d["code"] == 36009002),
            "etsy": (429, lambda h, d: h["retry-after"] == "1"
                     and h["x-remaining-this-second"] == "0"
                     and "x-remaining-today" in h and "error" in d),
            "lazada": (200, lambda h, d: d["code"] == "ApiCallLimit"),
        }
        for name, (want_status, check) in expectations.items():
            with self.subTest(name):
                self.fault({"route": "^/", "kind": "rate_limit"}, name)
                status, headers, body = request("GET", "/x", name=name)
                self.assertEqual(status, want_status)
                self.assertTrue(check(headers, json.loads(body)))

    def test_status(self):
        self.fault({"route": "^/echo$", "kind": "status", "status": 503,
                    "headers": {"Retry-After": "7"}})
        status, headers, body = request("GET", "/echo")
        self.assertEqual(status, 503)
        self.assertEqual(headers["Retry-After"], "7")
        self.assertEqual(json.loads(body)["error"]["status"], 503)
        self.fault({"route": "^/x", "kind": "status", "status": 503},
                   "amazon")
        status, _, body = request("GET", "/x", name="amazon")
        self.assertEqual((status, json.loads(body)["errors"][0]["code"]),
                         (503, "ServiceUnavailable"))
        (entry,) = mockctl.journal(port_of())
        self.assertEqual((entry["status"], entry["fault"]["kind"]),
                         (503, "status"))

    def test_delay(self):
        self.fault({"route": "^/echo$", "kind": "delay", "ms": 400})
        started = time.monotonic()
        self.assertEqual(request("GET", "/echo")[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.4)
        started = time.monotonic()
        request("GET", "/echo")
        self.assertLess(time.monotonic() - started, 0.3)

    def test_timeout(self):
        self.fault({"route": "^/echo$", "kind": "timeout", "ms": 1000})
        with socket.create_connection(("127.0.0.1", port_of()),
                                      timeout=0.3) as sock:
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            with self.assertRaises(socket.timeout):
                sock.recv(1)
            sock.settimeout(3)
            self.assertEqual(sock.recv(1), b"")  # closed after ms, no data
        (entry,) = mockctl.journal(port_of())
        self.assertEqual((entry["status"], entry["fault"]["kind"]),
                         (None, "timeout"))

    def test_timeout_http_client(self):
        self.fault({"route": "^/echo$", "kind": "timeout", "ms": 2000})
        with self.assertRaises(socket.timeout):
            request("GET", "/echo", timeout=0.3)

    def test_reset(self):
        self.fault({"route": "^/echo$", "kind": "reset"})
        with socket.create_connection(("127.0.0.1", port_of()),
                                      timeout=3) as sock:
            sock.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            with self.assertRaises(ConnectionResetError) as ctx:
                sock.recv(1)  # an RST, not an orderly close (b"")
            self.assertEqual(ctx.exception.errno, errno.ECONNRESET)
        self.fault({"route": "^/echo$", "kind": "reset"})
        with self.assertRaises(ConnectionResetError):
            request("GET", "/echo")

    def test_truncate(self):
        self.fault({"route": "^/bytes/", "kind": "truncate"})
        conn = http.client.HTTPConnection("127.0.0.1", port_of(), timeout=3)
        try:
            conn.request("GET", "/bytes/1000")
            resp = conn.getresponse()
            self.assertEqual(resp.status, 200)
            self.assertEqual(resp.headers["Content-Length"], "1000")
            with self.assertRaises(http.client.IncompleteRead) as ctx:
                resp.read()
            self.assertEqual(len(ctx.exception.partial), 500)
        finally:
            conn.close()

    def test_malformed(self):
        self.fault({"route": "^/echo$", "kind": "malformed"})
        status, headers, body = request("GET", "/echo")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        with self.assertRaises(ValueError):
            json.loads(body)

    def test_oversized(self):
        size = 5 * 1024 * 1024
        self.fault({"route": "^/echo$", "kind": "oversized", "bytes": size})
        status, headers, body = request("GET", "/echo")
        self.assertEqual(status, 200)
        self.assertEqual(int(headers["Content-Length"]), size)
        self.assertEqual(len(body), size)
        self.assertIsInstance(json.loads(body), dict)

    def test_invalid_rules_rejected(self):
        for rule in ({"route": "^/", "kind": "explode"},
                     {"route": "(", "kind": "reset"},
                     {"route": "^/", "kind": "status"},
                     {"route": "^/", "kind": "delay", "ms": 5, "typo": 1},
                     [{"route": "^/", "kind": "reset"}, {"kind": "reset"}]):
            with self.subTest(rule=rule):
                with self.assertRaises(mockctl.MockError):
                    self.fault(rule)
        self.assertEqual(mockctl.faults(port_of()), [])  # all-or-nothing


class FaultMatchingTest(MockTestCase):
    def statuses(self, path, n):
        return [request("GET", path)[0] for _ in range(n)]

    def test_count_and_after(self):
        self.fault({"route": "^/echo$", "kind": "status", "status": 503,
                    "after": 1, "count": 2})
        self.assertEqual(self.statuses("/echo", 5),
                         [200, 503, 503, 200, 200])
        (rule,) = mockctl.faults(port_of())
        self.assertEqual((rule["matched"], rule["applied"]), (5, 2))

    def test_forever_and_other_paths(self):
        self.fault({"route": "^/echo$", "kind": "status", "status": 500,
                    "count": -1})
        self.assertEqual(self.statuses("/echo", 4), [500] * 4)
        self.assertEqual(request("GET", "/status/200")[0], 200)

    def test_method_filter(self):
        self.fault({"route": "^/echo$", "method": "post", "kind": "status",
                    "status": 500})
        self.assertEqual(request("GET", "/echo")[0], 200)
        self.assertEqual(request("POST", "/echo", body=b"")[0], 500)

    def test_rules_count_independently(self):
        self.fault([{"route": "^/echo$", "kind": "rate_limit"},
                    {"route": "^/echo$", "kind": "status", "status": 503,
                     "after": 1}])
        self.assertEqual(self.statuses("/echo", 3), [429, 503, 200])


class HttpEngineTest(MockTestCase):
    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", port_of(), timeout=3)
        try:
            for path in ("/echo", "/bytes/10"):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
                self.assertFalse(resp.will_close)
        finally:
            conn.close()
        first, second = mockctl.journal(port_of())
        self.assertEqual(first["client_port"], second["client_port"])
        self.assertEqual(first["connection"], second["connection"])
        request("GET", "/echo")     # a connection of its own
        third = mockctl.journal(port_of())[-1]
        self.assertGreater(third["connection"], second["connection"])

    def test_generic_routes(self):
        status, headers, body = request("GET", "/bytes/100000")
        self.assertEqual((status, len(body)), (200, 100000))
        self.assertEqual(body[:3] + body[64:67], b"ABCABC")
        self.assertEqual(request("GET", "/status/418")[0], 418)
        self.assertEqual(request("GET", "/status/204")[:3:2], (204, b""))
        started = time.monotonic()
        self.assertEqual(request("GET", "/slow/200")[0], 200)
        self.assertGreaterEqual(time.monotonic() - started, 0.2)
        status, _, body = request("DELETE", "/echo?x=1")
        self.assertEqual(json.loads(body)["method"], "DELETE")

    def test_unknown_route_and_method(self):
        status, _, body = request("GET", "/nope", name="amazon")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["errors"][0]["code"], "NotFound")
        status, headers, _ = request("POST", "/bytes/1")
        self.assertEqual((status, headers["Allow"]), (405, "GET"))

    def test_refuses_non_loopback_bind(self):
        app = core.MockApp(marketplaces.load("generic"))
        for host in ("0.0.0.0", "::", "localhost", "192.0.2.1"):
            with self.assertRaises(ValueError):
                core.MockServer(app, 0, host=host)
        result = subprocess.run(
            [mockctl.PYTHON, mockctl.SERVER, "--marketplace", "generic",
             "--host", "0.0.0.0"], capture_output=True, timeout=10)
        self.assertEqual(result.returncode, 2)
        self.assertIn(b"refusing", result.stderr)


class ProcessTest(unittest.TestCase):
    def test_server_stdout_port_file_and_sigterm(self):
        with tempfile.TemporaryDirectory() as tmp:
            port_file = os.path.join(tmp, "port")
            proc = subprocess.Popen(
                [mockctl.PYTHON, mockctl.SERVER, "--marketplace", "etsy",
                 "--port-file", port_file, "--fault",
                 '{"route": "^/", "kind": "status", "status": 502}'],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                line = proc.stdout.readline().decode()
                with open(port_file, encoding="ascii") as f:
                    port = int(f.read())
                self.assertEqual(line, f"listening 127.0.0.1:{port}\n")
                self.assertEqual(len(mockctl.faults(port)), 1)
            finally:
                proc.terminate()
                _, stderr = proc.communicate(timeout=5)
            self.assertEqual(proc.returncode, 0, stderr)
            self.assertEqual(stderr, b"")
            self.assertFalse(os.path.exists(port_file))

    def test_cli_daemon(self):
        with tempfile.TemporaryDirectory() as tmp:
            port_file = os.path.join(tmp, "port")
            pid_file = os.path.join(tmp, "pid")
            ctl = [mockctl.PYTHON, os.path.join(os.path.dirname(
                mockctl.SERVER), "mockctl.py")]
            out = subprocess.run(ctl + ["start", "tiktok", "--port-file",
                                        port_file, "--pid-file", pid_file],
                                 capture_output=True, timeout=15, check=True)
            port = int(out.stdout)
            with open(pid_file, encoding="ascii") as f:
                pid = int(f.read())
            try:
                subprocess.run(ctl + ["fault", "--port-file", port_file,
                                      '{"route": "^/", "kind": "status", '
                                      '"status": 503}'],
                               capture_output=True, timeout=10, check=True)
                self.assertEqual(mockctl.faults(port)[0]["status"], 503)
            finally:
                subprocess.run(ctl + ["stop", "--pid-file", pid_file],
                               timeout=15, check=True)
            self.assertFalse(mockctl._alive(pid))
            self.assertFalse(os.path.exists(pid_file))


if __name__ == "__main__":
    program = unittest.main(exit=False, verbosity=1)
    sys.exit(0 if program.result.wasSuccessful() else 1)
