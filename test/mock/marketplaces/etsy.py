"""Etsy Open API v3 mock (see MARKETPLACE_APIS.md section 6).

Errors: ``{"error": "<message>"}``.  Throttling: HTTP 429 with
``retry-after`` and the quota headers ``x-limit-per-second``,
``x-remaining-this-second``, ``x-limit-per-day``, ``x-remaining-today``
(a per-second throttle: today's quota is not exhausted; override with the
rule's ``headers`` to simulate the daily limit).
"""

import math

from core import json_response
from marketplaces.base import Marketplace, reason

LIMIT_PER_SECOND = 10
LIMIT_PER_DAY = 10_000


class Etsy(Marketplace):
    name = "etsy"

    def rate_limit(self, request, retry_after):
        return self.error(request, 429).add_headers({
            "retry-after": str(math.ceil(retry_after)),
            "x-limit-per-second": str(LIMIT_PER_SECOND),
            "x-remaining-this-second": "0",
            "x-limit-per-day": str(LIMIT_PER_DAY),
            "x-remaining-today": str(LIMIT_PER_DAY // 2)})

    def error(self, request, status, code=None, message=None):
        return json_response({"error": message or reason(status)}, status)


def make(name):
    return Etsy(name)
