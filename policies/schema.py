"""The policy file schema: one class per YAML key, named as in the file.

A policy directory holds YAML files with two top-level mappings, ``targets``
(upstream models) and ``routes`` (public model names). A route has ``arms``:
``prompted`` (large model, system prompt, few-shot) and ``fine_tuned`` (small
tuned model). Unknown keys are errors (``extra="forbid"``) so a typo never
silently disables a setting.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ArmName = Literal["prompted", "fine_tuned"]
ARM_NAMES: tuple[ArmName, ...] = ("prompted", "fine_tuned")

# Providers spoken to directly over OpenAI's wire format; anything else goes through litellm.
OPENAI_COMPATIBLE = frozenset({"openai", "azure", "vllm", "tgi", "ollama", "demo", "openai_compatible"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens; overrides litellm's bundled price map for this target."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class Target(_Strict):
    """One upstream model: where it lives, how to authenticate, what it costs."""

    provider: str = Field(min_length=1)
    model: str = Field(min_length=1)
    api_base: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout_s: float = Field(default=5.0, gt=0, le=120)
    price: Price | None = None
    expose: bool = False
    without_key: str | None = Field(
        default=None, description="Target to use instead while the api_key_env variable is unset."
    )

    @property
    def openai_compatible(self) -> bool:
        return self.provider in OPENAI_COMPATIBLE

    @field_validator("api_base")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class FewShot(_Strict):
    user: str
    assistant: str


class Knowledge(_Strict):
    """Retrieval for an arm: which collection, how much context, and how long to wait for it."""

    collection: str = Field(min_length=1)
    top_k: int = Field(default=4, ge=1, le=50)
    min_score: float = Field(default=0.25, ge=-1, le=1)
    max_context_tokens: int = Field(default=1200, ge=1, le=100_000)
    filter_keys: tuple[str, ...] = Field(
        default=(), description="Request metadata keys whose values must match chunk metadata."
    )
    timeout_ms: int = Field(default=500, gt=0, le=10_000)


class Arm(_Strict):
    """How one side of a route calls its model."""

    target: str = Field(min_length=1)
    system_prompt: str | None = None
    few_shot: tuple[FewShot, ...] = ()
    knowledge: Knowledge | None = None


class Arms(_Strict):
    prompted: Arm
    fine_tuned: Arm | None = None


class Route(_Strict):
    """A public model name that clients call; the gateway picks an arm per request."""

    description: str = ""
    arms: Arms
    default_arm: ArmName = "prompted"
    allow_arm_override: bool = Field(
        default=False, description="Let a request force its arm (header x-gateway-arm or body gateway.arm)."
    )


class PolicyFile(_Strict):
    """The content of one YAML file; a directory's files are merged into a ``PolicySet``."""

    version: Literal[1] = 1
    targets: dict[str, Target] = Field(default_factory=dict)
    routes: dict[str, Route] = Field(default_factory=dict)


class PolicySet(_Strict):
    """All policy files of a directory, merged and cross-checked."""

    targets: dict[str, Target]
    routes: dict[str, Route]
    fingerprint: str = ""
