"""The published OpenAPI document is the gateway's contract, checked by schemathesis against a live gateway.

Every operation in ``/openapi.json`` is fuzzed over loopback (the fake upstream
behind it) with valid and invalid inputs, a fixed number of examples each,
derandomized so CI sees the same requests every run. Each response must not be
a server error, and must have a documented status, content type, body
schema and required headers. No operation is excluded: the knowledge admin API writes and deletes
only in this test's temporary store.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.api import endpoints
from gateway.app import create_app
from gateway.settings import Settings, digest_key
from tests.conftest import GatewayFactory
from tests.support.fake_upstream import FakeUpstream
from tests.support.polling import poll
from tests.support.servers import ServerThread

KEY = "sk-contract"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Route and embedding target named as in the document's request examples, so those reach the upstream.
POLICY = """
version: 1
targets:
  big:
    provider: vllm
    model: big-model
    api_base: {url}/v1
    price: {{input_per_million: 2.0, output_per_million: 8.0}}
  text-embedding-3-small:
    provider: openai_compatible
    model: embed-model
    api_base: {url}/v1
    expose: true
routes:
  support:
    arms:
      prompted: {{target: big}}
  grounded:  # a route with knowledge, so the store (and with it the admin API) opens
    arms:
      prompted: {{target: big, knowledge: {{collection: facts}}}}
"""
EXAMPLES = 25  # per operation and mode (valid inputs, invalid inputs)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]


@pytest.fixture
def policy_dir(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread]) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    (directory / "policy.yaml").write_text(POLICY.format(url=fake_server[1].url))
    return directory


def _violations(operation: schemathesis.APIOperation, mode: GenerationMode) -> str | None:
    """The first failing case of ``operation`` in ``mode`` (with schemathesis' reproduction), or None."""

    # derandomize: Hypothesis seeds itself from this function, the same on every run; no shrinking, to stay fast.
    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        case.call_and_validate(headers=AUTH, checks=CHECKS, timeout=30)

    try:
        run()
    except Unsatisfiable:
        if mode is not GenerationMode.NEGATIVE:
            raise
        return None  # /healthz, /readyz: no parameters, body or key, so no invalid request to make
    except Exception as exc:  # every failure of every operation is reported, not only the first
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_every_operation_keeps_the_published_contract(start_gateway: GatewayFactory, fake: FakeUpstream) -> None:
    keys = frozenset({digest_key(KEY)})
    server = start_gateway(api_key_digests=keys, admin_key_digests=keys)
    # The knowledge store opens in the background: fuzz once it (and everything else) is ready, not its 503s.
    poll(lambda: httpx.get(f"{server.url}/readyz").status_code == 200, "the gateway to be ready", timeout_s=60)
    contract = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = [result.ok() for result in contract.get_all_operations()]
    served = {(method, route.path_format) for route in endpoints for method in route.methods or () if method != "HEAD"}
    assert {(operation.method.upper(), operation.path) for operation in operations} == served
    failures = [failure for operation in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if (failure := _violations(operation, mode)) is not None]
    assert not failures, "\n\n".join(failures)


def test_the_document_and_its_docs_page_are_served(gateway: ServerThread) -> None:
    document = httpx.get(f"{gateway.url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    chat = document["paths"]["/v1/chat/completions"]["post"]
    assert set(chat["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert chat["responses"]["401"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"}
    page = httpx.get(f"{gateway.url}/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_fastapi_validation_errors_use_the_openai_envelope(policy_dir: Path, tmp_path: Path) -> None:
    """An ``APIRoute`` with typed parameters (none is served today) fails in OpenAI's envelope, not FastAPI's 422."""
    app = create_app(Settings(policies_dir=policy_dir, data_dir=tmp_path / "var"))

    async def probe(limit: int) -> dict[str, int]:
        return {"limit": limit}

    app.router.add_api_route("/probe", probe, methods=["GET"])
    server = ServerThread(app).start()
    try:
        assert httpx.get(f"{server.url}/probe?limit=7").json() == {"limit": 7}
        refused = httpx.get(f"{server.url}/probe?limit=many")
    finally:
        server.stop()
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "invalid_parameter", "limit")
