"""TikTok Shop Partner API (202309) mock (see MARKETPLACE_APIS.md section 5).

Every response uses the envelope ``{"code", "message", "request_id",
"data"}``; ``code`` 0 is success.  Throttling: HTTP 429 with code
``36009002`` (no retry header is documented, so a rule's ``retry_after`` is
not expressed).  Business errors normally come with HTTP 200 and a non-zero
code - use a ``status`` fault with ``"status": 200, "code": ...`` for those.
Where no TikTok code is known for a status, ``code`` is the HTTP status.
"""

from core import json_response
from marketplaces.base import Marketplace, reason, request_id

KNOWN_CODES = {
    401: (105002, "Access token is expired"),
    429: (36009002, "Too many requests"),
    504: (36009007, "Request timeout"),
}


class TikTok(Marketplace):
    name = "tiktok"

    def rate_limit(self, request, retry_after):
        return self.error(request, 429)

    def error(self, request, status, code=None, message=None):
        known_code, known_message = KNOWN_CODES.get(
            status, (status, reason(status)))
        return json_response({
            "code": known_code if code is None else code,
            "message": message or known_message,
            "request_id": request_id(), "data": None}, status)


def make(name):
    return TikTok(name)
