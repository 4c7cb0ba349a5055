"""Break-even arithmetic for "fine-tune the small model or keep prompting the large one?".

The decision guide (``Cost Analysis and Break-Even Calculations``) frames the
choice as one trade: fine-tuning costs a lump sum upfront and then saves money
every month, so it pays for itself after ``upfront / monthly savings`` months.
This module is that model and nothing else: pure functions over frozen
dataclasses, no I/O, so the CLI, a report or a test can all ask the same
question and get the same answer.

Monthly cost of each approach comes from exactly one of three places, because
that is how people actually know it:

* a monthly bill (``prompted_monthly`` / ``fine_tuned_monthly``),
* a cost per query times the volume (``prompted_per_query`` ...),
* per-token prices times tokens per query times the volume (:class:`TokenCost`).

Fine-tuning also carries running costs the guide mentions but leaves out of its
arithmetic (maintenance, periodic retraining); they are added to the
fine-tuned side so the savings are honest. Retraining is spread evenly over its
cadence (a $3,000 retrain every 3 months counts as $1,000 a month).

Every answer says what it rests on (:class:`Evidence`): the calculator's typed
figures, ``eval``'s measured costs at a projected volume, or the live view's
observed volume and costs over a stated window. The same arithmetic on
different inputs gives different months; the evidence is what lets a reader
see why. Live traffic too thin to extrapolate gets no break-even at all but a
:class:`Shortfall` ("not enough traffic yet" and what is missing).

The guide's own four scenarios are kept in :data:`GUIDE_SCENARIOS` together
with the break-even figures it states, only so that output can say where the
guide's figures disagree with its own inputs (its 10K queries/month case says
40 months; $12,000 / ($300 - $150) is 80).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from policies import ARM_NAMES, Economics

__all__ = [
    "DEFAULT_HORIZON_MONTHS",
    "DEFAULT_UPFRONT",
    "FAST_PAYBACK_MONTHS",
    "GUIDE_SCENARIOS",
    "NOT_ENOUGH_TRAFFIC",
    "TYPED",
    "YEAR_MONTHS",
    "BreakEven",
    "Evidence",
    "GuideScenario",
    "Scenario",
    "Shortfall",
    "StatedMonths",
    "TokenCost",
    "break_even",
]

DEFAULT_UPFRONT = 12_000.0
"""The guide's example fine-tuning project (data, labelling, training), USD."""

DEFAULT_HORIZON_MONTHS = 24
"""How far ahead a plan is trusted: two years, a typical product lifecycle in the guide."""

FAST_PAYBACK_MONTHS = 6
"""Pay-back at or under this is a clear "fine-tune": volume rarely collapses within two quarters."""

YEAR_MONTHS = 12
"""Pay-back within a year is worth it only if the volume holds; the verdict says so."""

_MILLION = 1_000_000

NOT_ENOUGH_TRAFFIC = "not enough traffic yet"
"""Every verdict that refuses to extrapolate starts with this, wherever it is shown."""


@dataclass(frozen=True)
class Evidence:
    """Where a scenario's volume and running costs come from, in words a reader can check."""

    volume: str
    costs: str

    def __str__(self) -> str:
        return f"volume {self.volume}; costs {self.costs}"

    def as_json(self) -> dict[str, str]:
        return {"volume": self.volume, "costs": self.costs}


TYPED = Evidence(volume="as given", costs="as given")


@dataclass(frozen=True)
class Shortfall:
    """What live traffic still lacks before its break-even means anything; all zero means enough."""

    requests: int = 0
    """More requests (all arms) before the volume is extrapolated."""
    seconds: float = 0.0
    """More observed time before the volume is extrapolated."""
    prompted_requests: int = 0
    """More prompted-arm requests before prompting's cost per query is known."""

    def __bool__(self) -> bool:
        return self.requests > 0 or self.seconds > 0 or self.prompted_requests > 0

    @property
    def verdict(self) -> str:
        """``not enough traffic yet: 120 more requests, 35 more minutes`` (the missing parts only)."""
        missing = []
        if self.requests > 0:
            missing.append(f"{self.requests:,} more request{'s' if self.requests != 1 else ''}")
        if self.seconds > 0:
            missing.append(_duration(self.seconds))
        if self.prompted_requests > 0:
            missing.append(f"{self.prompted_requests:,} more prompted request"
                           f"{'s' if self.prompted_requests != 1 else ''} to know what prompting costs per query")
        return f"{NOT_ENOUGH_TRAFFIC}: " + ", ".join(missing)

    def as_json(self) -> dict[str, float]:
        return {"requests": self.requests, "seconds": self.seconds, "prompted_requests": self.prompted_requests}


def _duration(seconds: float) -> str:
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} more minute{'s' if minutes != 1 else ''}"
    return f"{math.ceil(seconds / 3600)} more hours"


@dataclass(frozen=True)
class TokenCost:
    """One approach's price per query from per-token prices.

    Prices are USD per million tokens, as providers publish them; token counts
    are the average per query (the fine-tuned model usually needs a much
    shorter prompt, which is half of its saving).
    """

    input_per_million: float
    output_per_million: float
    tokens_in: float
    tokens_out: float

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million", "tokens_in", "tokens_out"):
            _require_non_negative(name, getattr(self, name))

    @property
    def per_query(self) -> float:
        """USD for one average query."""
        return (self.tokens_in * self.input_per_million + self.tokens_out * self.output_per_million) / _MILLION


@dataclass(frozen=True)
class Scenario:
    """One volume and what each approach costs at it.

    Each side's running cost is given exactly one way (monthly, per query or
    per token); mixing two for the same side would leave it ambiguous which
    one the answer used, so that is refused.
    """

    volume: float
    """Queries per month."""
    prompted_monthly: float | None = None
    fine_tuned_monthly: float | None = None
    prompted_per_query: float | None = None
    fine_tuned_per_query: float | None = None
    prompted_tokens: TokenCost | None = None
    fine_tuned_tokens: TokenCost | None = None
    upfront: float = DEFAULT_UPFRONT
    """One-off cost of fine-tuning, paid before the first cheaper query."""
    maintenance_monthly: float = 0.0
    """Fine-tuned model's running overhead (monitoring, hosting, people), USD/month."""
    retraining_cost: float = 0.0
    retraining_every_months: float | None = None
    """Cadence of ``retraining_cost``; None means no retraining is planned."""
    horizon_months: int = DEFAULT_HORIZON_MONTHS
    """How far ahead cumulative savings are counted and pay-back is believed."""
    evidence: Evidence = field(default=TYPED, compare=False)
    """Where the volume and costs come from; not part of the scenario's identity."""

    def __post_init__(self) -> None:
        _require_non_negative("volume", self.volume)
        for name in ("prompted_monthly", "fine_tuned_monthly", "prompted_per_query", "fine_tuned_per_query"):
            value = getattr(self, name)
            if value is not None:
                _require_non_negative(name, value)
        for name in ("upfront", "maintenance_monthly", "retraining_cost"):
            _require_non_negative(name, getattr(self, name))
        for side in ARM_NAMES:
            given = [f"{side}_{kind}" for kind in ("monthly", "per_query", "tokens")
                     if getattr(self, f"{side}_{kind}") is not None]
            if len(given) != 1:
                found = ", ".join(given) if given else "none"
                raise ValueError(f"give exactly one {side} cost (monthly, per_query or tokens); got {found}")
        if self.retraining_every_months is not None and self.retraining_every_months <= 0:
            raise ValueError(f"retraining_every_months must be > 0, got {self.retraining_every_months}")
        if self.retraining_cost > 0 and self.retraining_every_months is None:
            raise ValueError("retraining_cost needs retraining_every_months (how often it is paid)")
        if self.horizon_months <= 0:
            raise ValueError(f"horizon_months must be > 0, got {self.horizon_months}")

    @property
    def prompted_cost(self) -> float:
        """Prompting's USD per month: API fees only, it has no upfront or upkeep."""
        return _monthly(self.volume, self.prompted_monthly, self.prompted_per_query, self.prompted_tokens)

    @property
    def retraining_monthly(self) -> float:
        """Retraining spread evenly over its cadence, USD/month."""
        if self.retraining_every_months is None:
            return 0.0
        return self.retraining_cost / self.retraining_every_months

    @property
    def fine_tuned_cost(self) -> float:
        """Fine-tuning's USD per month: inference plus maintenance plus amortised retraining."""
        inference = _monthly(self.volume, self.fine_tuned_monthly, self.fine_tuned_per_query,
                             self.fine_tuned_tokens)
        return inference + self.maintenance_monthly + self.retraining_monthly


@dataclass(frozen=True)
class Investment:
    """The fine-tune's side of the break-even: what it costs, and the volume it must pay back at.

    A route's ``economics`` block in the policy (``from_policy``) or the same figures on a command
    line; ``scenario`` adds what each approach costs per query.
    """

    monthly_volume: float
    upfront: float = DEFAULT_UPFRONT
    maintenance_monthly: float = 0.0
    retraining_cost: float = 0.0
    retraining_every_months: float | None = None
    horizon_months: int = DEFAULT_HORIZON_MONTHS

    @classmethod
    def from_policy(cls, economics: Economics) -> Investment:
        return cls(monthly_volume=economics.projected_monthly_queries, upfront=economics.upfront_usd,
                   maintenance_monthly=economics.maintenance_monthly_usd, retraining_cost=economics.retraining_usd,
                   retraining_every_months=economics.retraining_every_months,
                   horizon_months=math.ceil(economics.horizon_months))

    def scenario(self, prompted_per_query: float, fine_tuned_per_query: float, evidence: Evidence) -> Scenario:
        return Scenario(volume=self.monthly_volume, prompted_per_query=prompted_per_query,
                        fine_tuned_per_query=fine_tuned_per_query, upfront=self.upfront,
                        maintenance_monthly=self.maintenance_monthly, retraining_cost=self.retraining_cost,
                        retraining_every_months=self.retraining_every_months,
                        horizon_months=self.horizon_months, evidence=evidence)


@dataclass(frozen=True)
class BreakEven:
    """The answer for one scenario."""

    scenario: Scenario
    prompted_monthly: float
    fine_tuned_monthly: float
    savings_monthly: float
    """Prompted minus fine-tuned, USD/month; <= 0 means fine-tuning never recoups its upfront."""
    months_to_break_even: float | None
    """``upfront / savings_monthly``; None when it never breaks even."""
    cumulative_savings_at_horizon: float
    """Net USD after ``horizon_months``: savings so far minus the upfront (negative: still in the hole)."""
    verdict: str


def break_even(scenario: Scenario) -> BreakEven:
    """Months until fine-tuning's monthly savings repay its upfront cost, and what to do about it."""
    prompted = scenario.prompted_cost
    fine_tuned = scenario.fine_tuned_cost
    savings = prompted - fine_tuned
    months = scenario.upfront / savings if savings > 0 else None
    cumulative = savings * scenario.horizon_months - scenario.upfront
    return BreakEven(scenario=scenario, prompted_monthly=prompted, fine_tuned_monthly=fine_tuned,
                     savings_monthly=savings, months_to_break_even=months,
                     cumulative_savings_at_horizon=cumulative,
                     verdict=_verdict(months, scenario.horizon_months))


def _verdict(months: float | None, horizon: int) -> str:
    """Plain advice from the pay-back time, checked in this order.

    * never (savings <= 0): "never pays off";
    * beyond the horizon: nobody should bet on volume that far out, so stay with prompting;
    * <= FAST_PAYBACK_MONTHS: fine-tune, naming the whole month it pays back before;
    * <= YEAR_MONTHS: worth it if the volume holds for a year;
    * otherwise (a year to the horizon): marginal, only on committed volume.
    """
    if months is None:
        return "never pays off"
    if months > horizon:
        return "pays off after the horizon: stay with prompting"
    if months <= FAST_PAYBACK_MONTHS:
        under = math.floor(months) + 1
        return f"fine-tune: pays back in under {under} month{'s' if under != 1 else ''}"
    if months <= YEAR_MONTHS:
        return "pays off within a year if volume holds"
    return f"marginal: pays off within {horizon} months only if volume is committed"


@dataclass(frozen=True)
class StatedMonths:
    """A break-even figure as the guide wrote it: a whole number of months, or "under N"."""

    months: float
    under: bool = False

    def __str__(self) -> str:
        text = f"{self.months:g} month{'s' if self.months != 1 else ''}"
        return f"under {text}" if self.under else text

    def agrees_with(self, computed: float | None) -> bool:
        """Whether the stated figure is the computed one up to the guide's rounding.

        The guide writes whole months, sometimes truncated (9.6 as "9"),
        sometimes rounded (4.8 as "5"), so anything less than a month away
        agrees; "under N" agrees when the computed figure is below N.
        """
        if computed is None:
            return False
        if self.under:
            return computed < self.months
        return abs(computed - self.months) < 1


@dataclass(frozen=True)
class GuideScenario:
    """One of the guide's worked cases and the break-even figure it printed."""

    scenario: Scenario
    stated: StatedMonths

    def note(self, result: BreakEven) -> str | None:
        """A correction when ``result`` is this case and the guide's figure is wrong, else None.

        Only an unchanged case is compared: with another upfront, maintenance
        or volume the guide's figure is not a claim about it (the horizon does
        not change the break-even, so it may differ).
        """
        same = replace(result.scenario, horizon_months=self.scenario.horizon_months) == self.scenario
        if not same or self.stated.agrees_with(result.months_to_break_even):
            return None
        s = self.scenario
        computed = ("never" if result.months_to_break_even is None
                    else f"{result.months_to_break_even:.1f} months")
        return (f"the guide says {self.stated} at {_number(s.volume)} queries/month; "
                f"{_number(s.upfront)} / ({_number(result.prompted_monthly)} - "
                f"{_number(result.fine_tuned_monthly)}) = {computed}")


def _monthly(volume: float, monthly: float | None, per_query: float | None, tokens: TokenCost | None) -> float:
    if monthly is not None:
        return monthly
    if per_query is not None:
        return volume * per_query
    assert tokens is not None  # Scenario.__post_init__ guarantees one source
    return volume * tokens.per_query


def _require_non_negative(name: str, value: float) -> None:
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"{name} must be >= 0, got {value}")


def _number(value: float) -> str:
    """Thousands separators; decimals only when there are cents."""
    return f"{value:,.0f}" if value == round(value) else f"{value:,.2f}"


def _guide(volume: int, prompted: int, fine_tuned: int, stated: StatedMonths) -> GuideScenario:
    return GuideScenario(Scenario(volume=volume, prompted_monthly=prompted, fine_tuned_monthly=fine_tuned),
                         stated)


GUIDE_SCENARIOS: tuple[GuideScenario, ...] = (
    _guide(10_000, 300, 150, StatedMonths(40)),
    _guide(50_000, 1_500, 250, StatedMonths(9)),
    _guide(100_000, 3_000, 500, StatedMonths(5)),
    _guide(500_000, 15_000, 2_500, StatedMonths(1, under=True)),
)
"""The guide's "Break-Even Analysis by Volume": $12,000 upfront, monthly costs as it gives them."""
