"""OpenAI request shapes the gateway checks before anything reaches an upstream.

Only what the gateway relies on is typed, strictly: a value of the wrong JSON
type is refused rather than coerced, because the body goes upstream as sent and
``"n": "2"`` must not reach a provider as a string the gateway called valid.
Every other OpenAI parameter (tools, tool_choice, response_format, stop, seed,
logprobs, ...) is kept as sent. Fields that would steer upstream connections or
credentials are refused on purpose: clients never choose where or as whom the
gateway connects. ``CHAT_FIELDS`` and ``EMBEDDING_FIELDS`` name OpenAI's own
request fields: the only ones that may become keyword arguments of a library
call (litellm), where any other name could be one of the library's own
switches (``fallbacks``, ``mock_response``, ``api_base``). Models are pure: no
environment reads and no conversion to upstream formats.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from policies import ArmName

# Gateway-only body field; stripped before the request goes upstream.
GATEWAY_FIELD = "gateway"

FORBIDDEN_FIELDS = frozenset({
    "api_base", "base_url", "api_key", "api_version", "api_type", "organization", "project",
    "azure_endpoint", "azure_ad_token", "azure_deployment", "custom_llm_provider", "litellm_params",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name", "aws_profile_name",
    "vertex_credentials", "vertex_project", "vertex_location", "extra_headers", "headers", "proxy",
    "proxies", "endpoint", "url", "http_client", "default_headers", "user_config",
    # LiteLLM's own routing switches: refused for every target, since an OpenAI-compatible upstream
    # may itself be a LiteLLM proxy that would honour them.
    "fallbacks", "context_window_fallback_dict", "mock_response", "model_list", "extra_body",
})
_FORBIDDEN_SUFFIXES = ("_api_key", "_api_base", "_base_url", "_endpoint", "_credentials", "_token_provider")

# OpenAI's documented request fields (platform.openai.com/docs/api-reference/chat/create, .../embeddings/create).
CHAT_FIELDS = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
EMBEDDING_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})


def forbidden_field(body: dict[str, Any]) -> str | None:
    """The first top-level field that tries to set an upstream URL or credential, if any."""
    for key in body:
        lowered = key.lower()
        if lowered in FORBIDDEN_FIELDS or lowered.endswith(_FORBIDDEN_SUFFIXES):
            return key
    return None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class GatewayOptions(BaseModel):
    """The ``gateway`` body field (``extra_body={"gateway": {...}}`` in the SDK)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    arm: ArmName | None = None


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    user: str | None = None
    gateway: GatewayOptions | None = None


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(default=None, ge=1)
