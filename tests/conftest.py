"""Shared fixtures: a scripted fake upstream and gateways served on real loopback ports."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from gateway.app import create_app
from gateway.settings import Settings, digest_key
from tests.support.fake_upstream import FakeUpstream
from tests.support.redis_server import delete_prefix, require_shared_redis, unique_prefix
from tests.support.scripts import played_out
from tests.support.servers import ServerThread

# The models POLICY's targets name: what the gateway puts in the body it sends the fake upstream,
# and so what a test scripts with ``fake.script_for``.
BIG_MODEL = "big-model"
SMALL_MODEL = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
MYSTERY_MODEL = "mystery-model"
SLOW_MODEL = "slow-model"

POLICY = """
version: 1
targets:
  big:
    provider: vllm
    model: big-model
    api_base: {url}/v1
    price: {{input_per_million: 2.0, output_per_million: 8.0}}
  small:
    provider: openai
    model: ft:gpt-4o-mini-2024-07-18:acme::abc123
    api_base: {url}/v1
  mystery:
    provider: vllm
    model: mystery-model
    api_base: {url}/v1
  slow:
    provider: vllm
    model: slow-model
    api_base: {url}/v1
    timeout_s: 0.3
  down:
    provider: vllm
    model: down-model
    api_base: http://127.0.0.1:9/v1
    connect_timeout_s: 1
  embedder:
    provider: openai_compatible
    model: embed-model
    api_base: {url}/v1
    expose: true
    price: {{input_per_million: 0.1, output_per_million: 0}}
routes:
  chat:
    allow_arm_override: true
    arms:
      prompted:
        target: big
        system_prompt: You are precise.
        few_shot:
          - {{user: "2+2?", assistant: "4"}}
      fine_tuned:
        target: small
  chat-small:
    default_arm: fine_tuned
    arms:
      prompted: {{target: big}}
      fine_tuned: {{target: small}}
  unpriced:
    arms: {{prompted: {{target: mystery}}}}
  slow:
    arms: {{prompted: {{target: slow}}}}
  down:
    arms: {{prompted: {{target: down}}}}
"""

@pytest.fixture(scope="session")
def fake_server() -> Iterator[tuple[FakeUpstream, ServerThread]]:
    fake = FakeUpstream()
    server = ServerThread(fake.app()).start()
    yield fake, server
    server.stop()


@pytest.fixture
def fake(fake_server: tuple[FakeUpstream, ServerThread]) -> Iterator[FakeUpstream]:
    """The session's fake upstream, emptied, whose script must be played out by the end of the test."""
    with played_out(fake_server[0]) as upstream:
        yield upstream


@pytest.fixture
def policy_dir(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread]) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "policy.yaml").write_text(POLICY.format(url=fake_server[1].url))
    return directory


GatewayFactory = Callable[..., ServerThread]


@pytest.fixture
def start_gateway(policy_dir: Path, tmp_path: Path) -> Iterator[GatewayFactory]:
    started: list[ServerThread] = []

    def start(clock: Callable[[], float] = time.time, **overrides: object) -> ServerThread:
        settings = Settings(**{"policies_dir": policy_dir, "data_dir": tmp_path / "var",
                               "reload_interval_s": 0.05, **overrides})  # type: ignore[arg-type]
        server = ServerThread(create_app(settings, clock=clock)).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def gateway(start_gateway: GatewayFactory, fake: FakeUpstream) -> ServerThread:
    return start_gateway()


@pytest.fixture
def keyed_gateway(start_gateway: GatewayFactory, fake: FakeUpstream) -> ServerThread:
    return start_gateway(api_key_digests=frozenset({digest_key("sk-test-1"), digest_key("sk-test-2")}))


@pytest.fixture
async def shared_redis() -> AsyncIterator[tuple[str, str]]:
    """The shared Redis URL and a fresh key prefix, whose keys are deleted afterwards."""
    url, prefix = require_shared_redis(), unique_prefix()
    yield url, prefix
    await delete_prefix(url, prefix)

