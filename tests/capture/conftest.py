"""The capture store on both of its databases: SQLite in a temporary directory, and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gateway.accounting.completion import Arrival, Completion, Exchange, Routing, finish
from gateway.accounting.usage import Usage
from gateway.app import create_app
from gateway.capture import CaptureStore
from gateway.settings import Settings
from tests.conftest import POLICY
from tests.support.postgres import fresh_database
from tests.support.servers import ServerThread

OpenStore = Callable[[], CaptureStore]


@contextmanager
def gateway_with(tmp_path: Path, upstream_url: str, routes: str) -> Iterator[ServerThread]:
    """A gateway on the shared test policy plus ``routes`` (YAML under ``routes:``), data under ``tmp_path/var``."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "policy.yaml").write_text(POLICY.format(url=upstream_url) + routes)
    server = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """Opens a new connection to one empty capture database each call (the writer's, the test's own)."""
    if request.param == "sqlite":
        yield lambda: CaptureStore.open(None, tmp_path)
        return
    with fresh_database() as url:
        yield lambda: CaptureStore.open(url, tmp_path)


def completed(request_id: str, route: str = "support", text: str = "How do refunds work?",
              answer: bytes = b'{"choices": [{"message": {"role": "assistant", "content": "In 5 days."}}]}'
              ) -> Completion:
    """A successful captured request, as the ledger hands it to the capture writer."""
    own = [{"role": "user", "content": text}]
    sent = [{"role": "system", "content": "You are the support desk."}, *own]
    return finish(Arrival(request_id, "chat"), Routing(route, "fine_tuned", "small"), usage=Usage(12, 4),
                  exchange=Exchange(own, sent, answer))
