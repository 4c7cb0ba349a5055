"""Sticky A/B variant assignment without shared state.

A keyed request's variant is a pure function of the experiment name and its key:
sha256 of the pair, read as a uniform number in [0, 1), mapped through the cumulative
normalised weights in the policy's declared order. Every replica and every restart
therefore agrees without coordination, and a user stays in one variant for the whole
experiment. sha256 rather than Python's ``hash()``, which is salted per process.

Including the experiment name in the hash keeps experiments independent: the users
in variant B of one experiment are not the same users as in variant B of the next.

Changing a variant's weight or order moves some users between variants; the
experiment report should be read per policy fingerprint when that happens.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from policies.schema import Experiment

SESSION_HEADER = "x-session-id"
_HEADER_PREFIX = "header:"
_FRACTION_BITS = 53  # a float's mantissa: every value k / 2**53 is exact


@dataclass(frozen=True)
class Assignment:
    """Which variant of which experiment a request runs, and how it got there.

    ``keyed`` is False when the variant was not derived from a key (no key: drawn at
    random, so not sticky; or forced), so the report can tell sticky traffic apart.
    ``forced`` marks a variant chosen by the caller through an allowed override.
    """

    experiment: str
    variant: str
    keyed: bool
    forced: bool


def assign(
    experiment_name: str,
    experiment: Experiment,
    key: str | None,
    *,
    now: datetime | None = None,
    forced: str | None = None,
    rng: random.Random | None = None,
) -> Assignment | None:
    """The variant for one request, or None while the experiment is outside its window.

    A forced variant is checked before the window so a bad override is always a client
    error (ValueError, which the gateway turns into a 400), whether or not the
    experiment is running. An empty key counts as no key: lumping every request
    without a user into one bucket would bias that variant.
    """
    if forced is not None:
        _check_forced(experiment_name, experiment, forced)
    if not is_active(experiment, now):
        return None
    if forced is not None:
        return Assignment(experiment_name, forced, keyed=False, forced=True)
    if key:
        return Assignment(experiment_name, _pick(experiment, unit_hash(experiment_name, key)), keyed=True,
                          forced=False)
    draw = rng.random() if rng is not None else random.random()
    return Assignment(experiment_name, _pick(experiment, draw), keyed=False, forced=False)


def is_active(experiment: Experiment, now: datetime | None = None) -> bool:
    """Whether ``now`` lies in [start, end); naive datetimes (policy or caller) mean UTC."""
    moment = _utc(now) if now is not None else datetime.now(UTC)
    if experiment.start is not None and moment < _utc(experiment.start):
        return False
    return experiment.end is None or moment < _utc(experiment.end)


def unit_hash(experiment_name: str, key: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment name, key), identical in every process.

    The name is length-prefixed so no (name, key) pair can collide with another by
    shifting characters across the boundary.
    """
    material = f"{len(experiment_name)}:{experiment_name}{key}".encode()
    digest = hashlib.sha256(material).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _FRACTION_BITS)) / float(1 << _FRACTION_BITS)


def experiment_key(experiment: Experiment, body_user: str | None, headers: Mapping[str, str]) -> str | None:
    """The request's assignment key as the experiment's ``key`` setting defines it, or None.

    Header names are matched case-insensitively because HTTP says so and because plain
    dicts (tests, internal callers) are not case-insensitive like Starlette's Headers.
    Blank values count as missing.
    """
    kind = experiment.key
    if kind == "user":
        value = body_user
    elif kind == "session":
        value = _header(headers, SESSION_HEADER)
    elif kind.startswith(_HEADER_PREFIX):
        value = _header(headers, kind[len(_HEADER_PREFIX):])
    else:  # the schema's pattern rules this out; fail loudly if it ever changes
        raise ValueError(f"unknown experiment key kind {kind!r}")
    value = value.strip() if value is not None else None
    return value or None


def _pick(experiment: Experiment, unit: float) -> str:
    """Map a number in [0, 1) through the cumulative normalised weights, in declared order."""
    total = sum(variant.weight for variant in experiment.variants.values())
    cumulative = 0.0
    names = list(experiment.variants)
    for name in names:
        cumulative += experiment.variants[name].weight / total
        if unit < cumulative:
            return name
    return names[-1]  # rounding left the sum a hair below 1


def _check_forced(experiment_name: str, experiment: Experiment, forced: str) -> None:
    if not experiment.allow_override:
        raise ValueError(f"experiment '{experiment_name}' does not allow forcing a variant")
    if forced not in experiment.variants:
        known = ", ".join(experiment.variants)
        raise ValueError(f"experiment '{experiment_name}' has no variant '{forced}' (variants: {known})")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    value = headers.get(wanted)
    if value is not None:
        return value
    for header, candidate in headers.items():
        if header.lower() == wanted:
            return candidate
    return None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
