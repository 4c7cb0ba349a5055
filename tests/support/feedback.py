"""Give feedback on a served request as its caller can: by the gateway's request id, with the response's token."""

from __future__ import annotations

import httpx


def feedback_on(served: httpx.Response, *, token: bool = True) -> dict[str, str]:
    """The body fields naming ``served`` in ``POST /v1/feedback``; without ``token``, the id alone."""
    named = {"request_id": served.headers["x-gateway-request-id"]}
    if token:
        named["feedback_token"] = served.headers["x-gateway-feedback-token"]
    return named


def give_feedback(url: str, served: httpx.Response, *, token: bool = True, headers: dict[str, str] | None = None,
                  **body: object) -> httpx.Response:
    """``POST /v1/feedback`` to the gateway at ``url`` on the request ``served`` answered."""
    return httpx.post(url + "/v1/feedback", json={**feedback_on(served, token=token), **body}, headers=headers,
                      timeout=30)
