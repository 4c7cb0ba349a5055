"""Capture: a route's production traffic kept, redacted, as the examples of its fine-tuning dataset.

- ``service``: ``CapturePolicy``, what each route's ``capture:`` block says (share, redaction, retention);
- ``feedback``: a caller's judgement of a captured request, joined by the gateway's request id;
- ``redaction``: secrets and personal data removed before anything is stored;
- ``rows``: one captured request as queued (``Captured``, read out of its ``Completion``) and as stored
  (``CaptureRow``);
- ``store``: SQLite under the data directory, or PostgreSQL for every replica; ``migrations``: its schema;
- ``writer``: the bounded queue and thread that store captures off the request path, and retention.
"""

from gateway.capture.feedback import Judged, judge
from gateway.capture.redaction import Redactor
from gateway.capture.rows import Captured, CaptureFeedback, CaptureRow, ShadowAnswer, capture_row, captured
from gateway.capture.service import CapturePolicy
from gateway.capture.store import CaptureStore, CaptureStoreError, Judges
from gateway.capture.writer import CaptureWriter

__all__ = ["CaptureFeedback", "CapturePolicy", "CaptureRow", "CaptureStore", "CaptureStoreError", "CaptureWriter",
           "Captured", "Judged", "Judges", "Redactor", "ShadowAnswer", "capture_row", "captured", "judge"]
