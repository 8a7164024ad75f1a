#!/usr/bin/python3
"""tls_server.py -- an https echo server on 127.0.0.1 for the HTTP engine's
TLS tests: HTTP/2 (negotiated by ALPN, served with the h2 library) and
HTTP/1.1 keep-alive on the same port, or HTTP/1.1 only.

    tls_server.py --cert PEM --key PEM --journal FILE [--no-h2]

Prints the port it listens on (first line of stdout), then serves until
killed.  Every request gets 200 and a JSON body describing it:

    {"proto": "h2" | "http/1.1", "conn": N, "method": "...", "path": "...",
     "body_len": N, "body_sha256": "...", "content_type": "..."}

and the same object is appended to the journal file (one JSON per line), so
a test can tell which protocol and which TLS connection each request used
(a client that refuses the certificate leaves no entry).
"""

import argparse
import asyncio
import hashlib
import itertools
import json
import ssl
import sys

import h2.config
import h2.connection
import h2.events

MAX_BODY = 1 << 20
_conn_ids = itertools.count(1)


class Server:
    def __init__(self, journal):
        self.journal = journal

    def record(self, entry):
        with open(self.journal, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def answer(self, proto, conn, method, path, body, content_type):
        entry = {"proto": proto, "conn": conn, "method": method, "path": path,
                 "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
                 "content_type": content_type}
        self.record(entry)
        return json.dumps(entry).encode()

    async def handle(self, reader, writer):
        conn = next(_conn_ids)
        sslobj = writer.get_extra_info("ssl_object")
        proto = sslobj.selected_alpn_protocol() if sslobj else None
        try:
            if proto == "h2":
                await self.serve_h2(conn, reader, writer)
            else:
                await self.serve_h1(conn, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            try:
                writer.close()
            except Exception:
                pass

    async def serve_h2(self, conn, reader, writer):
        h2c = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        h2c.initiate_connection()
        writer.write(h2c.data_to_send())
        streams = {}
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for ev in h2c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    streams[ev.stream_id] = (dict(ev.headers), bytearray())
                elif isinstance(ev, h2.events.DataReceived):
                    body = streams[ev.stream_id][1]
                    if len(body) + len(ev.data) <= MAX_BODY:
                        body += ev.data
                    h2c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    headers, body = streams.pop(ev.stream_id)
                    out = self.answer("h2", conn, headers.get(":method"), headers.get(":path"),
                                      bytes(body), headers.get("content-type"))
                    h2c.send_headers(ev.stream_id, [(":status", "200"),
                                                    ("content-type", "application/json"),
                                                    ("content-length", str(len(out)))])
                    h2c.send_data(ev.stream_id, out, end_stream=True)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    writer.write(h2c.data_to_send())
                    return
            writer.write(h2c.data_to_send())
            await writer.drain()

    async def serve_h1(self, conn, reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            if n > MAX_BODY:
                return
            body = await reader.readexactly(n) if n else b""
            out = self.answer("http/1.1", conn, method, path, body, headers.get("content-type"))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(out)).encode() + b"\r\n\r\n" + out)
            await writer.drain()
            if headers.get("connection", "").lower() == "close":
                return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--journal", required=True)
    ap.add_argument("--no-h2", action="store_true")
    args = ap.parse_args()

    server = Server(args.journal)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["http/1.1"] if args.no_h2 else ["h2", "http/1.1"])

    async def run():
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=ctx)
        print(srv.sockets[0].getsockname()[1], flush=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
