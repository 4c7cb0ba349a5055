"""OpenAI's error envelope, which every refusal and failure of the gateway must use, checked in one place."""

from __future__ import annotations

from typing import Any

import httpx


def assert_envelope(response: httpx.Response, status: int, code: str | None = None,
                    param: str | None = None) -> dict[str, Any]:
    """``response`` is ``status`` with OpenAI's envelope (and ``code``/``param`` when given); the error object.

    The message must say something and give nothing away: no traceback, no path on this machine.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"] and "Traceback" not in error["message"] and "/work/" not in error["message"]
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    return error
