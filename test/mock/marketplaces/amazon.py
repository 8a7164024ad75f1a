"""Amazon Selling Partner API mock (see MARKETPLACE_APIS.md section 1).

Errors: ``{"errors": [{"code", "message", "details"}]}`` (Error definition in
the SP-API models) with ``x-amzn-RequestId`` on every response and
``x-amzn-ErrorType`` on errors.  Throttling: HTTP 429, code ``QuotaExceeded``;
SP-API sends no ``Retry-After`` - clients back off by the usage-plan rate in
``x-amzn-RateLimit-Limit`` (requests per second), so a rule's ``retry_after``
is expressed as the rate 1/retry_after.
"""

from core import json_response
from marketplaces.base import Marketplace, reason, request_id

# Codes seen in the SP-API models / docs; other statuses fall back to the
# HTTP reason phrase without spaces.
ERROR_CODES = {
    400: "InvalidInput",
    403: "Unauthorized",
    404: "NotFound",
    429: "QuotaExceeded",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
ERROR_MESSAGES = {
    403: "Access to requested resource is denied.",
    429: "You exceeded your quota for the requested resource.",
}


class Amazon(Marketplace):
    name = "amazon"

    def rate_limit(self, request, retry_after):
        response = self.error(request, 429)
        if retry_after > 0:
            response.add_headers(
                {"x-amzn-RateLimit-Limit": f"{1 / retry_after:.4g}"})
        return response

    def error(self, request, status, code=None, message=None):
        code = code or ERROR_CODES.get(status) or reason(status).replace(" ", "")
        message = message or ERROR_MESSAGES.get(status) or reason(status)
        return json_response(
            {"errors": [{"code": str(code), "message": message,
                         "details": ""}]},
            status, {"x-amzn-RequestId": request_id(),
                     "x-amzn-ErrorType": str(code)})


def make(name):
    return Amazon(name)
