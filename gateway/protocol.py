"""OpenAI request shapes the gateway checks before anything reaches an upstream.

Only what the gateway relies on is typed; every other OpenAI parameter (tools,
tool_choice, response_format, n, stop, seed, logprobs, temperature, ...) is
kept as sent and passed through untouched. Fields that would steer upstream
connections or credentials are refused on purpose: clients never choose where
or as whom the gateway connects. Models are pure: no environment reads and no
conversion to upstream formats.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Gateway-only body field; stripped before the request goes upstream.
GATEWAY_FIELD = "gateway"

FORBIDDEN_FIELDS = frozenset({
    "api_base", "base_url", "api_key", "api_version", "api_type", "organization", "project",
    "azure_endpoint", "azure_ad_token", "azure_deployment", "custom_llm_provider", "litellm_params",
    "aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region_name", "aws_profile_name",
    "vertex_credentials", "vertex_project", "vertex_location", "extra_headers", "headers", "proxy",
    "proxies", "endpoint", "url", "http_client", "default_headers", "user_config",
})
_FORBIDDEN_SUFFIXES = ("_api_key", "_api_base", "_base_url", "_endpoint", "_credentials", "_token_provider")


def forbidden_field(body: dict[str, Any]) -> str | None:
    """The first top-level field that tries to set an upstream URL or credential, if any."""
    for key in body:
        lowered = key.lower()
        if lowered in FORBIDDEN_FIELDS or lowered.endswith(_FORBIDDEN_SUFFIXES):
            return key
    return None


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatMessage(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class StreamOptions(_Open):
    include_usage: bool = False


class GatewayOptions(BaseModel):
    """The ``gateway`` body field (``extra_body={"gateway": {...}}`` in the SDK)."""

    model_config = ConfigDict(extra="forbid")
    arm: Literal["prompted", "fine_tuned"] | None = None


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
