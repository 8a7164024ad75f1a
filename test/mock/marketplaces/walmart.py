"""Walmart US Marketplace API mock (see MARKETPLACE_APIS.md section 4).

Errors: ``{"errors": [{"code", "message", "category", "severity"}]}``.
Throttling: HTTP 429 with the token-bucket headers ``x-current-token-count``
(0) and ``x-next-replenish-time`` (epoch milliseconds of the next refill =
now + retry_after; header spelling and format (unverified)).
"""

import time

from core import json_response
from marketplaces.base import Marketplace, reason, request_id, status_name

THROTTLE_CODE = "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API"  # (unverified)


class Walmart(Marketplace):
    name = "walmart"

    def rate_limit(self, request, retry_after):
        replenish_ms = int((time.time() + retry_after) * 1000)
        return self.error(request, 429, THROTTLE_CODE,
                          "Request threshold violated").add_headers({
                              "x-current-token-count": "0",
                              "x-next-replenish-time": str(replenish_ms)})

    def error(self, request, status, code=None, message=None):
        if code is None:
            code = "SYSTEM_ERROR" if status >= 500 else status_name(status)
        return json_response({"errors": [{
            "code": code, "message": message or reason(status),
            "category": "APPLICATION" if status >= 500 else "REQUEST",
            "severity": "ERROR"}]}, status,
            {"WM_QOS.CORRELATION_ID":
             request.header("WM_QOS.CORRELATION_ID") or request_id()})


def make(name):
    return Walmart(name)
