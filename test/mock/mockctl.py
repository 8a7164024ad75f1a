#!/usr/bin/python3
"""Start, stop and drive mock marketplace servers (module + CLI).

Python:
    import mockctl
    proc, port = mockctl.start("amazon", seed={"...": ...})
    mockctl.add_fault(port, {"route": "^/orders", "kind": "rate_limit"})
    ...
    entries = mockctl.journal(port, path="^/orders")
    mockctl.stop(proc)

CLI (--port P or --port-file F selects the server):
    mockctl.py start NAME --port-file F --pid-file P [--port N] [--seed FILE]
                          [--fault JSON ...] [--log-file F] [--verbose]
    mockctl.py stop --pid-file P
    mockctl.py health|state|reset|journal|clear-journal|faults|clear-faults
                      --port P
    mockctl.py journal --port P [--since SEQ] [--path REGEX]
    mockctl.py fault --port P 'JSON rule or list of rules'
    mockctl.py seed --port P 'JSON object'   (or @file.json)
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "server.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") \
    else sys.executable
HOST = "127.0.0.1"
POLL_INTERVAL = 0.02


class MockError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Process control
# --------------------------------------------------------------------------

def _server_command(marketplace, port, port_file, seed_file, faults, verbose):
    cmd = [PYTHON, SERVER, "--marketplace", marketplace, "--port", str(port),
           "--port-file", port_file]
    if seed_file:
        cmd += ["--seed", seed_file]
    for fault in faults:
        cmd += ["--fault", fault if isinstance(fault, str)
                else json.dumps(fault)]
    if verbose:
        cmd.append("--verbose")
    return cmd


def _wait_for_port(proc, port_file, timeout, describe):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(port_file, encoding="ascii") as f:
                return int(f.read())
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise MockError(f"mock server exited with status {proc.returncode}"
                            f"{describe()}")
        if time.monotonic() > deadline:
            _terminate(proc)
            raise MockError(f"mock server not listening after {timeout}s"
                            f"{describe()}")
        time.sleep(POLL_INTERVAL)


def start(marketplace, port=0, seed=None, faults=(), verbose=False,
          timeout=10.0):
    """Start a mock server subprocess; return ``(proc, port)`` once it
    listens.  ``seed`` is a dict (or a JSON file path); ``faults`` are rule
    dicts or JSON strings.  The server's stderr is passed through."""
    workdir = tempfile.mkdtemp(prefix="omnichan-mock-")
    try:
        seed_file = seed if isinstance(seed, str) else None
        if isinstance(seed, dict):
            seed_file = os.path.join(workdir, "seed.json")
            with open(seed_file, "w", encoding="utf-8") as f:
                json.dump(seed, f)
        port_file = os.path.join(workdir, "port")
        proc = subprocess.Popen(
            _server_command(marketplace, port, port_file, seed_file, faults,
                            verbose),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return proc, _wait_for_port(proc, port_file, timeout, lambda: "")
    finally:
        # the server has read the seed; it ignores a missing port file at exit
        shutil.rmtree(workdir, ignore_errors=True)


def _terminate(proc, timeout=5.0):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def stop(proc, timeout=5.0):
    """SIGTERM the server (SIGKILL after ``timeout``); return its exit code."""
    return _terminate(proc, timeout)


def start_daemon(marketplace, port_file, pid_file, port=0, seed_file=None,
                 faults=(), log_file=None, verbose=False, timeout=10.0):
    """Start a detached server that outlives this process; return its port
    once listening.  Its pid is written to ``pid_file``."""
    for path in (port_file, pid_file):
        if os.path.exists(path):
            os.unlink(path)
    log = open(log_file or os.devnull, "ab")
    try:
        proc = subprocess.Popen(
            _server_command(marketplace, port, port_file, seed_file, faults,
                            verbose),
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True)
    finally:
        log.close()
    describe = (lambda: f" (see {log_file})") if log_file else (lambda: "")
    port = _wait_for_port(proc, port_file, timeout, describe)
    tmp = f"{pid_file}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(f"{proc.pid}\n")
    os.replace(tmp, pid_file)
    return port


def _alive(pid):
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def stop_daemon(pid_file, timeout=5.0):
    """SIGTERM the server whose pid is in ``pid_file`` (SIGKILL after
    ``timeout``), wait for it to go away and remove the pid file."""
    with open(pid_file, encoding="ascii") as f:
        pid = int(f.read())
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(POLL_INTERVAL)
    except ProcessLookupError:
        pass
    os.unlink(pid_file)


# --------------------------------------------------------------------------
# Admin API client
# --------------------------------------------------------------------------

def admin(port, method, path, body=None, timeout=10.0):
    """Call ``/_mock/<path>``; return the decoded JSON answer."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode("utf-8")
        headers = {"Connection": "close"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn.request(method, f"/_mock/{path}", body=data, headers=headers)
        resp = conn.getresponse()
        payload = json.loads(resp.read() or b"null")
        if resp.status != 200:
            raise MockError(f"{method} /_mock/{path}: {resp.status} "
                            f"{payload}")
        return payload
    finally:
        conn.close()


def health(port):
    return admin(port, "GET", "health")


def state(port):
    return admin(port, "GET", "state")


def reset(port):
    return admin(port, "POST", "reset")


def seed(port, data):
    return admin(port, "POST", "seed", data)


def journal(port, since=None, path=None):
    query = {k: v for k, v in (("since", since), ("path", path))
             if v is not None}
    suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
    return admin(port, "GET", f"journal{suffix}")


def clear_journal(port):
    return admin(port, "DELETE", "journal")


def add_fault(port, rule):
    """Add one rule (dict) or several (list); return the stored rules."""
    return admin(port, "POST", "faults", rule)


def faults(port):
    return admin(port, "GET", "faults")


def clear_faults(port):
    return admin(port, "DELETE", "faults")


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def _json_arg(text):
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            return json.load(f)
    return json.loads(text)


def _parser():
    parser = argparse.ArgumentParser(
        description="Control mock marketplace servers.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("start", help="start a detached server")
    p.add_argument("marketplace")
    p.add_argument("--port-file", required=True)
    p.add_argument("--pid-file", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", help="seed JSON file")
    p.add_argument("--fault", action="append", default=[], metavar="JSON")
    p.add_argument("--log-file", help="server stdout/stderr (default: "
                                      "discarded)")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--timeout", type=float, default=10.0)

    p = sub.add_parser("stop", help="stop a server started with 'start'")
    p.add_argument("--pid-file", required=True)
    p.add_argument("--timeout", type=float, default=5.0)

    def server_command(name, help_text):
        p = sub.add_parser(name, help=help_text)
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--port", type=int)
        group.add_argument("--port-file")
        return p

    server_command("health", "server health")
    server_command("state", "marketplace state")
    server_command("reset", "reset state, journal and faults")
    p = server_command("journal", "print the request journal")
    p.add_argument("--since", type=int)
    p.add_argument("--path", help="regex on the request path")
    server_command("clear-journal", "empty the journal")
    p = server_command("fault", "add fault rule(s)")
    p.add_argument("rule", help="JSON rule or list of rules (or @file)")
    server_command("faults", "list fault rules")
    server_command("clear-faults", "remove all fault rules")
    p = server_command("seed", "merge JSON into the state")
    p.add_argument("data", help="JSON object (or @file)")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        if args.command == "start":
            port = start_daemon(args.marketplace, args.port_file,
                                args.pid_file, args.port, args.seed,
                                args.fault, args.log_file, args.verbose,
                                args.timeout)
            print(port)
            return 0
        if args.command == "stop":
            stop_daemon(args.pid_file, args.timeout)
            return 0
        port = args.port
        if port is None:
            with open(args.port_file, encoding="ascii") as f:
                port = int(f.read())
        calls = {
            "health": lambda: health(port),
            "state": lambda: state(port),
            "reset": lambda: reset(port),
            "journal": lambda: journal(port, args.since, args.path),
            "clear-journal": lambda: clear_journal(port),
            "fault": lambda: add_fault(port, _json_arg(args.rule)),
            "faults": lambda: faults(port),
            "clear-faults": lambda: clear_faults(port),
            "seed": lambda: seed(port, _json_arg(args.data)),
        }
        print(json.dumps(calls[args.command](), indent=2))
        return 0
    except (MockError, OSError, ValueError) as exc:
        print(f"mockctl: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
