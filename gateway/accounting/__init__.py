"""What each request used and cost, counted exactly once: per process, per cluster, per time window.

- ``usage``: token usage (reported or estimated) and its cost.
- ``pricing``: per-token prices (the target's override, else litellm's bundled map).
- ``completion``: the values a request gathers (``Arrival``, ``Routing``, ``Delivery``) and the one
  ``Completion`` ``finish`` makes of them.
- ``ledger``: the ``Ledger`` that records each ``Completion`` (metrics, the access log, hooks).
- ``traffic_window``: time-bucketed counters per route and arm (the evidence of the live economics).
- ``window_store``: those buckets persisted in SQLite for the embedded default.
- ``cluster_ledger``: cluster-wide totals and window buckets in Redis.

Nothing here knows the request path: the pipeline and the API hand finished requests in.
"""

from gateway.accounting.cluster_ledger import ClusterLedger
from gateway.accounting.completion import (
    NOTHING_DELIVERED,
    UNROUTED,
    Arrival,
    Completion,
    Delivery,
    Exchange,
    Quota,
    Routing,
    finish,
)
from gateway.accounting.ledger import Ledger
from gateway.accounting.pricing import TokenPrice, price_of
from gateway.accounting.traffic_window import Counts, Grid, MemoryBuckets, Window, WindowStore
from gateway.accounting.usage import (
    Usage,
    content_text,
    cost_usd,
    estimate_prompt_tokens,
    estimate_tokens,
    estimate_tokens_upto,
    format_cost,
    reply_usage,
    usage_from,
)
from gateway.accounting.window_store import SqliteWindowStore

__all__ = [
    "NOTHING_DELIVERED",
    "UNROUTED",
    "Arrival",
    "ClusterLedger",
    "Completion",
    "Counts",
    "Delivery",
    "Exchange",
    "Grid",
    "Ledger",
    "MemoryBuckets",
    "Quota",
    "Routing",
    "SqliteWindowStore",
    "TokenPrice",
    "Usage",
    "Window",
    "WindowStore",
    "content_text",
    "cost_usd",
    "estimate_prompt_tokens",
    "estimate_tokens",
    "estimate_tokens_upto",
    "finish",
    "format_cost",
    "price_of",
    "reply_usage",
    "usage_from",
]
