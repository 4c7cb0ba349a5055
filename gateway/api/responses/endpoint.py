"""POST /v1/responses: the Responses API, served by the chat pipeline through the route's chosen arm.

The request is checked and translated into a chat completion body (``request``), which
``gateway.api.chat.serve_chat`` serves exactly as a ``/v1/chat/completions`` body: route, arm,
experiments, grounding, attempts, fallbacks, cascade, and the one ``Completion`` in the ledger. Its
answer is then translated back: a JSON reply into a response object (``reply``), a stream into the
Responses events (``events``); an error, already in OpenAI's envelope, passes unchanged. A request
refused before the chat pipeline is accounted here, once, like chat's own refusals.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.accounting.completion import Arrival
from gateway.api.chat import serve_chat
from gateway.api.common import failure, state_of
from gateway.api.event_stream import EventStream
from gateway.api.responses.events import ResponseEvents
from gateway.api.responses.protocol import CreateResponse
from gateway.api.responses.reply import Frame, from_completion, loads_object
from gateway.api.responses.request import chat_request
from gateway.errors import json_response
from gateway.pipeline.intake import client_request_id, identify, new_request_id, read_json, validate

_REWRITTEN = frozenset({"content-length", "content-type"})
"""Headers of the chat answer that describe its body, which the translation replaces."""


async def create_response(request: Request) -> Response:
    gateway = state_of(request)
    arrival = Arrival(new_request_id(), "responses", client_request_id(request))
    try:
        caller = identify(request, gateway.settings)
        arrival = arrival.owned_by(caller.owner, caller.name)
        body = await read_json(request, gateway.settings)
        asked = validate(CreateResponse, body)
        chat = chat_request(asked)
    except Exception as exc:  # the one boundary where every failure becomes an OpenAI error
        return failure(gateway, arrival, exc)
    frame = Frame.of(asked, chat)
    answer = await serve_chat(request, gateway, arrival, caller, chat)
    if answer.status_code != 200:
        return answer
    if isinstance(answer, EventStream):
        return answer.through(ResponseEvents(frame).rewrite)
    headers = {name: value for name, value in answer.headers.items() if name not in _REWRITTEN}
    return json_response(from_completion(frame, loads_object(bytes(answer.body))), headers=headers)


endpoints = [
    Route("/v1/responses", create_response, methods=["POST"]),
]
