"""Lazada / Daraz Open Platform (IOP) mock (see MARKETPLACE_APIS.md
section 7).  The same module serves ``daraz`` (same protocol).

Every response uses the envelope ``{"code", "type", "message",
"request_id"}``; ``code`` "0" is success.  The gateway reports throttling
inside the envelope, not with HTTP 429: the ``rate_limit`` fault answers
HTTP 200 with code ``ApiCallLimit`` (unverified code; set the rule's
``status`` to 429 to test the other case).  Where no IOP code is known for a
status, ``code`` is the HTTP status as a string.
"""

from core import json_response
from marketplaces.base import Marketplace, reason, request_id

# status -> (code, type, message)
KNOWN_ERRORS = {
    401: ("IllegalAccessToken", "ISV", "The specified access token is "
                                       "invalid or expired"),
    500: ("E006", "ISP", "Unexpected internal error"),
    503: ("E006", "ISP", "Unexpected internal error"),
}


class Lazada(Marketplace):
    name = "lazada"

    def rate_limit(self, request, retry_after):
        return self._envelope(200, "ApiCallLimit", "ISP",
                              "The request has exceeded the limit of "
                              "API calls")

    def error(self, request, status, code=None, message=None):
        known_code, kind, known_message = KNOWN_ERRORS.get(
            status, (str(status), "ISV" if status < 500 else "ISP",
                     reason(status)))
        return self._envelope(status, known_code if code is None else code,
                              kind, message or known_message)

    @staticmethod
    def _envelope(status, code, kind, message):
        return json_response({"code": code, "type": kind, "message": message,
                              "request_id": request_id()}, status)


def make(name):
    return Lazada(name)
