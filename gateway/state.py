"""The runtime objects one app instance owns, built in its lifespan and kept on ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.knowledge import KnowledgeService
from gateway.ledger import Ledger
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.upstream import Upstreams
from policies import PolicyHolder

ReadinessCheck = Callable[[], Awaitable[str | None]]


@dataclass
class GatewayState:
    settings: Settings
    policies: PolicyHolder
    upstreams: Upstreams
    metrics: Metrics
    ledger: Ledger
    knowledge: KnowledgeService
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
