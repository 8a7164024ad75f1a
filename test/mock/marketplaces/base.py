"""Base class of the per-marketplace modules.

A marketplace module subclasses ``Marketplace`` and provides:

* ``name``;
* ``routes()`` -> list of ``core.Route`` (the marketplace's real endpoints;
  handlers are ``handler(request, state) -> core.Response`` and must hold
  ``state.lock`` while touching ``state.data``);
* ``initial_state()`` -> a fresh, JSON-serialisable state dict;
* ``seed(data, seed)`` -> merge a seed document into ``data`` (default:
  recursive dict merge);
* ``rate_limit(request, retry_after)`` -> the marketplace's real throttling
  response (status, headers and body shape);
* ``error(request, status, code=None, message=None)`` -> the marketplace's
  error response for an HTTP status (also used for unknown routes).
"""

import http
import uuid


def reason(status):
    """The standard reason phrase of an HTTP status."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def status_name(status):
    """The upper-snake name of an HTTP status, e.g. 503 -> SERVICE_UNAVAILABLE."""
    try:
        return http.HTTPStatus(status).name
    except ValueError:
        return "ERROR"


def request_id():
    return str(uuid.uuid4())


def deep_merge(target, source):
    """Merge ``source`` into ``target``: dicts recursively, anything else is
    replaced."""
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = value


class Marketplace:
    name = None

    def __init__(self, name=None):
        if name is not None:
            self.name = name

    def routes(self):
        return []

    def initial_state(self):
        return {}

    def seed(self, data, seed):
        deep_merge(data, seed)

    def rate_limit(self, request, retry_after):
        raise NotImplementedError

    def error(self, request, status, code=None, message=None):
        raise NotImplementedError
