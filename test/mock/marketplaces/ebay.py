"""eBay Sell APIs mock (see MARKETPLACE_APIS.md section 3).

Errors: ``{"errors": [{"errorId", "domain", "category", "message",
"longMessage", "parameters"}]}``; category REQUEST for 4xx, APPLICATION for
5xx.  Throttling: HTTP 429 (eBay documents no retry header, so a rule's
``retry_after`` is not expressed).  ``errorId`` defaults to the HTTP status
where no eBay id is known; a rule's ``code`` sets it.
"""

from core import json_response
from marketplaces.base import Marketplace, reason

# status -> (errorId, domain, message); general knowledge, (unverified)
KNOWN_ERRORS = {
    401: (1001, "OAuth", "Invalid access token"),
    429: (2001, "ACCESS", "Too many requests. The request limit has been "
                          "reached for the resource."),
}


class Ebay(Marketplace):
    name = "ebay"

    def rate_limit(self, request, retry_after):
        return self.error(request, 429)

    def error(self, request, status, code=None, message=None):
        error_id, domain, known_message = KNOWN_ERRORS.get(
            status, (status, "API_MOCK", reason(status)))
        message = message or known_message
        return json_response({"errors": [{
            "errorId": code if code is not None else error_id,
            "domain": domain,
            "category": "REQUEST" if status < 500 else "APPLICATION",
            "message": message, "longMessage": message, "parameters": []}]},
            status)


def make(name):
    return Ebay(name)
