"""Generic mock: simple endpoints to exercise the HTTP engine itself.

  GET|POST|PUT|PATCH|DELETE /echo  -> 200 {method, path, query, headers,
                                       body, body_encoding}
  GET /bytes/N                     -> N bytes (streamed; byte i is
                                       PATTERN[i % 64])
  GET /status/CODE                 -> that status, small JSON body
  GET /slow/MS                     -> 200 after MS milliseconds
"""

import time

from core import Route, body_json, empty_response, json_response, \
    repeat_chunks, stream_response
from marketplaces.base import Marketplace, reason

PATTERN = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
MAX_SLOW_MS = 600_000


def echo(request, _state):
    return json_response({"method": request.method, "path": request.path,
                          "query": request.query, "headers": request.headers,
                          **body_json(request.body)})


def nbytes(request, _state):
    length = int(request.params["n"])
    return stream_response(length, repeat_chunks(PATTERN, length))


def status(request, _state):
    code = int(request.params["code"])
    if code in (204, 304):
        return empty_response(code)
    return json_response({"status": code, "reason": reason(code)}, code)


def slow(request, _state):
    ms = min(int(request.params["ms"]), MAX_SLOW_MS)
    time.sleep(ms / 1000)
    return json_response({"slept_ms": ms})


class Generic(Marketplace):
    name = "generic"

    def routes(self):
        return [
            Route("GET|POST|PUT|PATCH|DELETE", r"/echo", echo, "echo"),
            Route("GET", r"/bytes/(?P<n>[0-9]{1,12})", nbytes, "bytes"),
            Route("GET", r"/status/(?P<code>[2-5][0-9][0-9])", status,
                  "status"),
            Route("GET", r"/slow/(?P<ms>[0-9]{1,9})", slow, "slow"),
        ]

    def rate_limit(self, request, retry_after):
        return json_response(
            {"error": {"code": "rate_limited", "message": reason(429)}}, 429,
            {"Retry-After": f"{retry_after:g}"})

    def error(self, request, status, code=None, message=None):
        return json_response({"error": {"status": status,
                                        "code": code or status,
                                        "message": message or reason(status)}},
                             status)


def make(name):
    return Generic(name)
