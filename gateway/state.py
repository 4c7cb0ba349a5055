"""The runtime objects one app instance owns, built in its lifespan and kept on ``app.state``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from gateway.accounting.cluster_ledger import ClusterLedger
from gateway.accounting.ledger import Ledger
from gateway.accounting.traffic_window import WindowStore
from gateway.capture import CapturePolicy, CaptureWriter
from gateway.keys import KeyGate
from gateway.metrics import Metrics
from gateway.pipeline.arm_choice import ArmChooser
from gateway.pipeline.attempts import AttemptRunner
from gateway.pipeline.experiments import OutcomeRecorder
from gateway.pipeline.grounding import KnowledgeService
from gateway.pipeline.shadow import ShadowRunner
from gateway.response_cache import ResponseCache
from gateway.settings import Settings
from gateway.upstream import Upstreams
from policies import PolicyHolder, SharedState

ReadinessCheck = Callable[[], Awaitable[str | None]]


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Dependency:
    """One readiness check: ``check`` says what is wrong now (None: fine); ``reached`` whether it
    has ever worked since start, which turns a later failure into ``degraded`` (see /readyz)."""

    check: ReadinessCheck
    reached: Callable[[], bool] = _never


@dataclass(frozen=True)
class GatewayState:
    """Built whole by ``gateway.app``'s lifespan, then only read: no handler swaps a service."""

    settings: Settings
    policies: PolicyHolder
    upstreams: Upstreams
    metrics: Metrics
    ledger: Ledger
    knowledge: KnowledgeService
    attempts: AttemptRunner
    chooser: ArmChooser
    outcomes: OutcomeRecorder
    shared: SharedState
    shadow: ShadowRunner
    window: WindowStore
    """The economics window's counters: the cluster ledger with Redis, else SQLite under the data dir."""
    readiness: Mapping[str, Dependency]
    capture: CapturePolicy
    captures: CaptureWriter
    keys: KeyGate
    """Named keys' routes and limits at intake, and their settlement (a ledger hook)."""
    cache: ResponseCache
    cluster: ClusterLedger | None = None
