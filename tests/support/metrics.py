"""Read a gateway's /metrics the way Prometheus would sum it."""

from __future__ import annotations

import httpx


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def scrape(url: str, name: str, **labels: str) -> float:
    return metric_sum(httpx.get(url + "/metrics").text, name, **labels)
