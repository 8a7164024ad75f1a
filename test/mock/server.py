#!/usr/bin/python3
"""Mock marketplace HTTP server (127.0.0.1 only).

  /usr/bin/python3 test/mock/server.py --marketplace NAME [--port 0]
      [--port-file PATH] [--seed FILE.json] [--fault JSON ...] [--verbose]

Prints ``listening 127.0.0.1:PORT`` once listening and, with --port-file,
writes the port to PATH atomically.  Stops cleanly on SIGTERM / SIGINT
(removing the port file).
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

import core
import marketplaces


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--marketplace", required=True,
                        choices=marketplaces.NAMES)
    parser.add_argument("--host", default=core.LOOPBACK,
                        help="only 127.0.0.1 is accepted")
    parser.add_argument("--port", type=int, default=0,
                        help="0 (default) picks a free port")
    parser.add_argument("--port-file", help="write the chosen port here")
    parser.add_argument("--seed", help="JSON file merged into the initial "
                                       "state (re-applied on reset)")
    parser.add_argument("--fault", action="append", default=[],
                        metavar="JSON", help="preload a fault rule "
                                             "(repeatable)")
    parser.add_argument("--idle-timeout", type=float, default=120.0,
                        help="close idle keep-alive connections after this "
                             "many seconds")
    parser.add_argument("--verbose", action="store_true",
                        help="log requests to stderr")
    return parser.parse_args(argv)


def write_port_file(path, port):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".port-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def main(argv=None):
    args = parse_args(argv)
    if args.host != core.LOOPBACK:
        print(f"server.py: refusing to bind to {args.host!r}; the mock only "
              f"listens on {core.LOOPBACK}", file=sys.stderr)
        return 2
    try:
        seed = None
        if args.seed:
            with open(args.seed, encoding="utf-8") as f:
                seed = json.load(f)
        faults = [json.loads(spec) for spec in args.fault]
        app = core.MockApp(marketplaces.load(args.marketplace), seed, faults)
        server = core.MockServer(app, args.port, verbose=args.verbose,
                                 idle_timeout=args.idle_timeout)
    except (OSError, ValueError) as exc:
        print(f"server.py: {exc}", file=sys.stderr)
        return 2
    port = server.server_address[1]

    def stop(_signum, _frame):
        # shutdown() waits for serve_forever(), which runs in this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        if args.port_file:
            write_port_file(args.port_file, port)
        print(f"listening {core.LOOPBACK}:{port}", flush=True)
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if args.port_file:
            try:
                os.unlink(args.port_file)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
