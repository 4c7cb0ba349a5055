"""The HTTP contract as pydantic models: what ``/openapi.json`` documents, never what validates a request.

Requests are checked by :mod:`gateway.protocol` (only what the gateway relies
on, everything else passed through as sent) and by each endpoint's own models
(``FeedbackRequest``, the knowledge admin bodies); these models describe the
whole of each body for clients and for the schemathesis run in the tests, with
OpenAI's fields in the order of OpenAI's API reference. Response models allow
extra fields: completions and embeddings are the upstream's body passed
through, and an OpenAI-compatible upstream may add its own.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from policies import ArmName


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ----------------------------------------------------------------------------------------------------


class ErrorDetail(_Closed):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, "
                                  "rate_limit_error, timeout_error or server_error")
    param: str | None = Field(description="The offending request field or header, when one is to blame.")
    code: str | None = Field(description="Machine-readable reason, e.g. model_not_found (docs/api.md lists them).")


class ErrorResponse(_Closed):
    """OpenAI's error envelope: every error the gateway answers has this body."""

    error: ErrorDetail


# --- chat completions ------------------------------------------------------------------------------------------


class ChatCompletionMessageParam(_Open):
    role: Literal["developer", "system", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = Field(
        default=None, description="Text, or an array of content parts (text, image_url, input_audio, file).")
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(_Open):
    include_usage: bool = Field(default=False, description="Send a final chunk with the usage of the stream.")


class GatewayOptions(_Closed):
    """The gateway's own body field (``extra_body={"gateway": {...}}`` in the SDK); never sent upstream."""

    arm: ArmName | None = Field(
        default=None, description="Force an arm, on routes with allow_arm_override.")


class CreateChatCompletionRequest(_Open):
    """OpenAI's chat completion request; ``model`` is a route name or an exposed target."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "examples": [{"model": "support", "messages": [{"role": "user", "content": "Where is my parcel?"}]}]})
    messages: list[ChatCompletionMessageParam] = Field(min_length=1)
    model: str = Field(min_length=1)
    audio: dict[str, Any] | None = None
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    function_call: str | dict[str, Any] | None = None
    functions: list[dict[str, Any]] | None = None
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = None
    max_completion_tokens: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)
    metadata: dict[str, str] | None = None
    modalities: list[str] | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    parallel_tool_calls: bool | None = None
    prediction: dict[str, Any] | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    prompt_cache_key: str | None = None
    reasoning_effort: str | None = None
    response_format: dict[str, Any] | None = None
    safety_identifier: str | None = None
    seed: int | None = None
    service_tier: str | None = None
    stop: str | list[str] | None = None
    store: bool | None = None
    stream: bool | None = Field(default=False, description="Answer as text/event-stream chunks.")
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    tool_choice: str | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    verbosity: str | None = None
    web_search_options: dict[str, Any] | None = None
    gateway: GatewayOptions | None = None


class ChatCompletionMessage(_Open):
    content: str | None = None
    refusal: str | None = None
    role: Literal["assistant"]
    tool_calls: list[dict[str, Any]] | None = None


class ChatCompletionChoice(_Open):
    finish_reason: str | None = None
    index: int
    logprobs: dict[str, Any] | None = None
    message: ChatCompletionMessage


class CompletionUsage(_Open):
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int


class Source(_Open):
    source: str
    score: float | None = None


class GatewayReplyField(_Open):
    """Added to the upstream's body when retrieved context was used; OpenAI clients ignore it."""

    sources: list[Source]
    request_id: str | None = Field(default=None, description="The gateway's id of the request "
                                   "(x-gateway-request-id), which POST /v1/feedback names.")


class ChatCompletion(_Open):
    id: str
    choices: list[ChatCompletionChoice]
    created: int
    model: str
    object: Literal["chat.completion"]
    service_tier: str | None = None
    system_fingerprint: str | None = None
    usage: CompletionUsage | None = None
    gateway: GatewayReplyField | None = None


class ChatCompletionChunk(_Open):
    """One ``data:`` event of a stream; the stream ends with ``data: [DONE]`` (or an error event)."""

    id: str
    choices: list[dict[str, Any]]
    created: int
    model: str
    object: Literal["chat.completion.chunk"]
    usage: CompletionUsage | None = None


# --- responses -------------------------------------------------------------------------------------------------


class ResponseInputItem(_Open):
    """A message (``type`` may be left out), or a function call and its output sent back."""

    type: Literal["message", "function_call", "function_call_output"] | None = None
    role: Literal["user", "assistant", "system", "developer"] | None = Field(default=None, description="message")
    content: str | list[dict[str, Any]] | None = Field(
        default=None, description="message: text, or parts (input_text, output_text, refusal, input_image with "
                                  "image_url, input_file with file_data).")
    call_id: str | None = Field(default=None, description="function_call, function_call_output")
    name: str | None = Field(default=None, description="function_call")
    arguments: str | None = Field(default=None, description="function_call: JSON text")
    output: str | list[dict[str, Any]] | None = Field(default=None, description="function_call_output")


class ResponseFunctionTool(_Closed):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class CreateResponseRequest(_Closed):
    """OpenAI's Responses request, stateless; ``model`` is a route name or an exposed target. Fields the gateway
    cannot serve are listed as null only: any other value is refused with 400 unsupported_parameter."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"model": "support", "input": "Where is my parcel?"}]})
    background: Literal[False] | None = None
    conversation: None = Field(default=None, description="Refused: the gateway stores no conversations.")
    include: list[str] | None = Field(default=None, max_length=0, description="Refused unless empty.")
    input: str | list[ResponseInputItem]
    instructions: str | None = Field(default=None, description="A system message before input.")
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    model: str = Field(min_length=1)
    parallel_tool_calls: bool | None = None
    previous_response_id: None = Field(default=None, description="Refused: the gateway stores no responses; "
                                                                 "send the whole conversation in input.")
    prompt: None = None
    prompt_cache_key: str | None = None
    reasoning: dict[str, Any] | None = Field(default=None, description="effort only; a summary is refused.")
    safety_identifier: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    store: Literal[False] | None = Field(default=None, description="The gateway stores nothing: true is refused.")
    stream: bool | None = Field(default=False, description="Answer as text/event-stream events.")
    stream_options: dict[str, bool] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    text: dict[str, Any] | None = Field(default=None, description="format (text, json_object, json_schema) "
                                                                  "and verbosity.")
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    tools: list[ResponseFunctionTool] | None = Field(default=None, description="Function tools only.")
    top_logprobs: None = None
    top_p: float | None = Field(default=None, ge=0, le=1)
    truncation: Literal["disabled"] | None = None
    user: str | None = None
    gateway: GatewayOptions | None = None


class ResponseOutputItem(_Open):
    """A ``message`` (role, content: output_text or refusal parts) or a ``function_call`` (call_id, name,
    arguments)."""

    id: str
    type: Literal["message", "function_call"]
    status: Literal["in_progress", "completed", "incomplete"]


class ResponseUsage(_Open):
    input_tokens: int
    input_tokens_details: dict[str, int]
    output_tokens: int
    output_tokens_details: dict[str, int]
    total_tokens: int


class ResponseError(_Open):
    code: str
    message: str


class ResponseObject(_Open):
    """A response; ``id`` is the gateway's own (``resp_...``), never stored."""

    id: str
    object: Literal["response"]
    created_at: int
    status: Literal["completed", "incomplete", "in_progress", "failed"]
    error: ResponseError | None = None
    incomplete_details: dict[str, str] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    model: str
    output: list[ResponseOutputItem]
    parallel_tool_calls: bool
    store: Literal[False]
    temperature: float | None = None
    text: dict[str, Any]
    tool_choice: str | dict[str, Any]
    tools: list[dict[str, Any]]
    top_p: float | None = None
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str]
    gateway: GatewayReplyField | None = None


class ResponseStreamEvent(_Open):
    """One event of a streamed response (``event: <type>`` and ``data: <this>``)."""

    type: str = Field(description="response.created, response.in_progress, response.output_item.added, ..., "
                                  "response.completed (or .incomplete, .failed), error")
    sequence_number: int


# --- embeddings and models -------------------------------------------------------------------------------------


class CreateEmbeddingRequest(_Open):
    model_config = ConfigDict(extra="allow", json_schema_extra={
        "examples": [{"model": "text-embedding-3-small", "input": "Where is my parcel?"}]})
    input: str | list[str] | list[int] | list[list[int]]
    model: str = Field(min_length=1)
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None


class Embedding(_Open):
    embedding: list[float] | str
    index: int
    object: Literal["embedding"]


class CreateEmbeddingResponse(_Open):
    data: list[Embedding]
    model: str
    object: Literal["list"]
    usage: dict[str, int] | None = None


class Model(_Closed):
    id: str
    created: int
    object: Literal["model"]
    owned_by: str = Field(description="hybrid-gateway:route or hybrid-gateway:target")


class ModelList(_Closed):
    object: Literal["list"]
    data: list[Model]


# --- experiments, economics, ledger ----------------------------------------------------------------------------


class FeedbackAccepted(_Closed):
    """An experiment request's feedback names its experiment and variant; a captured request's says so."""

    ok: Literal[True]
    request_id: str
    experiment: str | None = None
    variant: str | None = None
    captured: bool | None = None


class ExperimentReport(_Open):
    experiment: str
    route: str
    alpha: float
    power: float
    control: str
    variants: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    ignored_unknown: int


class RouteEconomics(_Open):
    """The break-even of one route over the economics window (docs/economics.md names every field)."""

    route: str


class Economics(_Closed):
    scope: str = Field(description="cluster: every replica's traffic through Redis; otherwise this gateway's own.")
    routes: list[RouteEconomics]


class LedgerRow(_Open):
    route: str


class Ledger(_Closed):
    scope: Literal["cluster", "process"]
    since: float = Field(description="Epoch seconds the totals count from.")
    rows: list[LedgerRow]


class RouteView(_Open):
    route: str
    strategy: str = Field(description="The route's strategy as its policy sets it (docs/policies.md); "
                                      "hybrid-gateway eval reads it.")
    classifier: dict[str, Any] | None = Field(
        description="The classifier now: live threshold, cut and realised share (docs/routing.md); "
                    "null on a route without one.")


class RouteViews(_Closed):
    scope: str = Field(description="cluster: thresholds merged across replicas through Redis; else process.")
    routes: list[RouteView]


# --- health ----------------------------------------------------------------------------------------------------


class Health(_Closed):
    status: Literal["ok"]


class Readiness(_Closed):
    status: Literal["ready", "degraded", "not_ready"]
    checks: dict[str, str] = Field(description="Each dependency: ok, or what is wrong with it.")


# --- knowledge admin -------------------------------------------------------------------------------------------


class FailedFile(_Closed):
    source: str
    reason: str


class IngestResult(_Closed):
    ok: bool
    files_ok: list[str]
    files_failed: list[FailedFile]
    sources_removed: list[str]
    chunks_added: int
    chunks_removed: int
    chunks_unchanged: int
    chunks_embedded: int


class SourceList(_Closed):
    collection: str
    sources: dict[str, int] = Field(description="Each source with its number of chunks, sorted by name.")


class Hit(_Closed):
    source: str
    chunk_id: str
    score: float
    text: str


class QueryResult(_Closed):
    hits: list[Hit]
