"""Feedback on a captured request: joined to it by the gateway's request id, from whoever may judge it.

As for experiments (``gateway.api.experiments``): only the key that made the request, or the holder
of the feedback token its response carried, may judge it; anyone else learns nothing (``UNKNOWN``).
The score must lie on the route's ``capture.feedback`` scale. Runs in a worker thread with its own
connection, so a slow database never holds the event loop.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from gateway.capture.rows import CaptureFeedback
from gateway.capture.store import CaptureStore, Judges
from policies import FeedbackScale


class Judged(enum.Enum):
    STORED = "stored"
    EXISTS = "exists"  # feedback was given before, and replacing it was not asked
    UNKNOWN = "unknown"  # not captured, or not the caller's to judge
    OFF_SCALE = "off_scale"


def judge(open_store: Callable[[], CaptureStore], scale_for: Callable[[str], FeedbackScale],
          feedback: CaptureFeedback, owner: str | None, token: str | None, *,
          replace: bool) -> tuple[Judged, Judges | None]:
    """Store ``feedback`` on its captured request when the caller (``owner``, ``token``) may give it; the
    request's route and arm come back with a stored judgement (for the quality metrics), never otherwise."""
    store = open_store()
    try:
        store.migrate()  # a gateway that has captured nothing yet has no tables: then nothing is known
        judges = store.judges(feedback.request_id)
        if judges is None or not judges.allow(owner, token):
            return Judged.UNKNOWN, None
        scale = scale_for(judges.route)
        if feedback.score is not None and not scale.min <= feedback.score <= scale.max:
            return Judged.OFF_SCALE, None
        if store.add_feedback(feedback, replace=replace):
            return Judged.STORED, judges
        return Judged.EXISTS, None
    finally:
        store.close()
