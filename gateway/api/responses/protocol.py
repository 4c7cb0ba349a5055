"""The Responses API's request as the gateway checks it: every documented field decided on purpose.

Unlike a chat body, which goes upstream as sent, a Responses body is translated field by field into a
chat one (``gateway.api.responses.request``), so nothing the translation does not know may pass: the
models are closed (an unknown field is a 400 naming it) and strict (no coercion, as in
``gateway.protocol``). Input items, tools and content parts stay plain objects here and are checked
one by one against the models below, picked by their ``type``, so an unsupported kind of item or
tool is refused by name rather than by a union's list of every alternative's errors. Fields the
gateway cannot honour without stored state or OpenAI-hosted tools are typed too, so that the
translation refuses them with a reason. Pure: no conversion here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.protocol import GatewayOptions


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# --- content parts of a message item --------------------------------------------------------------------------


class InputText(_Closed):
    type: Literal["input_text"]
    text: str


class OutputText(_Closed):
    """An earlier answer's text, as a client sends a response's ``output`` back in ``input``."""

    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class Refusal(_Closed):
    type: Literal["refusal"]
    refusal: str


class InputImage(_Closed):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] | None = None


class InputFile(_Closed):
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


ContentPart = Annotated[InputText | OutputText | Refusal | InputImage | InputFile, Field(discriminator="type")]
ToolOutputPart = Annotated[InputText | InputImage | InputFile, Field(discriminator="type")]
ItemStatus = Literal["in_progress", "completed", "incomplete"]


# --- input items -----------------------------------------------------------------------------------------------


class MessageItem(_Closed):
    """A message; ``type`` may be left out (OpenAI's "easy input message")."""

    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallItem(_Closed):
    """A function call the model made earlier, sent back so that its output can follow it."""

    type: Literal["function_call"]
    call_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    arguments: str
    id: str | None = None
    status: ItemStatus | None = None


class FunctionCallOutputItem(_Closed):
    """The client's result of a function call, answering the ``function_call`` with the same ``call_id``."""

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1)
    output: str | list[ToolOutputPart]
    id: str | None = None
    status: ItemStatus | None = None


ITEMS: dict[str, type[MessageItem | FunctionCallItem | FunctionCallOutputItem]] = {
    "message": MessageItem, "function_call": FunctionCallItem, "function_call_output": FunctionCallOutputItem}
"""The input items the gateway translates, by ``type``; any other type is refused by name."""


# --- tools, tool choice, text format ---------------------------------------------------------------------------


class FunctionTool(_Closed):
    type: Literal["function"]
    name: str = Field(min_length=1)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class FunctionChoice(_Closed):
    type: Literal["function"]
    name: str = Field(min_length=1)


class TextFormat(_Closed):
    type: Literal["text"]


class JsonObjectFormat(_Closed):
    type: Literal["json_object"]


class JsonSchemaFormat(_Closed):
    type: Literal["json_schema"]
    name: str = Field(min_length=1, max_length=64)
    json_schema: dict[str, Any] = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Closed):
    format: Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")] | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Closed):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None  # refused: Chat Completions returns none


class StreamOptions(_Closed):
    include_obfuscation: bool | None = None  # accepted; the gateway adds no obfuscation padding either way


# --- the request -----------------------------------------------------------------------------------------------


class CreateResponse(_Closed):
    """``POST /v1/responses``, fields in the order of OpenAI's API reference; ``gateway`` is the gateway's own."""

    background: bool | None = None  # refused when true: nothing is stored to poll
    conversation: str | dict[str, Any] | None = None  # refused: needs stored conversations
    include: list[str] | None = None  # refused when not empty: nothing it names is produced
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_tool_calls: int | None = None  # refused: only hosted tools loop inside one response
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    model: str = Field(min_length=1)
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None  # refused: needs stored responses
    prompt: dict[str, Any] | None = None  # refused: prompt templates are stored at OpenAI
    prompt_cache_key: str | None = None
    reasoning: Reasoning | None = None
    safety_identifier: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    store: bool | None = None  # refused when true: the gateway stores no response
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    text: TextConfig | None = None
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = None  # refused: the answer carries no log-probabilities
    top_p: float | None = Field(default=None, ge=0, le=1)
    truncation: Literal["auto", "disabled"] | None = None  # refused when auto: the gateway drops no input
    user: str | None = None
    gateway: GatewayOptions | None = None
