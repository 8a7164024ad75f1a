"""Shopify Admin API mock (see MARKETPLACE_APIS.md section 2).

REST throttling: HTTP 429 with ``Retry-After`` and
``X-Shopify-Shop-Api-Call-Limit`` (bucket full), body ``{"errors": "..."}``.
GraphQL (``.../graphql.json``) throttling: HTTP 200 with
``errors[].extensions.code == "THROTTLED"`` and ``extensions.cost`` whose
``throttleStatus`` says how long to wait: (requestedQueryCost -
currentlyAvailable) / restoreRate == retry_after.
Other errors: REST shape ``{"errors": "<message>"}``.
"""

import re

from core import json_response
from marketplaces.base import Marketplace, reason, request_id

GRAPHQL_PATH = re.compile(r"/admin/api/[^/]+/graphql\.json")
REST_BUCKET_SIZE = 40          # Standard plan bucket (unverified size)
GRAPHQL_MAXIMUM_AVAILABLE = 2000.0   # (unverified)
GRAPHQL_RESTORE_RATE = 100.0         # Standard plan points/second
REST_THROTTLE_MESSAGE = ("Exceeded 2 calls per second for api client. "
                         "Reduce request rates to resume uninterrupted "
                         "service.")


class Shopify(Marketplace):
    name = "shopify"

    def rate_limit(self, request, retry_after):
        if GRAPHQL_PATH.fullmatch(request.path):
            cost = max(1, round(GRAPHQL_RESTORE_RATE * retry_after))
            return json_response({
                "errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED"}}],
                "extensions": {"cost": {
                    "requestedQueryCost": cost, "actualQueryCost": None,
                    "throttleStatus": {
                        "maximumAvailable": GRAPHQL_MAXIMUM_AVAILABLE,
                        "currentlyAvailable": 0,
                        "restoreRate": GRAPHQL_RESTORE_RATE}}},
            }, 200, {"X-Request-Id": request_id()})
        return json_response({"errors": REST_THROTTLE_MESSAGE}, 429, {
            "Retry-After": f"{float(retry_after):.1f}",
            "X-Shopify-Shop-Api-Call-Limit":
                f"{REST_BUCKET_SIZE}/{REST_BUCKET_SIZE}",
            "X-Request-Id": request_id()})

    def error(self, request, status, code=None, message=None):
        return json_response({"errors": message or reason(status)}, status,
                             {"X-Request-Id": request_id()})


def make(name):
    return Shopify(name)
