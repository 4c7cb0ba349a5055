"""What the policy says about capture: which requests a route keeps, how they are redacted, how long kept."""

from __future__ import annotations

import random
from collections.abc import Callable

from gateway.capture.redaction import Redactor
from policies import Capture, PolicyHolder, Route

DEFAULT_RETENTION_DAYS = Capture.model_fields["retention_days"].default
"""For captures of a route that no longer captures (or exists): kept as long as a new block would keep them."""


class CapturePolicy:
    """Reads each route's ``capture:`` block in the current policy: on the request path (``sampled``) and
    in the capture writer's thread (redaction, retention)."""

    def __init__(self, policies: PolicyHolder, draw: Callable[[], float] = random.random) -> None:
        self._policies = policies
        self._draw = draw
        self._redactors: dict[Capture, Redactor] = {}

    def sampled(self, route: Route | None) -> bool:
        capture = route.capture if route is not None else None
        return capture is not None and self._draw() < capture.share

    def _capture(self, route: str) -> Capture | None:
        found = self._policies.current.routes.get(route)
        return found.capture if found is not None else None

    def redactor(self, route: str) -> Redactor:
        """The route's redaction, built once per policy block (a reload that changes it builds a new one)."""
        capture = self._capture(route) or Capture(share=1.0)
        redactor = self._redactors.get(capture)
        if redactor is None:
            redactor = self._redactors[capture] = Redactor(capture.redact)
        return redactor

    def retention_days(self, route: str) -> float:
        capture = self._capture(route)
        return capture.retention_days if capture is not None else DEFAULT_RETENTION_DAYS

    def wanted(self) -> bool:
        return any(route.capture is not None for route in self._policies.current.routes.values())
