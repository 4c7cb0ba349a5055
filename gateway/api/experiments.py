"""POST /v1/feedback and GET /v1/experiments/{name}: close the A/B loop.

Feedback is joined to the request's recorded outcome (and so to its variant)
by request id; the report compares each variant with the first (control).
"""

from __future__ import annotations

import time

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.errors import GatewayError, NotFound, ServiceUnavailable, error_response
from gateway.experiments import observations
from gateway.intake import authenticate, read_json, validate
from policies import Experiment, Feedback, OutcomeStore, OutcomesUnavailable, report

_COMMENT_LIMIT = 2000


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=128)
    score: float | None = Field(default=None, ge=-1e6, le=1e6)
    success: bool | None = None
    comment: str | None = Field(default=None, max_length=_COMMENT_LIMIT)

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.score is None and self.success is None:
            raise ValueError("give a numeric 'score' or a boolean 'success'")
        return self


def _json(data: object) -> Response:
    return Response(orjson.dumps(data), media_type="application/json")


async def experiment_report(store: OutcomeStore, name: str, experiment: Experiment) -> dict[str, object]:
    """The report of ``name`` from the recorded outcomes and their feedback, as JSON."""
    result = report(list(experiment.variants), await observations(store, name)).as_dict()
    return {"experiment": name, "route": experiment.route, **result}


async def feedback(request: Request) -> Response:
    gateway = state_of(request)
    try:
        authenticate(request, gateway.settings)
        given = validate(FeedbackRequest, await read_json(request, gateway.settings))
        try:
            outcome = await gateway.outcomes.store.add_feedback(Feedback(
                request_id=given.request_id, score=given.score, success=given.success, comment=given.comment,
                at=time.time()))
        except OutcomesUnavailable as exc:
            # Redis is down and this replica never saw the request: not unknown, just unreachable now.
            raise ServiceUnavailable("Feedback cannot be joined to its request while shared state is down.",
                                     headers={"retry-after": "5"}) from exc
        if outcome is None:
            raise NotFound(f"No experiment request with id '{given.request_id}' is on record.", param="request_id")
        return _json({"ok": True, "request_id": given.request_id, "experiment": outcome.experiment,
                      "variant": outcome.variant})
    except GatewayError as exc:
        return error_response(exc)


async def experiment(request: Request) -> Response:
    gateway = state_of(request)
    name = request.path_params["name"]
    try:
        authenticate(request, gateway.settings)
        found = gateway.policies.current.experiments.get(name)
        if found is None:
            raise NotFound(f"No experiment named '{name}' in the running policies.")
        return _json(await experiment_report(gateway.outcomes.store, name, found))
    except GatewayError as exc:
        return error_response(exc)


routes = [
    Route("/v1/feedback", feedback, methods=["POST"]),
    Route("/v1/experiments/{name}", experiment, methods=["GET"]),
]
