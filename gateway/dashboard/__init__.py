"""The built-in dashboard: one static page (index.html, dashboard.js, dashboard.css) served at /dashboard.

The page needs nothing but the gateway: its script polls ``/metrics`` and
``/v1/economics`` every two seconds and draws its charts as inline SVG, with
no CDN, npm or build step. See ``gateway.api.dashboard``.
"""

from __future__ import annotations

from importlib import resources

ASSETS = {"index.html": "text/html; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}


def asset(name: str) -> bytes:
    """The bytes of one packaged asset; only names in ``ASSETS`` are ever read."""
    return resources.files(__name__).joinpath(name).read_bytes()
