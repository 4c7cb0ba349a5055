"""Client keys as the keys file holds them: named keys with optional limits, read and written safely.

A structured keys file (``HYBRID_GATEWAY_API_KEYS_FILE`` ending in ``.yaml``/``.yml``) maps a key's *name*
(what metrics, the access log and the ledger show) to its entry; the key itself is never stored, only its
SHA-256 digest. ``KeysFile`` is the file as YAML holds it, validated with pydantic (``extra="forbid"``: a
misspelt ``rmp:`` is an error, not a key without a limit), each problem reported as
``file:line: yaml.path: message`` like the policy files'; ``ApiKey`` is one live entry as authentication
and the limits (``gateway.keys``) use it.

The gateway reads the file once at start (``gateway.settings``); ``hybrid-gateway keys`` rewrites it whole,
atomically (a temporary file renamed over it) and readable by its owner only, since the digests are still
worth guarding.
"""

from __future__ import annotations

import datetime
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from policies import YamlProblem, dotted, read_yaml

KEY_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A key name: a Prometheus label value and a Redis key part, so short and plain."""
DIGEST_PREFIX = "sha256:"

KeyName = Annotated[str, StringConstraints(pattern=KEY_NAME)]
RouteName = Annotated[str, StringConstraints(min_length=1)]


@dataclass(frozen=True)
class ApiKey:
    """A named key the gateway accepts: ``digest`` is its SHA-256 (hex); a limit left None is no limit.

    ``routes``: the public model names (routes, exposed targets) it may call; None: all of them."""

    name: str
    digest: str
    rpm: int | None = None
    tpm: int | None = None
    monthly_budget_usd: float | None = None
    routes: frozenset[str] | None = None

    @property
    def limited(self) -> bool:
        """Whether any request of this key has to be counted before it is admitted."""
        return self.rpm is not None or self.tpm is not None or self.monthly_budget_usd is not None

    def may_call(self, model: str) -> bool:
        return self.routes is None or model in self.routes


class KeyEntry(BaseModel):
    """One key under ``keys:``; its name is the mapping key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    rpm: int | None = Field(default=None, ge=1, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, description="tokens per minute (prompt and completion)")
    monthly_budget_usd: float | None = Field(default=None, ge=0, description="spend per calendar month (UTC)")
    routes: tuple[RouteName, ...] | None = Field(default=None, description="what the key may call; absent: all")
    created: datetime.date | None = None
    revoked: bool = False

    @field_validator("monthly_budget_usd")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("must be a finite number of dollars")
        return value

    @field_validator("routes")
    @classmethod
    def _some_routes(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list would let the key call nothing: list routes, or leave 'routes' out")
        return value

    def live(self, name: str) -> ApiKey:
        return ApiKey(name, self.digest.removeprefix(DIGEST_PREFIX), self.rpm, self.tpm, self.monthly_budget_usd,
                      frozenset(self.routes) if self.routes is not None else None)


class KeysFile(BaseModel):
    """A structured keys file (``HYBRID_GATEWAY_API_KEYS_FILE`` ending in ``.yaml`` or ``.yml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    keys: dict[KeyName, KeyEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _digests_unique(self) -> KeysFile:
        seen: dict[str, str] = {}
        for name, entry in self.keys.items():
            if entry.digest in seen:
                raise ValueError(f"keys {seen[entry.digest]!r} and {name!r} have the same digest: one key, two "
                                 "names would make its spend and limits ambiguous")
            seen[entry.digest] = name
        return self

    def live(self) -> tuple[ApiKey, ...]:
        """The keys the gateway accepts: every entry not revoked."""
        return tuple(entry.live(name) for name, entry in self.keys.items() if not entry.revoked)


STRUCTURED_SUFFIXES = (".yaml", ".yml")


class KeysFileError(ValueError):
    """A keys file that cannot be used; ``issues`` are its problems, each ``file:line: path: message``."""

    def __init__(self, issues: list[str]) -> None:
        self.issues = issues
        super().__init__("\n".join(issues))


def is_structured(path: Path) -> bool:
    """A ``.yaml``/``.yml`` keys file holds named keys with limits; any other is the plain one-key-a-line file."""
    return path.suffix.lower() in STRUCTURED_SUFFIXES


def parse_keys(text: str, file: str) -> KeysFile:
    """``text`` (the file's content) as a ``KeysFile``; ``KeysFileError`` listing every problem otherwise."""
    try:
        document = read_yaml(text)
    except YamlProblem as exc:
        where = f"{file}:{exc.line or 1}: " + (f"{exc.path}: " if exc.path else "")
        raise KeysFileError([where + exc.message]) from exc
    data: Any = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise KeysFileError([f"{file}:1: the file must be a mapping with 'version: 1' and 'keys'"])
    try:
        return KeysFile.model_validate(data)
    except ValidationError as exc:
        raise KeysFileError([
            f"{file}:{document.line_of(tuple(err['loc']))}: {dotted(err['loc']) or 'keys'}: {err['msg']}"
            for err in exc.errors(include_url=False)]) from exc


def load_keys(path: Path) -> KeysFile:
    """The keys file at ``path``; a file that does not exist yet is an empty one (``keys create`` makes it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return KeysFile()
    except OSError as exc:
        raise KeysFileError([f"{path}: cannot read it ({exc.strerror})"]) from exc
    return parse_keys(text, str(path))


def save_keys(path: Path, keys: KeysFile) -> None:
    """Write ``keys`` to ``path`` whole: a reader sees the old file or the new one, never half of either."""
    data = keys.model_dump(exclude_none=True)
    for entry in data["keys"].values():
        if not entry["revoked"]:
            del entry["revoked"]
        if "routes" in entry:
            entry["routes"] = list(entry["routes"])
    text = ("# Client keys of hybrid-gateway: digests only. Managed by `hybrid-gateway keys`; see docs/api.md.\n"
            + yaml.safe_dump(data, sort_keys=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
