"""Marketplace modules for the mock server.

Each module defines one ``Marketplace`` subclass and exposes an instance as
``MARKETPLACE``.  ``load(name)`` returns that instance.
"""

import importlib

# marketplace name -> module implementing it (Daraz runs Lazada's protocol)
MODULES = {
    "generic": "generic",
    "amazon": "amazon",
    "shopify": "shopify",
    "ebay": "ebay",
    "walmart": "walmart",
    "tiktok": "tiktok",
    "etsy": "etsy",
    "lazada": "lazada",
    "daraz": "lazada",
}
NAMES = tuple(MODULES)


def load(name):
    if name not in MODULES:
        raise ValueError(f"unknown marketplace {name!r}; "
                         f"known: {', '.join(NAMES)}")
    module = importlib.import_module(f"{__name__}.{MODULES[name]}")
    return module.make(name)
