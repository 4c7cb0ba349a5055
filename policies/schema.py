"""The policy file schema: one class per YAML key, named as in the file.

A policy directory holds YAML files with two top-level mappings, ``targets``
(upstream models) and ``routes`` (public model names). A route has ``arms``:
``prompted`` (large model, system prompt, few-shot) and ``fine_tuned`` (small
tuned model). Unknown keys are errors (``extra="forbid"``) so a typo never
silently disables a setting.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

ArmName = Literal["prompted", "fine_tuned"]
ARM_NAMES: tuple[ArmName, ...] = ("prompted", "fine_tuned")

# Why an upstream attempt failed, as retries, fallbacks and breakers see it.
Trigger = Literal["timeout", "connection", "rate_limit", "server_error", "context_window", "content_filter",
                  "circuit_open"]
RETRY_TRIGGERS: tuple[Trigger, ...] = ("timeout", "connection", "rate_limit", "server_error")
FALLBACK_TRIGGERS: tuple[Trigger, ...] = ("timeout", "connection", "rate_limit", "server_error", "context_window",
                                          "content_filter", "circuit_open")

# Providers spoken to directly over OpenAI's wire format; anything else goes through litellm.
OPENAI_COMPATIBLE = frozenset({"openai", "azure", "vllm", "tgi", "ollama", "demo", "openai_compatible"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per million tokens; overrides litellm's bundled price map for this target."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)


class Retry(_Strict):
    """Retries of one target: exponential backoff with full jitter, ``Retry-After`` honoured up to a cap."""

    attempts: int = Field(default=1, ge=1, le=10, description="Attempts in total, the first included.")
    backoff_initial_ms: int = Field(default=200, ge=0, le=60_000)
    backoff_max_ms: int = Field(default=4_000, ge=0, le=300_000)
    max_retry_after_s: float = Field(default=10.0, ge=0, le=600)
    triggers: tuple[Trigger, ...] = RETRY_TRIGGERS  # not "on": YAML reads a bare on as true


class Breaker(_Strict):
    """Circuit breaker of one target: open after ``failures`` within ``window_s``, probe after ``cooldown_s``."""

    failures: int = Field(default=5, ge=1, le=10_000)
    window_s: float = Field(default=30.0, gt=0, le=3600)
    cooldown_s: float = Field(default=15.0, gt=0, le=3600)
    half_open_probes: int = Field(default=1, ge=1, le=100)


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
    retry: Retry = Retry()
    breaker: Breaker | None = None
    trained_at: datetime | None = Field(default=None, description="When this fine-tuned model was trained: "
                                        "its age, against the route's retraining_every_months, says when "
                                        "retraining is due.")

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


class Alternate(_Strict):
    """One step of a fallback chain: another arm of the route (its whole set-up), or a bare target."""

    arm: ArmName | None = None
    target: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Alternate:
        if (self.arm is None) == (self.target is None):
            raise ValueError("give exactly one of 'arm' or 'target'")
        return self


class Fallback(_Strict):
    """Where an arm goes when its target fails for one of the ``triggers``."""

    to: tuple[Alternate, ...] = Field(min_length=1)
    triggers: tuple[Trigger, ...] = FALLBACK_TRIGGERS


class Arm(_Strict):
    """How one side of a route calls its model."""

    target: str = Field(min_length=1)
    system_prompt: str | None = None
    few_shot: tuple[FewShot, ...] = ()
    knowledge: Knowledge | None = None
    fallback: Fallback | None = None


class Arms(_Strict):
    prompted: Arm
    fine_tuned: Arm | None = None


class Calibration(_Strict):
    """The live estimate behind ``strong_share``: which recent decisions it covers, and the warm start.

    The threshold is the (1 - strong_share) quantile of the route's own recent scores: the newest
    ``window_decisions`` decisions (give or take 1/16 of them), none older than ``window_s``. Until
    the window holds ``prior_weight`` decisions, the model's training quantiles fill in for the
    missing ones (see routes/_calibration.py).
    """

    window_decisions: int = Field(default=10_000, ge=100, le=10_000_000,
                                  description="How many recent decisions the estimate covers.")
    window_s: float = Field(default=86_400.0, ge=60, le=90 * 86_400,
                            description="The oldest decision it may use, in seconds.")
    prior_weight: float = Field(default=20.0, ge=1, le=1_000_000,
                                description="What the training quantiles are worth, in decisions.")


class Classifier(_Strict):
    """How a route picks its arm per request: a complexity score against a threshold.

    Give ``threshold`` (a fixed threshold: score >= it goes to the prompted arm) or ``strong_share``
    (the target fraction of this route's traffic for the prompted arm, held by a threshold
    calibrated live on the route's own recent scores, see ``Calibration``); neither means a fixed 0.5.
    """

    model: str = Field(default="default", description="A shipped model ('default': best quality, "
                       "'fast': under a millisecond) or a model file path relative to the policies.")
    threshold: float | None = Field(default=None, ge=0, le=1)
    strong_share: float | None = Field(default=None, ge=0, le=1)
    calibration: Calibration | None = Field(default=None, description="Window and warm start of the live "
                                            "threshold (strong_share only); defaults when omitted.")
    low_confidence: ArmName = Field(default="prompted", description="Arm for requests the model cannot judge.")

    @model_validator(mode="after")
    def _one_of(self) -> Classifier:
        if self.threshold is not None and self.strong_share is not None:
            raise ValueError("give threshold or strong_share, not both")
        if self.calibration is not None and self.strong_share is None:
            raise ValueError("calibration needs strong_share: a fixed threshold is never recalibrated")
        return self

    @property
    def live(self) -> Calibration | None:
        """The calibration in force: None for a fixed threshold, else the block or its defaults."""
        if self.strong_share is None:
            return None
        return self.calibration or Calibration()


class Economics(_Strict):
    """The fine-tuning investment a route must pay back (the decision guide's break-even inputs)."""

    upfront_usd: float = Field(ge=0, description="Data collection, labelling and training.")
    maintenance_monthly_usd: float = Field(default=0.0, ge=0)
    retraining_usd: float = Field(default=0.0, ge=0)
    retraining_every_months: float | None = Field(default=None, gt=0)
    projected_monthly_queries: float = Field(gt=0)
    horizon_months: float = Field(default=24.0, gt=0, le=240)
    quality_baseline: float | None = Field(default=None, allow_inf_nan=False, description="The fine-tuned arm's "
                                           "mean feedback score when it was accepted (e.g. from eval): what "
                                           "its live quality is held to.")
    quality_drop_alert: float = Field(default=0.05, ge=0, description="Alert when the fine-tuned arm's mean "
                                      "feedback score over a day falls this far below quality_baseline.")

    @property
    def fixed_monthly_usd(self) -> float:
        """Maintenance plus retraining spread over its cadence."""
        retraining = self.retraining_usd / self.retraining_every_months if self.retraining_every_months else 0.0
        return self.maintenance_monthly_usd + retraining


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a valid regular expression: {exc}") from exc
    return pattern


class Redaction(_Strict):
    """A pattern of the operator's own to remove before a capture is stored, besides the built-in ones."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Shown as [REDACTED:name] in its place.")
    pattern: str = Field(min_length=1, max_length=1000, description="A Python regular expression.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        return _regex(pattern)


class Capture(_Strict):
    """Keep a share of a route's traffic, redacted, as the examples of its fine-tuning dataset."""

    share: float = Field(gt=0, le=1, description="Fraction of the route's successful requests kept.")
    retention_days: float = Field(default=90.0, gt=0, le=3650, description="Captures older than this are deleted.")
    redact: tuple[Redaction, ...] = Field(default=(), description="Patterns removed besides the built-in ones "
                                          "(e-mail addresses, phone numbers, card numbers, API keys).")
    feedback: FeedbackScale | None = Field(default=None, description="The scale of POST /v1/feedback scores on "
                                           "captured requests outside an experiment (default 0 to 1).")


class Judge(_Strict):
    """A target asked about answers: a cascade's yes/no acceptor, or an ensemble's choice between candidates.
    Its calls are priced at its target's price and counted with the request; it has its own timeout."""

    target: str = Field(min_length=1)
    question: str | None = Field(default=None, max_length=4000, description="What the judge is asked; the "
                                 "default asks whether the answer fully answers the request (acceptor) or which "
                                 "candidate answers it best (ensemble).")
    timeout_s: float = Field(default=10.0, gt=0, le=600, description="The judge's own time, within the route's "
                             "deadline.")
    on_error: Literal["accept", "reject"] = Field(default="reject", description="An acceptor's verdict when the "
                                                  "judge fails or answers neither yes nor no.")


class Acceptors(_Strict):
    """What a cascade checks in the fine-tuned arm's answer before returning it; the first check that fails
    sends the request on to the prompted arm (docs/policies.md, strategy: cascade)."""

    reject: tuple[str, ...] = Field(default=(), max_length=64, description="Regular expressions (Python, "
                                    "case-insensitive) the answer must not match: refusals, hedges.")
    require: tuple[str, ...] = Field(default=(), max_length=64, description="Regular expressions (Python, "
                                     "case-insensitive) the answer must each match.")
    min_chars: int = Field(default=0, ge=0, description="Shortest answer accepted, in characters.")
    max_chars: int | None = Field(default=None, gt=0, description="Longest answer accepted, in characters.")
    valid_json: bool = Field(default=True, description="When the request's response_format asks for JSON, the answer "
                       "must be a JSON object (valid against the schema, for json_schema).")
    min_mean_logprob: float | None = Field(default=None, le=0, description="Lowest mean token log-probability "
                                           "accepted; the gateway asks the fine-tuned arm for logprobs.")
    min_token_logprob: float | None = Field(default=None, le=0, description="Lowest single token "
                                            "log-probability accepted; the gateway asks for logprobs.")
    judge: Judge | None = Field(default=None, description="Asked last, only about answers every other check "
                                "accepted: a paid call.")

    @field_validator("reject", "require")
    @classmethod
    def _compile(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            _regex(pattern)
        return patterns

    _rejecting: tuple[re.Pattern[str], ...] = PrivateAttr(default=())
    _requiring: tuple[re.Pattern[str], ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        """Compiled once, when the policy loads: a cascade judges answers with them on every request."""
        self._rejecting = tuple(re.compile(p, re.IGNORECASE) for p in self.reject)
        self._requiring = tuple(re.compile(p, re.IGNORECASE) for p in self.require)

    @property
    def rejecting(self) -> tuple[re.Pattern[str], ...]:
        return self._rejecting

    @property
    def requiring(self) -> tuple[re.Pattern[str], ...]:
        return self._requiring

    @property
    def wants_logprobs(self) -> bool:
        return self.min_mean_logprob is not None or self.min_token_logprob is not None


class Cache(_Strict):
    """Exact-match answers per route: the same final upstream request (after routing and retrieval) within
    ``ttl_s`` is answered from the cache, at no cost. In Redis when configured (shared by replicas, entries
    expire there), else in the process (``max_entries`` and ``max_bytes`` bound it, least recently used out)."""

    ttl_s: float = Field(default=300.0, gt=0, le=30 * 86_400)
    max_entries: int = Field(default=1_000, ge=1, le=1_000_000, description="In-process entries per route.")
    max_bytes: int = Field(default=64 << 20, ge=1024, description="In-process bytes per route.")
    max_entry_bytes: int = Field(default=1 << 20, ge=256, description="Larger answers are not kept.")
    allow_sampled: bool = Field(default=False, description="Also cache requests that sample (temperature absent "
                                "or above 0): their repeats would otherwise differ.")


class Ensemble(_Strict):
    """``strategy: ensemble``: both arms answer every request, in parallel, and a selector picks the answer."""

    selector: Literal["judge", "vote", "first_accepted"] = Field(description="judge: a judge target picks among "
                                                                  "the candidates (order shuffled and recorded); "
                                                                  "vote: the most frequent answer after "
                                                                  "normalisation; first_accepted: the first answer "
                                                                  "to pass the acceptors.")
    samples: int = Field(default=1, ge=1, le=5, description="Calls per arm (voting needs answers to compare).")
    patience_s: float | None = Field(default=None, gt=0, le=3600, description="Once one candidate is in, how "
                                     "long the others may still take (default: the route's deadline).")
    judge: Judge | None = None

    @model_validator(mode="after")
    def _judge_for_judge(self) -> Ensemble:
        if (self.selector == "judge") != (self.judge is not None):
            raise ValueError("selector: judge needs a judge block, and only it uses one")
        return self


class Route(_Strict):
    """A public model name that clients call; the gateway picks an arm per request."""

    description: str = ""
    arms: Arms
    default_arm: ArmName = "prompted"
    allow_arm_override: bool = Field(
        default=False, description="Let a request force its arm (header x-gateway-arm or body gateway.arm)."
    )
    deadline_s: float = Field(default=120.0, gt=0, le=3600,
                              description="Total time for a request, retries and fallbacks included.")
    shadow: Shadow | None = None
    classifier: Classifier | None = None
    economics: Economics | None = None
    capture: Capture | None = None
    strategy: Literal["route", "cascade", "ensemble"] = Field(
        default="route", description="route: each request goes to one arm. cascade: a request the fine-tuned arm "
        "would serve gets its answer checked by the acceptors, and the prompted arm's when rejected. ensemble: "
        "both arms answer, the ensemble's selector picks.")
    acceptors: Acceptors | None = Field(default=None, description="The cascade's checks (default: JSON validity "
                                        "when asked for, and the fine-tuned call succeeding); an ensemble's "
                                        "candidates must pass them too.")
    ensemble: Ensemble | None = None
    cache: Cache | None = None
    stream: Literal["buffered", "passthrough-no-cascade"] = Field(
        default="buffered", description="A cascade's or ensemble's streamed request: buffered (answers are read "
        "whole, judged, then replayed) or passthrough-no-cascade (streams are routed as on strategy: route).")

    @model_validator(mode="after")
    def _strategy_has_what_it_needs(self) -> Route:
        if self.strategy != "route" and self.arms.fine_tuned is None:
            raise ValueError(f"strategy: {self.strategy} needs a fine_tuned arm as well as the prompted one")
        if (self.strategy == "ensemble") != (self.ensemble is not None):
            raise ValueError("strategy: ensemble needs an ensemble block, and only it uses one")
        if self.acceptors is not None and self.strategy == "route":
            raise ValueError("acceptors apply only to strategy: cascade or ensemble")
        if self.strategy == "ensemble" and self.acceptors is not None and self.acceptors.judge is not None:
            raise ValueError("an ensemble's judge is ensemble.judge (selector: judge); acceptors.judge is a "
                             "cascade's")
        if self.stream != "buffered" and self.strategy == "route":
            raise ValueError("stream applies only to strategy: cascade or ensemble")
        if self.cache is not None and self.strategy != "route":
            raise ValueError(f"cache applies only to strategy: route (a {self.strategy}'s answers depend on "
                             "checks made after the call)")
        return self

    @model_validator(mode="after")
    def _retrieval_leaves_time_to_answer(self) -> Route:
        """Retrieval spends the request's deadline too: a knowledge timeout as long as the deadline could
        leave the upstream no time at all, so each arm's must be shorter."""
        for name in ARM_NAMES:
            arm = getattr(self.arms, name)
            if arm is not None and arm.knowledge is not None and arm.knowledge.timeout_ms >= self.deadline_s * 1000:
                raise ValueError(f"arms.{name}.knowledge.timeout_ms ({arm.knowledge.timeout_ms}) must be shorter "
                                 f"than the route's deadline_s ({self.deadline_s:g} s)")
        return self


class Shadow(_Strict):
    """Mirror a share of a route's requests to a candidate target, off the client's path."""

    target: str = Field(min_length=1)
    share: float = Field(gt=0, le=1)


class Variant(_Strict):
    """One side of an A/B experiment: an arm, a target, or a prompt variant of the route's default arm."""

    weight: float = Field(gt=0)
    arm: ArmName | None = None
    target: str | None = None
    system_prompt: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Variant:
        if sum(x is not None for x in (self.arm, self.target, self.system_prompt)) > 1:
            raise ValueError("give at most one of 'arm', 'target' or 'system_prompt'")
        return self


class FeedbackScale(_Strict):
    """The range of the ``score`` clients may send for an experiment's requests (bounds included).

    Declared so a stray value (a 1-5 rating sent to a 0-1 scale, a -1000) is refused with 400
    instead of moving a variant's mean; ``success`` (true/false) needs no scale.
    """

    min: float = Field(default=0.0, allow_inf_nan=False)
    max: float = Field(default=1.0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> FeedbackScale:
        if self.min >= self.max:
            raise ValueError("min must be below max")
        return self


class Experiment(_Strict):
    """An A/B split of one route; assignment is a hash of the experiment name and the key, so every
    replica agrees without coordination."""

    route: str = Field(min_length=1)
    variants: dict[str, Variant] = Field(min_length=2)
    key: str = Field(default="user", pattern=r"^(user|session|header:[A-Za-z0-9-]+)$",
                     description="user: the body's user field; session: x-session-id; header:NAME: that header.")
    start: datetime | None = None
    end: datetime | None = None
    allow_override: bool = Field(default=False, description="Let the x-gateway-variant header force a variant.")
    feedback: FeedbackScale = Field(default_factory=FeedbackScale, description="The score scale (default 0 to 1).")

    @model_validator(mode="after")
    def _window(self) -> Experiment:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class PolicyFile(_Strict):
    """The content of one YAML file; a directory's files are merged into a ``PolicySet``."""

    version: Literal[1] = 1
    targets: dict[str, Target] = Field(default_factory=dict)
    routes: dict[str, Route] = Field(default_factory=dict)
    experiments: dict[str, Experiment] = Field(default_factory=dict)


class PolicySet(_Strict):
    """All policy files of a directory, merged and cross-checked."""

    targets: dict[str, Target]
    routes: dict[str, Route]
    experiments: dict[str, Experiment] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict,
                                    description="Target names standing in for others whose key is unset.")
    fingerprint: str = ""
    warnings: tuple[str, ...] = Field(default=(), description="What loads but is probably a mistake, each "
                                      "with its file and line (a fine_tuned arm serving a base model).")

    def target(self, name: str) -> tuple[str, Target]:
        """The target that really serves ``name``: its stand-in while its key is unset."""
        effective = self.aliases.get(name, name)
        return effective, self.targets[effective]
