"""Knowledge (RAG) set-up shared by the gateway's retrieval tests: a fact to ingest, and waiting for the store."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.polling import poll

# One document a question about Mars deliveries retrieves, and nothing else does.
SHIPPING_FACT = ("# Orbital Tea shipping\n\nOrbital Tea ships loose-leaf tea to Mars colonies every 26 months, "
                 "when the planets align.\n")


def wait_knowledge_loaded(url: str, timeout_s: float = 30) -> dict[str, Any]:
    """The gateway's ``/readyz`` body once its knowledge check has left ``loading`` (whatever it became)."""

    def settled() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(url + "/readyz", timeout=10).json()
        return None if body["checks"]["knowledge"] == "loading" else body

    found: dict[str, Any] = poll(settled, "knowledge to finish loading", timeout_s=timeout_s, every_s=0.05)
    return found
