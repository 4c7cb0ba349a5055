"""The one way tests send the gateway a chat completion request, instead of a copy of the same post per module.

Tests that are about the request itself (malformed JSON, content types, raw
bytes, the SDKs) still build it by hand; every other test states only what
differs from one user message to a route.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import httpx


class Served(Protocol):
    """A running gateway: in a thread (``ServerThread``) or in a process (``GatewayProcess``)."""

    @property
    def url(self) -> str: ...


def chat(server: Served, model: str, content: str = "hi", *, headers: Mapping[str, str] | None = None,
         timeout_s: float = 30, expect: int | None = None, **body: Any) -> httpx.Response:
    """POST ``/v1/chat/completions`` asking route ``model`` one user message, ``content``.

    ``body`` adds fields or replaces them (``messages=``, ``stream=True``, ``user=``); ``expect``, when
    given, is the status the test needs, asserted here so the failure shows the gateway's answer.
    """
    response = httpx.post(server.url + "/v1/chat/completions", headers=dict(headers or {}), timeout=timeout_s,
                          json={"model": model, "messages": [{"role": "user", "content": content}], **body})
    if expect is not None:
        assert response.status_code == expect, response.text
    return response
