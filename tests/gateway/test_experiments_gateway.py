"""A/B experiments, feedback and reports through the gateway; shared Redis across two gateways; shadows."""

from __future__ import annotations

import asyncio
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from scipy import stats

from gateway.app import create_app
from gateway.settings import Settings, digest_key
from tests.conftest import MYSTERY_MODEL, POLICY, SMALL_MODEL
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.feedback import give_feedback
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.process import GatewayProcess
from tests.support.redis_server import RedisServer, delete_prefix, require_shared_redis, unique_prefix
from tests.support.servers import ServerThread

EXPERIMENT = """
version: 1
routes:
  ab:
    arms:
      prompted: {{target: big}}
      fine_tuned:
        target: small
        fallback: {{to: [{{arm: prompted}}]}}
{shadow}
experiments:
  ft-rollout:
    route: ab
    key: user
    allow_override: {override}
    feedback: {{min: 0, max: 10}}
    variants:
      control: {{weight: 50, arm: prompted}}
      treatment: {{weight: 50, arm: fine_tuned}}
"""


def write_policies(directory: Path, url: str, *, share: float = 1.0, override: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "base.yaml").write_text(POLICY.format(url=url))
    shadow = f"    shadow: {{target: mystery, share: {share}}}" if share else ""
    (directory / "ab.yaml").write_text(EXPERIMENT.format(shadow=shadow, override=str(override).lower()))
    return directory


def ask(server: ServerThread, user: str | None, **headers: str) -> httpx.Response:
    """Route ``ab`` for ``user``, or for no user at all."""
    return chat(server, "ab", headers=headers, **({} if user is None else {"user": user}))


def metric(server: ServerThread, name: str, **labels: str) -> float:
    return scrape(server.url, name, **labels)


@pytest.fixture
def local_gateway(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread],
                  fake: FakeUpstream) -> Iterator[ServerThread]:
    policies = write_policies(tmp_path / "policies", fake_server[1].url, share=1.0)
    server = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var"))).start()
    yield server
    server.stop()


def test_variant_decides_the_arm_and_is_sticky(local_gateway: ServerThread, fake: FakeUpstream) -> None:
    seen: dict[str, str] = {}
    for index in range(40):
        response = ask(local_gateway, f"user-{index}")
        variant = response.headers["x-gateway-variant"]
        assert response.headers["x-gateway-experiment"] == "ft-rollout"
        assert response.headers["x-gateway-assignment"] == "keyed"
        assert response.headers["x-gateway-arm"] == ("prompted" if variant == "control" else "fine_tuned")
        seen[f"user-{index}"] = variant
    assert set(seen.values()) == {"control", "treatment"}
    for user, variant in list(seen.items())[:10]:
        assert ask(local_gateway, user).headers["x-gateway-variant"] == variant
    assert metric(local_gateway, "gateway_requests_total", variant="treatment") == sum(
        v == "treatment" for v in seen.values()) + sum(v == "treatment" for v in list(seen.values())[:10])


def test_responses_join_the_experiment_with_the_variant_chat_gives_the_user(local_gateway: ServerThread,
                                                                           fake: FakeUpstream) -> None:
    variants = set()
    for index in range(10):
        user = f"user-{index}"
        variant = ask(local_gateway, user).headers["x-gateway-variant"]
        response = httpx.post(local_gateway.url + "/v1/responses", json={"model": "ab", "input": "hi", "user": user})
        assert response.status_code == 200, response.text
        assert response.headers["x-gateway-experiment"] == "ft-rollout"
        assert (response.headers["x-gateway-variant"], response.headers["x-gateway-assignment"]) == (variant, "keyed")
        assert response.headers["x-gateway-arm"] == ("prompted" if variant == "control" else "fine_tuned")
        assert response.headers["x-gateway-feedback-token"]
        variants.add(variant)
    assert variants == {"control", "treatment"}


def test_unkeyed_requests_are_marked_and_overrides_refused(local_gateway: ServerThread, fake: FakeUpstream) -> None:
    assert ask(local_gateway, None).headers["x-gateway-assignment"] == "unkeyed"
    refused = ask(local_gateway, "u", **{"x-gateway-variant": "treatment"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_variant"


def test_shadow_mirrors_without_touching_the_answer(local_gateway: ServerThread, fake: FakeUpstream) -> None:
    response = ask(local_gateway, "shadowed")
    assert response.status_code == 200
    poll(lambda: metric(local_gateway, "gateway_shadow_requests_total", target="mystery", status="200") == 1,
             "the shadow call")
    assert sorted(body["model"] for body in fake.received) == sorted([response.json()["model"], MYSTERY_MODEL])
    assert metric(local_gateway, "gateway_shadow_tokens_total", target="mystery", direction="output") == 5
    # The client's request is accounted once, under its own labels; the shadow is not a client request.
    assert metric(local_gateway, "gateway_requests_total") == 1


def test_feedback_and_report_match_an_independent_computation(local_gateway: ServerThread,
                                                              fake: FakeUpstream) -> None:
    outcomes: dict[str, list[bool]] = {"control": [], "treatment": []}
    for index in range(60):
        response = ask(local_gateway, f"fb-{index}")
        variant = response.headers["x-gateway-variant"]
        success = (index % 3 != 0) if variant == "control" else (index % 5 != 0)
        given = give_feedback(local_gateway.url, response, success=success)
        assert given.status_code == 200 and given.json()["variant"] == variant
        outcomes[variant].append(success)
    unknown = httpx.post(local_gateway.url + "/v1/feedback", json={"request_id": "nope", "success": True})
    assert unknown.status_code == 404
    assert httpx.post(local_gateway.url + "/v1/feedback", json={"request_id": "x"}).status_code == 400

    report = httpx.get(local_gateway.url + "/v1/experiments/ft-rollout").json()
    n1, n2 = len(outcomes["control"]), len(outcomes["treatment"])
    s1, s2 = sum(outcomes["control"]), sum(outcomes["treatment"])
    pooled = (s1 + s2) / (n1 + n2)
    z = (s2 / n2 - s1 / n1) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p = 2 * stats.norm.sf(abs(z))
    success = report["comparisons"][0]["success"]
    assert abs(abs(success["statistic"]) - abs(z)) < 1e-6
    assert abs(success["p_value"] - p) < 1e-6
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["control"]["n"] == n1 and by_name["treatment"]["n"] == n2
    assert httpx.get(local_gateway.url + "/v1/experiments/none").status_code == 404


def test_crossed_requests_are_excluded_and_counted(local_gateway: ServerThread, fake: FakeUpstream) -> None:
    for index in range(100):
        if ask(local_gateway, f"x-{index}").headers["x-gateway-variant"] == "treatment":
            treated = f"x-{index}"
            break
    # The treatment's fine-tuned target fails, the prompted arm answers; the shadows still landing in the
    # background call another model, so they cannot take the failure.
    fake.script_for(SMALL_MODEL, Action(status=500))
    response = ask(local_gateway, treated)
    assert response.headers["x-gateway-fallback"] == "small>big:server_error"
    give_feedback(local_gateway.url, response, success=True)
    poll(lambda: httpx.get(local_gateway.url + "/v1/experiments/ft-rollout").json()["variants"][1]
             ["excluded_crossed"] == 1, "the crossed request in the report")


def test_two_gateways_sharing_redis_agree(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread],
                                          fake: FakeUpstream) -> None:
    url, prefix = require_shared_redis(), unique_prefix()
    servers = []
    try:
        for index in range(2):
            policies = write_policies(tmp_path / f"p{index}", fake_server[1].url, share=0.0)
            settings = Settings(policies_dir=policies, data_dir=tmp_path / f"var{index}", redis_url=url,
                                redis_prefix=prefix)
            servers.append(ServerThread(create_app(settings)).start())
        for index in range(30):
            first, second = (ask(server, f"shared-{index}") for server in servers)
            assert first.headers["x-gateway-variant"] == second.headers["x-gateway-variant"]
        # Feedback given to one replica joins a request served by the other.
        served = ask(servers[0], "cross-replica")
        given = give_feedback(servers[1].url, served, score=4.5)
        assert given.status_code == 200
        again = give_feedback(servers[0].url, served, score=1.5)
        assert again.status_code == 409 and again.json()["error"]["code"] == "feedback_exists"
    finally:
        for server in servers:
            server.stop()
        asyncio.run(delete_prefix(url, prefix))


def test_redis_outage_keeps_serving_and_resyncs(tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread],
                                                fake: FakeUpstream) -> None:
    with RedisServer() as redis_server:
        policies = write_policies(tmp_path / "policies", fake_server[1].url, share=0.0)
        settings = Settings(policies_dir=policies, data_dir=tmp_path / "var", redis_url=redis_server.url)
        gateway = ServerThread(create_app(settings)).start()
        try:
            assert ask(gateway, "before").status_code == 200
            assert metric(gateway, "gateway_redis_up") == 1
            redis_server.stop()
            during = ask(gateway, "during")
            assert during.status_code == 200
            readiness = httpx.get(gateway.url + "/readyz")
            # Redis answered before: its outage degrades this replica, it does not take it out of service.
            assert readiness.status_code == 200 and readiness.json()["status"] == "degraded"
            assert readiness.json()["checks"]["redis"].startswith("unreachable")
            assert metric(gateway, "gateway_redis_transitions_total", state="down") == 1
            assert metric(gateway, "gateway_redis_up") == 0
            redis_server.start()
            poll(lambda: httpx.get(gateway.url + "/readyz").json()["status"] == "ready", "Redis to be back")
            assert metric(gateway, "gateway_redis_up") == 1
            # The test Redis keeps nothing on disk, so the request from before the outage died with it;
            # the one served during the outage was journalled locally and replayed, exactly once.
            given = give_feedback(gateway.url, during, success=True)
            assert given.status_code == 200
            report = httpx.get(gateway.url + "/v1/experiments/ft-rollout").json()
            assert sum(v["n"] for v in report["variants"]) == 1
            assert sum(v["n_feedback"] for v in report["variants"]) == 1
        finally:
            gateway.stop()


def test_report_cli_reads_the_same_store(local_gateway: ServerThread, fake: FakeUpstream, tmp_path: Path) -> None:
    for index in range(8):
        response = ask(local_gateway, f"cli-{index}")
        give_feedback(local_gateway.url, response, score=float(index))
    served = httpx.get(local_gateway.url + "/v1/experiments/ft-rollout").json()
    base = [sys.executable, "-m", "gateway.cli", "experiments", "report", "ft-rollout",
            "--policies", str(tmp_path / "policies"), "--data-dir", str(tmp_path / "var")]
    as_json = subprocess.run([*base, "--json"], capture_output=True, text=True, check=True)
    assert [v["n"] for v in json.loads(as_json.stdout)["variants"]] == [v["n"] for v in served["variants"]]
    table = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    assert "treatment vs control (control)" in table and "mean score" in table
    remote = subprocess.run([*base[:6], "--url", local_gateway.url], capture_output=True, text=True, check=True)
    assert json.loads(remote.stdout)["variants"] == served["variants"]


@pytest.mark.multiprocess
def test_two_gateway_processes_on_one_redis_agree(shared_redis: tuple[str, str]) -> None:
    url, prefix = shared_redis
    env = {"HYBRID_GATEWAY_REDIS_URL": url, "HYBRID_GATEWAY_REDIS_PREFIX": prefix,
           "HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}
    gateways = [GatewayProcess(env=env).start() for _ in range(2)]
    try:
        for index in range(20):
            variants = {chat(gateway, "support", user=f"proc-{index}").headers["x-gateway-variant"]
                        for gateway in gateways}
            assert len(variants) == 1
        served = chat(gateways[0], "support", user="proc-feedback")
        given = give_feedback(gateways[1].url, served, success=True)
        assert given.status_code == 200 and given.json()["variant"] == served.headers["x-gateway-variant"]
    finally:
        for gateway in gateways:
            gateway.stop()


def test_report_cli_fails_on_an_unknown_experiment_or_an_empty_store(tmp_path: Path,
                                                                     fake_server: tuple[FakeUpstream, ServerThread]
                                                                     ) -> None:
    policies = write_policies(tmp_path / "policies", fake_server[1].url)
    base = [sys.executable, "-m", "gateway.cli", "experiments", "report", "--policies", str(policies)]
    unknown = subprocess.run([*base, "no-such", "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert unknown.returncode == 1 and "no experiment named 'no-such'" in unknown.stderr
    nowhere = subprocess.run([*base, "ft-rollout", "--data-dir", str(tmp_path / "nowhere")],
                             capture_output=True, text=True)
    assert nowhere.returncode == 1 and nowhere.stdout == ""
    assert f"no data directory at {tmp_path / 'nowhere'}" in nowhere.stderr
    empty = subprocess.run([*base, "ft-rollout", "--data-dir", str(tmp_path)], capture_output=True, text=True)
    assert empty.returncode == 1 and empty.stdout == ""
    assert "no outcomes recorded for experiment 'ft-rollout'" in empty.stderr


def _mean_score(server: ServerThread, variant: str) -> tuple[int, float | None]:
    report = httpx.get(server.url + "/v1/experiments/ft-rollout").json()
    found = next(v for v in report["variants"] if v["name"] == variant)
    return found["n_feedback"], found["score"] and found["score"]["mean"]


def test_feedback_fits_the_declared_scale_and_a_repeat_is_refused_unless_replacing(
        local_gateway: ServerThread, fake: FakeUpstream) -> None:
    served = ask(local_gateway, "scaled-user")
    variant = served.headers["x-gateway-variant"]

    def give(**body: object) -> httpx.Response:
        return give_feedback(local_gateway.url, served, **body)

    outside = give(score=-1000)  # the policy declares feedback: {min: 0, max: 10}
    assert outside.status_code == 400
    error = outside.json()["error"]
    assert error["param"] == "score" and "between 0 and 10" in error["message"] and "ft-rollout" in error["message"]
    assert give(score=10.5).status_code == 400
    assert _mean_score(local_gateway, variant) == (0, None)  # refused, not recorded
    assert give(score=0.8).status_code == 200
    again = give(score=0.2, success=False)
    assert again.status_code == 409 and again.json()["error"]["code"] == "feedback_exists"
    assert "replace" in again.json()["error"]["message"]
    assert "409" in httpx.get(local_gateway.url + "/openapi.json").json()["paths"]["/v1/feedback"]["post"]["responses"]
    assert _mean_score(local_gateway, variant) == (1, 0.8)
    replaced = give(score=0.2, replace=True)
    assert replaced.status_code == 200
    assert _mean_score(local_gateway, variant) == (1, 0.2)


def test_a_repeated_client_request_id_keeps_every_outcome(local_gateway: ServerThread, fake: FakeUpstream) -> None:
    served = [ask(local_gateway, f"traced-{index}", **{"x-request-id": "one-trace"}) for index in range(3)]
    assert {response.headers["x-request-id"] for response in served} == {"one-trace"}
    poll(lambda: sum(v["n"] for v in httpx.get(local_gateway.url + "/v1/experiments/ft-rollout").json()["variants"])
         == 3, "three outcomes, none overwritten")
    for index, response in enumerate(served):  # each is its own request, with its own feedback
        assert give_feedback(local_gateway.url, response, score=float(index)).status_code == 200
    report = httpx.get(local_gateway.url + "/v1/experiments/ft-rollout").json()
    assert sum(v["n_feedback"] for v in report["variants"]) == 3


def _unknown(response: httpx.Response) -> bool:
    """The answer to feedback on an id that is not on record: the same whether it exists or not."""
    return response.status_code == 404 and response.json()["error"]["param"] == "request_id"


def test_without_keys_feedback_needs_the_responses_token(local_gateway: ServerThread, fake: FakeUpstream) -> None:
    served = ask(local_gateway, "tokened")
    assert _unknown(give_feedback(local_gateway.url, served, token=False, success=True))
    forged = give_feedback(local_gateway.url, served, token=False, success=True, feedback_token="guess")
    assert _unknown(forged)
    nowhere = httpx.post(local_gateway.url + "/v1/feedback", json={"request_id": "gw-" + "0" * 24, "success": True})
    assert _unknown(nowhere)
    assert forged.json()["error"]["message"].replace(served.headers["x-gateway-request-id"], "<id>") == \
        nowhere.json()["error"]["message"].replace("gw-" + "0" * 24, "<id>")
    assert give_feedback(local_gateway.url, served, success=True).status_code == 200


def test_feedback_comes_from_the_requests_key_or_carries_its_token(
        tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream) -> None:
    policies = write_policies(tmp_path / "policies", fake_server[1].url, share=0.0)
    keys = frozenset({digest_key("sk-maker"), digest_key("sk-other")})
    server = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var",
                                              api_key_digests=keys))).start()
    maker, other = ({"authorization": f"Bearer {key}"} for key in ("sk-maker", "sk-other"))
    try:
        served = chat(server, "ab", headers=maker, user="keyed", expect=200)
        assert _unknown(give_feedback(server.url, served, token=False, headers=other, success=True))
        assert give_feedback(server.url, served, token=False, headers=maker, success=True).status_code == 200
        # A token the response gave works from any key: e.g. a service collecting its users' ratings.
        assert give_feedback(server.url, served, headers=other, success=False, replace=True).status_code == 200
        report = httpx.get(server.url + "/v1/experiments/ft-rollout", headers=maker).json()
        assert [(v["n"], v["n_feedback"]) for v in report["variants"] if v["n"]] == [(1, 1)]
    finally:
        server.stop()


PROMPT_VARIANT = """
version: 1
routes:
{routes}
experiments:
{experiments}
"""


def test_a_prompt_variant_rewrites_only_the_routes_default_arm(
        tmp_path: Path, fake_server: tuple[FakeUpstream, ServerThread], fake: FakeUpstream) -> None:
    """The schema's "prompt variant of the route's default arm": when the classifier picks the fine-tuned arm,
    its own short prompt goes upstream, not the variant's (which would cost the tokens the fine-tune saves)."""
    routes, experiments = [], []
    for name, threshold in (("to-ft", 1.0), ("to-prompted", 0.0)):  # the fast model scores in [0, 1)
        routes.append(f"""  {name}:
    classifier: {{model: fast, threshold: {threshold}}}
    arms:
      prompted: {{target: big, system_prompt: The long prompted prompt.}}
      fine_tuned: {{target: small, system_prompt: Short.}}""")
        experiments.append(f"""  tone-{name}:
    route: {name}
    allow_override: true
    variants:
      control: {{weight: 50}}
      concise: {{weight: 50, system_prompt: The variant's prompt.}}""")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "base.yaml").write_text(POLICY.format(url=fake_server[1].url))
    (policies / "tone.yaml").write_text(PROMPT_VARIANT.format(routes="\n".join(routes),
                                                              experiments="\n".join(experiments)))
    server = ServerThread(create_app(Settings(policies_dir=policies, data_dir=tmp_path / "var"))).start()
    try:
        seen: dict[str, tuple[str, str]] = {}
        for route in ("to-ft", "to-prompted"):
            reply = chat(server, route, headers={"x-gateway-variant": "concise"}, expect=200)
            assert reply.headers["x-gateway-variant"] == "concise"
            seen[route] = (reply.headers["x-gateway-arm"], fake.received[-1]["messages"][0]["content"])
    finally:
        server.stop()
    assert seen == {"to-ft": ("fine_tuned", "Short."), "to-prompted": ("prompted", "The variant's prompt.")}
