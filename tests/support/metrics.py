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


def histogram_quantile(q: float, text: str, name: str, **labels: str) -> float:
    """Prometheus' ``histogram_quantile`` over the ``name_bucket`` series matching ``labels`` (summed).

    Linear inside the bucket that holds the rank, as Prometheus, Grafana and the dashboard estimate it.
    """
    cumulative: dict[float, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "_bucket{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            key = float("inf") if bound == "+Inf" else float(bound)
            cumulative[key] = cumulative.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    bounds = sorted(cumulative)
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if cumulative[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / ((cumulative[bound] - below) or 1.0)
        lower, below = bound, cumulative[bound]
    return lower
