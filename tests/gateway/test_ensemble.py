"""``strategy: ensemble`` over real HTTP: both arms answer, a selector picks, every call is billed once.

The upstream's call log proves who was called; the bill is checked against the ``x-gateway-calls`` list,
the cost header and the Prometheus counters, since an ensemble pays for answers it does not return.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

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

ENSEMBLES = TARGETS + """
  voting:
    strategy: ensemble
    ensemble: {{selector: vote, samples: 2}}
    arms: {{prompted: {{target: big}}, fine_tuned: {{target: tuned}}}}
  judging:
    strategy: ensemble
    ensemble: {{selector: judge, judge: {{target: judge}}}}
    arms: {{prompted: {{target: big}}, fine_tuned: {{target: tuned}}}}
  quickest:
    strategy: ensemble
    default_arm: fine_tuned
    ensemble: {{selector: first_accepted, patience_s: 0.3}}
    acceptors: {{reject: ["not sure"]}}
    arms: {{prompted: {{target: big}}, fine_tuned: {{target: tuned}}}}
  escalating:
    default_arm: fine_tuned
    strategy: cascade
    acceptors: {{reject: ["fake upstream"]}}
    arms: {{prompted: {{target: big}}, fine_tuned: {{target: tuned}}}}
"""
@pytest.fixture
def gateway(start_gateway: GatewayFactory, policy_dir: Path, fake_server: tuple[FakeUpstream, ServerThread],
            fake: FakeUpstream) -> ServerThread:
    (policy_dir / "ensembles.yaml").write_text(ENSEMBLES.format(url=fake_server[1].url))
    return start_gateway()


def detail(response: httpx.Response) -> dict[str, str]:
    return dict(item.split("=", 1) for item in response.headers["x-gateway-ensemble-detail"].split(";"))


def answer(response: httpx.Response) -> str:
    return str(response.json()["choices"][0]["message"]["content"])


def assert_billed_once(gateway: ServerThread, responses: list[httpx.Response]) -> None:
    """Each response's calls add up to its cost header, and the metrics hold exactly their sum."""
    for response in responses:
        assert sum(cost for _, _, cost in calls_of(response.headers["x-gateway-calls"])) == pytest.approx(
            cost_of(response))
    assert scrape(gateway.url, "gateway_cost_usd_total") == pytest.approx(sum(map(cost_of, responses)))


def test_voting_returns_the_answer_most_candidates_gave(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(text="Five days!"), Action(text="Ten days."))
    fake.script_for(TUNED, Action(text="five  days"), Action(text="Five days."))
    response = chat(gateway, "voting", expect=200)
    assert sorted(body["model"] for body in fake.received) == sorted([BIG_MODEL] * 2 + [TUNED] * 2)
    # Three of four agree after normalising; of those, the routed arm's (prompted) answer is returned.
    assert response.headers["x-gateway-ensemble"] == "prompted"
    assert answer(response) == "Five days!"
    assert detail(response) == {"selector": "vote", "agreeing": "3/4"}
    calls = calls_of(response.headers["x-gateway-calls"])
    assert sorted((arm, target) for arm, target, _ in calls) == [("fine_tuned", "tuned")] * 2 + [("prompted", "big")] * 2
    assert cost_of(response) == pytest.approx(price("big", "Five days!") + price("big", "Ten days.")
                                              + price("tuned", "five  days") + price("tuned", "Five days."))
    assert scrape(gateway.url, "gateway_ensemble_total", route="voting", outcome="prompted") == 1
    assert_billed_once(gateway, [response])


@pytest.mark.parametrize("verdict", ["1", "Answer 2 is better."])
def test_a_judge_picks_from_a_shuffled_order_it_records(gateway: ServerThread, fake: FakeUpstream,
                                                        verdict: str) -> None:
    fake.script_for(BIG_MODEL, Action(text="The long answer."))
    fake.script_for(TUNED, Action(text="Short."))
    fake.script_for(JUDGE, Action(text=verdict))
    response = chat(gateway, "judging", "Which is it?", expect=200)
    seen = detail(response)
    order = seen["order"].split(",")
    assert sorted(order) == ["fine_tuned", "prompted"]
    picked = int(seen["verdict"])
    assert picked == (1 if verdict == "1" else 2)
    assert response.headers["x-gateway-ensemble"] == order[picked - 1]
    texts = {"prompted": "The long answer.", "fine_tuned": "Short."}
    assert answer(response) == texts[order[picked - 1]]
    # The judge saw the request and both answers, numbered in the recorded order.
    prompt = next(body for body in fake.received if body["model"] == JUDGE)["messages"][-1]["content"]
    assert "Which is it?" in prompt
    assert prompt.index(f"Answer 1:\n{texts[order[0]]}") < prompt.index(f"Answer 2:\n{texts[order[1]]}")
    assert ("judge", "judge", pytest.approx(price("judge", verdict))) in calls_of(response.headers["x-gateway-calls"])
    assert_billed_once(gateway, [response])


def test_a_judge_that_names_no_candidate_leaves_the_routed_answer(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(text="The long answer."))
    fake.script_for(TUNED, Action(text="Short."))
    fake.script_for(JUDGE, Action(status=400))
    response = chat(gateway, "judging", expect=200)
    assert detail(response)["verdict"] == "none"
    assert (response.headers["x-gateway-ensemble"], answer(response)) == ("prompted", "The long answer.")
    assert [arm for arm, _, _ in calls_of(response.headers["x-gateway-calls"])] == ["fine_tuned", "prompted"]
    assert_billed_once(gateway, [response])


def test_a_failed_candidate_does_not_fail_the_request(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(status=400))
    fake.script_for(BIG_MODEL, Action(text="From the prompted arm."))
    response = chat(gateway, "quickest", expect=200)
    assert (response.headers["x-gateway-ensemble"], answer(response)) == ("prompted", "From the prompted arm.")
    assert calls_of(response.headers["x-gateway-calls"]) == [
        ("prompted", "big", pytest.approx(price("big", "From the prompted arm.")))]  # the failed call is not billed
    assert_billed_once(gateway, [response])


def test_a_late_candidate_is_cut_off_and_not_billed(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text="Quick and right."))
    fake.script_for(BIG_MODEL, Action(text="Slow.", delay_s=5))
    response = chat(gateway, "quickest", expect=200)
    assert (response.headers["x-gateway-ensemble"], answer(response)) == ("fine_tuned", "Quick and right.")
    assert detail(response) == {"selector": "first_accepted", "late": "1"}
    assert [arm for arm, _, _ in calls_of(response.headers["x-gateway-calls"])] == ["fine_tuned"]
    assert_billed_once(gateway, [response])


def test_candidates_the_acceptors_reject_are_passed_over(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(text="I'm not sure."))
    fake.script_for(BIG_MODEL, Action(text="Certainly five days.", delay_s=0.1))
    response = chat(gateway, "quickest", expect=200)
    assert (response.headers["x-gateway-ensemble"], answer(response)) == ("prompted", "Certainly five days.")
    assert detail(response) == {"selector": "first_accepted", "rejected": "1"}
    assert [arm for arm, _, _ in calls_of(response.headers["x-gateway-calls"])] == ["fine_tuned", "prompted"]
    assert_billed_once(gateway, [response])


def test_every_candidate_failing_is_an_error(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(TUNED, Action(status=400))
    fake.script_for(BIG_MODEL, Action(status=400))
    response = chat(gateway, "quickest")
    assert response.status_code == 400 and "error" in response.json()
    assert scrape(gateway.url, "gateway_ensemble_total", route="quickest", outcome="failed") == 1
    assert scrape(gateway.url, "gateway_cost_usd_total") == 0


def test_a_streamed_ensemble_replays_the_chosen_stream(gateway: ServerThread, fake: FakeUpstream) -> None:
    fake.script_for(BIG_MODEL, Action(text="Five days."), Action(text="Five days."))
    fake.script_for(TUNED, Action(text="Ten days."), Action(text="Ten days."))
    response = chat(gateway, "voting", expect=200, stream=True)
    assert response.headers["x-gateway-stream"] == "buffered"
    chunks = [orjson.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.strip() == "Five days."  # a 2-2 tie: the routed arm's
    calls = re.search(r"^: x-gateway-calls=(.+)$", response.text, re.MULTILINE)
    assert calls is not None
    assert sorted(arm for arm, _, _ in calls_of(calls.group(1))) == ["fine_tuned"] * 2 + ["prompted"] * 2
    cost = re.search(r"^: x-gateway-cost-usd=(.+)$", response.text, re.MULTILINE)
    assert cost is not None
    assert float(cost.group(1)) == pytest.approx(2 * price("big", "Five days.") + 2 * price("tuned", "Ten days."))
    assert scrape(gateway.url, "gateway_cost_usd_total") == pytest.approx(float(cost.group(1)))


def test_concurrent_strategies_bill_every_call_exactly_once(gateway: ServerThread, fake: FakeUpstream) -> None:
    """Forty requests at once, half ensembles with a judge, half cascades that escalate (the fake's default
    answer is what the cascade rejects): every request is counted once and the metrics hold the headers' sum."""

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            return list(await asyncio.gather(*(
                client.post("/v1/chat/completions", json={"model": route, "messages": [
                    {"role": "user", "content": f"question {index}"}]})
                for index in range(20) for route in ("judging", "escalating"))))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 40
    by_route = {route: [r for r in responses if r.headers["x-gateway-route"] == route]
                for route in ("judging", "escalating")}
    assert {route: len(found) for route, found in by_route.items()} == {"judging": 20, "escalating": 20}
    assert all(len(calls_of(r.headers["x-gateway-calls"])) == 3 for r in by_route["judging"])  # 2 arms, 1 judge
    assert all(r.headers["x-gateway-cascade"] == "escalated" for r in by_route["escalating"])
    assert len(fake.received) == 20 * 3 + 20 * 2
    for route in by_route:
        assert scrape(gateway.url, "gateway_requests_total", route=route) == 20
    assert scrape(gateway.url, "gateway_ensemble_total", route="judging") == 20
    assert_billed_once(gateway, responses)


def test_the_judge_sees_the_candidates_in_both_orders(gateway: ServerThread, fake: FakeUpstream) -> None:
    """Twenty requests: a fixed order would show one of the two every time (a shuffle does so with p = 2^-19)."""
    orders = {detail(chat(gateway, "judging", expect=200))["order"] for _ in range(20)}
    assert orders == {"prompted,fine_tuned", "fine_tuned,prompted"}
