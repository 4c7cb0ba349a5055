"""``strategy: cascade`` over real HTTP: the fine-tuned answer is judged, and escalated only when rejected.

The upstream's call log proves who was called; the bill is checked three ways (the cost header, the
``x-gateway-calls`` list, the Prometheus counters), since a cascade pays for answers it does not return.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import BIG_MODEL, GatewayFactory
from tests.support.chat import chat
from tests.support.fake_upstream import Action, FakeUpstream
from tests.support.ledger import cost_of
from tests.support.metrics import scrape
from tests.support.servers import ServerThread
from tests.support.strategies import JUDGE, TARGETS, TUNED, calls_of, price

CASCADE = TARGETS + """
  cascading:
    default_arm: fine_tuned
    strategy: cascade
    acceptors:
      reject: ["i'?m not sure", "i don't know"]
      require: ["[a-z]"]
      min_chars: 5
      max_chars: 200
      min_mean_logprob: -1.0
    arms:
      prompted: {{target: big, system_prompt: Be thorough.}}
      fine_tuned: {{target: tuned, system_prompt: Be brief.}}
  judged:
    default_arm: fine_tuned
    strategy: cascade
    stream: passthrough-no-cascade
    acceptors:
      reject: ["i'?m not sure"]
      judge: {{target: judge, question: "Is this a complete answer?"}}
    arms:
      prompted: {{target: big}}
      fine_tuned: {{target: tuned}}
    economics: {{upfront_usd: 1.0, projected_monthly_queries: 1000}}
  token-checked:
    default_arm: fine_tuned
    strategy: cascade
    acceptors: {{min_token_logprob: -3.0}}
    arms:
      prompted: {{target: big}}
      fine_tuned: {{target: tuned}}
"""
GOOD = "Refunds take five days."
BIG_ANSWER = Action().text  # the fake's default answer, which the prompted arm gives


BIG_COST = price("big", BIG_ANSWER)


def tuned_cost(text: str) -> float:
    return price("tuned", text)


def judge_cost(verdict: str) -> float:
    return price("judge", verdict)


@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake_server: tuple[FakeUpstream, ServerThread],
            fake: FakeUpstream) -> ServerThread:
    (policy_dir / "cascade.yaml").write_text(CASCADE.format(url=fake_server[1].url))
    return start_gateway()


def streamed_calls(response: httpx.Response) -> str:
    found = re.search(rb"^: x-gateway-calls=(.+)$", response.content, re.MULTILINE)
    assert found is not None, response.text
    return found.group(1).decode()


def streamed_text(response: httpx.Response) -> str:
    chunks = [orjson.loads(line[6:]) for line in response.text.splitlines()
              if line.startswith("data: {")]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def billed(server: ServerThread, **labels: str) -> float:
    return scrape(server.url, "gateway_cost_usd_total", **labels)


def test_an_accepted_answer_is_the_fine_tuned_arms_alone(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text=GOOD))
    response = chat(gateway, "cascading", expect=200)
    assert fake.models_called() == [TUNED]
    assert response.headers["x-gateway-arm"] == "fine_tuned"
    assert response.headers["x-gateway-cascade"] == "accepted"
    assert "x-gateway-cascade-rejected" not in response.headers
    # The gateway asked for logprobs (an acceptor reads them); the client, who did not, gets none.
    assert fake.received[0]["logprobs"] is True
    assert "logprobs" not in response.json()["choices"][0]
    assert response.json()["choices"][0]["message"]["content"] == GOOD
    assert cost_of(response) == pytest.approx(tuned_cost(GOOD))
    assert calls_of(response.headers["x-gateway-calls"]) == [("fine_tuned", "tuned", pytest.approx(tuned_cost(GOOD)))]
    assert billed(gateway) == pytest.approx(cost_of(response))
    assert scrape(gateway.url, "gateway_cascade_total", route="cascading", outcome="accepted") == 1


@pytest.mark.parametrize(("answer", "acceptor", "extra"), [
    (Action(text="I'm not sure, please ask support."), "reject", {}),
    (Action(text="1234 5678"), "require", {}),
    (Action(text="Yes."), "min_chars", {}),
    (Action(text=" ".join(["word"] * 60)), "max_chars", {}),
    (Action(text=GOOD, logprob=-2.5), "mean_logprob", {}),
    (Action(text=GOOD), "json", {"response_format": {"type": "json_object"}}),
    (Action(text='{"days": "five"}'), "json", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "refund", "schema": {"type": "object", "properties": {"days": {"type": "integer"}},
                                     "required": ["days"]}}}}),
])
def test_each_acceptor_escalates_to_the_prompted_arm(gateway: ServerThread, fake: FakeUpstream, answer: Action,
                                                     acceptor: str, extra: dict[str, Any]) -> None:
    fake.script_for(TUNED, answer)
    fake.script_for(BIG_MODEL, Action())
    response = chat(gateway, "cascading", expect=200, **extra)
    assert fake.models_called() == [TUNED, BIG_MODEL]
    assert response.headers["x-gateway-cascade"] == "escalated"
    assert response.headers["x-gateway-cascade-rejected"] == acceptor
    assert (response.headers["x-gateway-arm"], response.headers["x-gateway-target"]) == ("prompted", "big")
    assert response.json()["choices"][0]["message"]["content"] == BIG_ANSWER
    # Each arm is called with its own prompt.
    assert fake.received[0]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert fake.received[1]["messages"][0] == {"role": "system", "content": "Be thorough."}
    assert "logprobs" not in fake.received[1]
    # Both answers were paid for: listed, summed into the header, each counted once under its own arm.
    rejected = tuned_cost(answer.text)
    assert calls_of(response.headers["x-gateway-calls"]) == [
        ("fine_tuned", "tuned", pytest.approx(rejected)), ("prompted", "big", pytest.approx(BIG_COST))]
    assert cost_of(response) == pytest.approx(rejected + BIG_COST)
    assert billed(gateway, arm="fine_tuned", target="tuned") == pytest.approx(rejected)
    assert billed(gateway, arm="prompted", target="big") == pytest.approx(BIG_COST)
    assert scrape(gateway.url, "gateway_requests_total") == 1
    assert scrape(gateway.url, "gateway_tokens_total", arm="fine_tuned", direction="input") == 11
    assert scrape(gateway.url, "gateway_cascade_rejections_total", route="cascading", acceptor=acceptor) == 1
    assert scrape(gateway.url, "gateway_cascade_total", route="cascading", outcome="escalated") == 1


def test_a_failed_fine_tuned_call_escalates_and_is_not_billed(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(status=500))
    fake.script_for(BIG_MODEL, Action())
    response = chat(gateway, "cascading", expect=200)
    assert fake.models_called() == [TUNED, BIG_MODEL]
    assert response.headers["x-gateway-cascade-rejected"] == "error"
    assert response.headers["x-gateway-attempts"] == "2"
    assert calls_of(response.headers["x-gateway-calls"]) == [("prompted", "big", pytest.approx(BIG_COST))]
    assert cost_of(response) == pytest.approx(BIG_COST) == pytest.approx(billed(gateway))


def test_a_rejected_answer_is_kept_when_the_prompted_arm_fails(gateway: ServerThread, fake: FakeUpstream) -> None:
    hedge = "I'm not sure, please ask support."
    fake.script_for(TUNED, Action(text=hedge))
    fake.script_for(BIG_MODEL, Action(status=500))
    response = chat(gateway, "cascading", expect=200)
    assert response.headers["x-gateway-cascade"] == "kept"
    assert response.headers["x-gateway-arm"] == "fine_tuned"
    assert response.json()["choices"][0]["message"]["content"] == hedge
    assert cost_of(response) == pytest.approx(tuned_cost(hedge)) == pytest.approx(billed(gateway))


def test_both_arms_failing_is_an_error(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(status=500))
    fake.script_for(BIG_MODEL, Action(status=502))
    response = chat(gateway, "cascading", expect=502)
    assert response.json()["error"]["code"] == "upstream_error"
    assert scrape(gateway.url, "gateway_cascade_total", route="cascading", outcome="failed") == 1
    assert billed(gateway) == 0


def test_a_stream_is_judged_whole_then_replayed(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text=GOOD))
    response = chat(gateway, "cascading", expect=200, stream=True)
    assert response.headers["x-gateway-cascade"] == "accepted"
    assert streamed_text(response).strip() == GOOD
    assert b'"logprobs"' not in response.content  # asked by the gateway, not by the client
    assert cost_of(response) == pytest.approx(tuned_cost(GOOD)) == pytest.approx(billed(gateway))
    assert calls_of(streamed_calls(response)) == [("fine_tuned", "tuned", pytest.approx(tuned_cost(GOOD)))]


def test_a_rejected_stream_never_reaches_the_client(gateway: ServerThread, fake: FakeUpstream) -> None:
    hedge = "I don't know that one."
    fake.script_for(TUNED, Action(text=hedge))
    fake.script_for(BIG_MODEL, Action())
    response = chat(gateway, "cascading", expect=200, stream=True)
    assert response.headers["x-gateway-cascade"] == "escalated"
    assert streamed_text(response).strip() == BIG_ANSWER
    assert "know" not in response.text
    assert calls_of(streamed_calls(response)) == [
        ("fine_tuned", "tuned", pytest.approx(tuned_cost(hedge))), ("prompted", "big", pytest.approx(BIG_COST))]
    assert cost_of(response) == pytest.approx(tuned_cost(hedge) + BIG_COST) == pytest.approx(billed(gateway))


def test_a_client_asking_for_logprobs_keeps_them(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text=GOOD))
    response = chat(gateway, "cascading", expect=200, logprobs=True)
    assert response.json()["choices"][0]["logprobs"]["content"][0]["logprob"] == pytest.approx(-0.05)


def test_a_fine_tuned_stream_that_breaks_while_buffered_escalates(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text="Refunds take five working days.", break_after_chunks=2))
    fake.script_for(BIG_MODEL, Action())
    response = chat(gateway, "cascading", expect=200, stream=True)
    assert (response.headers["x-gateway-cascade"], response.headers["x-gateway-cascade-rejected"]) == (
        "escalated", "error")
    assert streamed_text(response).strip() == BIG_ANSWER  # nothing of the broken stream reached the client
    assert cost_of(response) == pytest.approx(BIG_COST) == pytest.approx(billed(gateway))


def test_a_judge_asked_last_accepts_and_is_paid_for(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text=GOOD))
    fake.script_for(JUDGE, Action(text="Yes."))
    response = chat(gateway, "judged", "How long do refunds take?", expect=200)
    assert fake.models_called() == [TUNED, JUDGE]
    assert response.headers["x-gateway-cascade"] == "accepted"
    # The judge reads the route's question, the client's request and the answer, and may say little.
    asked = fake.received[1]
    prompt = asked["messages"][-1]["content"]
    assert "Is this a complete answer?" in prompt and "How long do refunds take?" in prompt and GOOD in prompt
    assert (asked["temperature"], asked["max_tokens"]) == (0, 8)
    paid = [pytest.approx(tuned_cost(GOOD)), pytest.approx(judge_cost("Yes."))]
    assert calls_of(response.headers["x-gateway-calls"]) == [("judge", "judge", paid[1]), ("fine_tuned", "tuned", paid[0])]
    assert cost_of(response) == pytest.approx(tuned_cost(GOOD) + judge_cost("Yes."))
    assert billed(gateway, arm="judge") == pytest.approx(judge_cost("Yes."))
    assert billed(gateway) == pytest.approx(cost_of(response))


@pytest.mark.parametrize(("verdict", "rejected", "judge_paid"), [
    (Action(text="No"), "judge", True),
    (Action(text="Perhaps"), "judge", True),  # neither yes nor no: on_error (reject) decides
    (Action(status=500), "judge_error", False),
])
def test_a_judge_that_says_no_or_fails_escalates(gateway: ServerThread, fake: FakeUpstream, verdict: Action,
                                                  rejected: str, judge_paid: bool) -> None:
    fake.script_for(TUNED, Action(text=GOOD))
    fake.script_for(JUDGE, verdict)  # one call: a judge is not retried, its verdict would come too late
    fake.script_for(BIG_MODEL, Action())
    response = chat(gateway, "judged", expect=200)
    assert response.headers["x-gateway-cascade"] == "escalated"
    assert response.headers["x-gateway-cascade-rejected"] == rejected
    judging = [("judge", "judge", pytest.approx(judge_cost(verdict.text)))] if judge_paid else []
    assert calls_of(response.headers["x-gateway-calls"]) == [
        ("fine_tuned", "tuned", pytest.approx(tuned_cost(GOOD))), *judging, ("prompted", "big", pytest.approx(BIG_COST))]
    assert billed(gateway) == pytest.approx(cost_of(response))


def test_the_judge_is_not_asked_about_an_answer_already_rejected(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text="I'm not sure."))
    fake.script_for(BIG_MODEL, Action())
    response = chat(gateway, "judged", expect=200)
    assert fake.models_called() == [TUNED, BIG_MODEL]
    assert response.headers["x-gateway-cascade-rejected"] == "reject"


def test_a_passthrough_route_streams_without_cascading(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text="I'm not sure."))
    response = chat(gateway, "judged", expect=200, stream=True)
    assert fake.models_called() == [TUNED]  # no judge, no escalation: the stream went straight through
    assert "x-gateway-cascade" not in response.headers
    assert streamed_text(response).strip() == "I'm not sure."


def test_the_economics_view_prices_the_cascade_beside_routing_and_prompting(gateway: ServerThread,
                                                                             fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text=GOOD), Action(text="I'm not sure."))
    fake.script_for(JUDGE, Action(text="yes"))
    fake.script_for(BIG_MODEL, Action())
    costs = [cost_of(chat(gateway, "judged", expect=200)) for _ in range(2)]
    entry = next(e for e in httpx.get(gateway.url + "/v1/economics").json()["routes"] if e["route"] == "judged")
    # As served: both requests' bills. Routing alone: the fine-tuned answers only, the rejected one included.
    # Prompting alone is the prompted arm's cost per query it served: here the escalated request.
    assert entry["actual_cost_per_query_usd"] == pytest.approx(sum(costs) / 2)
    assert entry["routing_only_cost_per_query_usd"] == pytest.approx((tuned_cost(GOOD) + tuned_cost("I'm not sure.")) / 2)
    assert (entry["prompted_requests"], entry["prompted_cost_usd"]) == (1, pytest.approx(BIG_COST))


def test_one_unlikely_token_escalates_on_min_token_logprob(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text=GOOD, logprob=-2.0), Action(text=GOOD, logprob=-4.0))
    fake.script_for(BIG_MODEL, Action())
    accepted, rejected = (chat(gateway, "token-checked", expect=200) for _ in range(2))
    assert accepted.headers["x-gateway-cascade"] == "accepted"
    assert (rejected.headers["x-gateway-cascade"], rejected.headers["x-gateway-cascade-rejected"]) == (
        "escalated", "min_logprob")
    assert fake.models_called() == [TUNED, TUNED, BIG_MODEL]
