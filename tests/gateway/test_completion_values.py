"""The request's stage values stay values: frozen, equal by content, copied by ``dataclasses.replace``.

They write their fields in one ``__dict__`` assignment rather than the generated per-field ``__init__``
(``gateway.accounting.completion``); these tests hold what that must not change."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.accounting.completion import Arrival, Completion, Delivery, Routing, finish
from gateway.accounting.usage import Usage
from gateway.errors import UpstreamTimeout
from gateway.pipeline.attempts import Answered, Effort, Exhausted
from gateway.pipeline.plan import Plan
from policies import Price, Target

TARGET = Target(provider="vllm", model="m", price=Price(input_per_million=1, output_per_million=2))
PLAN = Plan("chat", "prompted", "big", TARGET, {"model": "m", "messages": []}, False, False, deadline_s=5.0)


def _values() -> list[object]:
    arrival = Arrival("req-1", "chat", "client-1", 1.0, "team")
    routing = Routing("chat", "prompted", "big", True, 0.25, "exp", "b", True, "token")
    delivery = Delivery(2, "big>small:timeout", 0.5, "hit", 0.01, "doc.md")
    effort = Effort(2, ("big>small:timeout",), 0.5)
    return [arrival, routing, delivery, finish(arrival, routing, delivery, target=TARGET, usage=Usage(3, 4)),
            effort, Answered(PLAN, "reply", effort), Exhausted(PLAN, UpstreamTimeout("late"), effort), PLAN]


@pytest.mark.parametrize("value", _values(), ids=lambda value: type(value).__name__)
def test_fields_cannot_be_assigned_or_deleted(value: object) -> None:
    name = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        delattr(value, name)


@pytest.mark.parametrize("value", _values(), ids=lambda value: type(value).__name__)
def test_replace_copies_every_field_and_changes_only_the_one_named(value: object) -> None:
    first = dataclasses.fields(value)[0].name  # type: ignore[arg-type]
    same = dataclasses.replace(value, **{first: getattr(value, first)})  # type: ignore[type-var]
    assert same == value and same is not value
    changed = dataclasses.replace(value, **{first: "other"})  # type: ignore[type-var]
    assert getattr(changed, first) == "other"
    assert all(getattr(changed, f.name) == getattr(value, f.name)
               for f in dataclasses.fields(value)[1:])  # type: ignore[arg-type]


def test_constructors_keep_their_defaults_and_keywords() -> None:
    assert Routing() == Routing(route="", arm="", target="", stream=False, score=None, experiment="",
                                variant="none", keyed=False, feedback_token=None)
    assert Delivery() == Delivery(attempts=0, fallback="", upstream_s=0.0, rag=None, rag_s=0.0, sources="")
    assert Routing(route="chat").labels() == ("chat", "none", "none", "none")
    done = Completion(Arrival("r", "chat", started=2.0), Routing(), Delivery(), 200, None, None, None, 1.0, None)
    assert done.exchange is None and done.arrival.started == 2.0 and done.overhead_s == 1.0


def test_a_plan_keeps_its_defaults_and_grounding_makes_a_new_one() -> None:
    assert PLAN.fallback_on == frozenset() and PLAN.knowledge is None and not PLAN.grounded
    grounded = PLAN.with_messages([{"role": "user", "content": "hi"}])
    assert grounded.grounded and grounded.messages == [{"role": "user", "content": "hi"}] and PLAN.messages == []


def test_an_arrival_reads_the_clock_unless_given_a_start() -> None:
    assert Arrival("r", "chat", started=5.0).started == 5.0
    assert Arrival("r", "chat").elapsed() >= 0.0


def test_an_arrival_is_itself_when_its_owner_does_not_change() -> None:
    arrival = Arrival("r", "chat")
    assert arrival.owned_by(None) is arrival
    owned = arrival.owned_by("team")
    assert owned.owner == "team" and owned.started == arrival.started and owned.request_id == "r"
    assert arrival.owner is None  # the first value is untouched


def test_a_streams_delivery_grows_by_its_reads_only() -> None:
    delivery = Delivery(2, "a>b:timeout", 0.5, "hit", 0.01, "doc.md")
    longer = delivery.read_longer(0.25)
    assert longer == dataclasses.replace(delivery, upstream_s=0.75) and delivery.upstream_s == 0.5
