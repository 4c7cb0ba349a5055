"""POST /v1/feedback and GET /v1/experiments/{name}: close the A/B loop, and judge captured requests.

Feedback is joined to the request's recorded outcome (and so to its variant),
and to its capture when its route captured it (``gateway.capture``, where a
request outside any experiment can be judged too), by the gateway's request id (``x-gateway-request-id``), and only from the key
that made the request or with the feedback token its response carried
(``x-gateway-feedback-token``); anyone else gets the 404 of an unknown id, so an
id's existence is not revealed either. The report compares each variant with
the first (control). A score must lie on its experiment's declared scale
(``feedback: {min, max}``), and a request takes one feedback: a second is
refused with 409 unless it says ``"replace": true``, so neither a stray value
nor a retry moves a mean unseen.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import state_of
from gateway.capture import CaptureFeedback, CaptureStore, CaptureStoreError, Judged, Judges, judge
from gateway.errors import (
    ClientError,
    InvalidRequest,
    NotFound,
    ServiceUnavailable,
    json_response,
)
from gateway.pipeline.experiments import observations
from gateway.pipeline.intake import authenticate, read_json, validate
from gateway.state import GatewayState
from policies import (
    Experiment,
    Feedback,
    FeedbackExists,
    FeedbackScale,
    Outcome,
    OutcomeStore,
    OutcomesUnavailable,
    PolicySet,
    report,
)

log = logging.getLogger("hybrid_gateway.feedback")
_COMMENT_LIMIT = 2000


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=128,
                            description="The gateway's id of the request: its x-gateway-request-id header.")
    feedback_token: str | None = Field(
        default=None, max_length=128, description="The request's x-gateway-feedback-token header: needed when the "
        "feedback does not come with the API key that made the request (always, when keys are off).")
    score: float | None = Field(default=None, allow_inf_nan=False)  # its range is the experiment's scale
    success: bool | None = None
    comment: str | None = Field(default=None, max_length=_COMMENT_LIMIT)
    replace: bool = Field(default=False, description="Replace the request's earlier feedback instead of a 409.")

    @model_validator(mode="after")
    def _something(self) -> FeedbackRequest:
        if self.score is None and self.success is None:
            raise ValueError("give a numeric 'score' or a boolean 'success'")
        return self



async def experiment_report(store: OutcomeStore, name: str, experiment: Experiment) -> dict[str, object]:
    """The report of ``name`` from the recorded outcomes and their feedback, as JSON."""
    result = report(list(experiment.variants), await observations(store, name)).as_dict()
    return {"experiment": name, "route": experiment.route, **result}


def _check_scale(score: float | None, experiment: str, policy: PolicySet) -> None:
    """400 for a score off the experiment's scale (the default scale if it left the policies since)."""
    found = policy.experiments.get(experiment)
    scale = found.feedback if found is not None else FeedbackScale()
    if score is not None and not scale.min <= score <= scale.max:
        raise InvalidRequest(f"score {score:g} is off the scale of experiment '{experiment}': give a number between "
                             f"{scale.min:g} and {scale.max:g} (its policy's feedback: {{min, max}}).", param="score")


def _exists(request_id: str) -> ClientError:
    return ClientError(f"Request '{request_id}' already has feedback; send \"replace\": true to replace it.",
                       param="request_id", code="feedback_exists", status=409)


def _count(gateway: GatewayState, given: FeedbackRequest, route: str, arm: str) -> None:
    """Per-arm quality over time: what the retraining alert compares (docs/monitoring.md)."""
    if given.score is not None:
        gateway.metrics.feedback_score.labels(route, arm).observe(given.score)
    if given.success is not None:
        gateway.metrics.feedback_success.labels(route, arm, "true" if given.success else "false").inc()


async def _judge_capture(gateway: GatewayState, given: FeedbackRequest, owner: str | None, at: float, *,
                         replace: bool) -> tuple[Judged, Judges | None]:
    """The feedback joined to the request's capture, in a worker thread (the database may be slow)."""
    settings = gateway.settings

    def scale(route: str) -> FeedbackScale:
        found = gateway.policies.current.routes.get(route)
        capture = found.capture if found is not None else None
        return capture.feedback if capture is not None and capture.feedback is not None else FeedbackScale()

    judged = CaptureFeedback(given.request_id, given.score, given.success, given.comment, at)
    return await asyncio.to_thread(judge, lambda: CaptureStore.open(settings.database_url, settings.data_dir),
                                   scale, judged, owner, given.feedback_token, replace=replace)


async def _experiment_feedback(gateway: GatewayState, given: FeedbackRequest, owner: str | None,
                               outcome: Outcome, at: float) -> Response:
    _check_scale(given.score, outcome.experiment, gateway.policies.current)
    try:
        await gateway.outcomes.store.add_feedback(Feedback(request_id=given.request_id, score=given.score,
                                                           success=given.success, comment=given.comment, at=at),
                                                  replace=given.replace)
    except FeedbackExists as exc:
        raise _exists(given.request_id) from exc
    _count(gateway, given, outcome.route, outcome.arm)
    try:  # the same judgement on its capture, if the route captured it: the experiment's answer stands either way
        await _judge_capture(gateway, given, owner, at, replace=True)
    except CaptureStoreError as exc:
        log.warning("feedback on %s not joined to its capture: %s", given.request_id, exc)
    return json_response({"ok": True, "request_id": given.request_id, "experiment": outcome.experiment,
                          "variant": outcome.variant})


async def feedback(request: Request) -> Response:
    gateway = state_of(request)
    owner = authenticate(request, gateway.settings)
    given = validate(FeedbackRequest, await read_json(request, gateway.settings))
    at = time.time()
    outcomes_down: OutcomesUnavailable | None = None
    try:
        outcome = await gateway.outcomes.store.outcome(given.request_id)
    except OutcomesUnavailable as exc:
        outcome, outcomes_down = None, exc
    if outcome is not None and outcome.answers_to(owner, given.feedback_token):
        return await _experiment_feedback(gateway, given, owner, outcome, at)
    try:
        judged, judges = await _judge_capture(gateway, given, owner, at, replace=given.replace)
    except CaptureStoreError as exc:
        raise ServiceUnavailable("Feedback cannot be joined to its captured request while the capture store is "
                                 "unavailable.", headers={"retry-after": "5"}) from exc
    if judges is not None:
        _count(gateway, given, judges.route, judges.arm)
    if judged is Judged.STORED:
        return json_response({"ok": True, "request_id": given.request_id, "captured": True})
    if judged is Judged.EXISTS:
        raise _exists(given.request_id)
    if judged is Judged.OFF_SCALE:
        raise InvalidRequest(f"score {given.score:g} is off the scale of the request's route: see its policy's "
                             "capture.feedback: {min, max} (default 0 to 1).", param="score")
    if outcomes_down is not None:
        # Redis is down and this replica never saw the request: not unknown, just unreachable now.
        raise ServiceUnavailable("Feedback cannot be joined to its request while shared state is down.",
                                 headers={"retry-after": "5"}) from outcomes_down
    raise NotFound(f"No experiment or captured request with id '{given.request_id}' made with this API key or "
                   "feedback token is on record.", param="request_id")


async def experiment(request: Request) -> Response:
    gateway = state_of(request)
    name = request.path_params["name"]
    authenticate(request, gateway.settings)
    found = gateway.policies.current.experiments.get(name)
    if found is None:
        raise NotFound(f"No experiment named '{name}' in the running policies.")
    return json_response(await experiment_report(gateway.outcomes.store, name, found))


endpoints = [
    Route("/v1/feedback", feedback, methods=["POST"]),
    Route("/v1/experiments/{name}", experiment, methods=["GET"]),
]
