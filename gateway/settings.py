"""Process settings, built once from the environment and never mutated.

``hybrid-gateway serve`` writes its flags into ``HYBRID_GATEWAY_*`` variables so
every uvicorn worker process builds the same ``Settings`` from its environment.
API keys are kept only as SHA-256 digests; a structured keys file (``.yaml``) also names them and gives each
its limits (``gateway.api_keys``, enforced by ``gateway.keys``).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from gateway.api_keys import DIGEST_PREFIX, ApiKey, KeysFileError, is_structured, parse_keys
from gateway.client_keys import ClientKeys
from gateway.edge_settings import EdgeSettings
from gateway.limits import Limits
from policies import DEFAULT_POLICIES

_PREFIX = "HYBRID_GATEWAY_"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(_PREFIX + name, default)


def _flag(name: str, default: bool) -> bool:
    value = _env(name, "1" if default else "0").strip().lower()
    return value in ("1", "true", "yes", "on")


def digest_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class SettingsError(ValueError):
    """A setting that cannot be meant as given; ``serve`` prints it and exits 2."""


def _keys(entries: list[str]) -> list[str]:
    return [entry for entry in (e.strip() for e in entries) if entry and not entry.startswith("#")]


def _filed_keys(variable: str, key_file: str) -> tuple[list[str], tuple[ApiKey, ...]]:
    """The entries of ``<variable>_FILE``: plain (one key or ``sha256:`` digest a line), or, for client keys in
    a ``.yaml`` file, named keys with limits (their digests and the keys themselves)."""
    path = Path(key_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{_PREFIX}{variable}_FILE={key_file}: cannot read it ({exc.strerror}).") from exc
    if variable != "API_KEYS" or not is_structured(path):
        return _keys(text.splitlines()), ()
    try:
        named = parse_keys(text, key_file).live()
    except KeysFileError as exc:
        raise SettingsError(f"{_PREFIX}{variable}_FILE: {exc}") from exc
    return [DIGEST_PREFIX + key.digest for key in named], named


def _key_digests(variable: str) -> tuple[frozenset[str], tuple[ApiKey, ...]]:
    """Keys from ``<variable>`` (comma list) and/or ``<variable>_FILE`` (see ``_filed_keys``), and the named ones.

    ``sha256:<hex>`` entries are digests already. A key file, or a non-blank list, that holds no
    key (a structured file: none that is not revoked) is refused: reading it as "no keys" would silently
    turn authentication off.
    """
    raw_keys, key_file = _env(variable), _env(variable + "_FILE")
    listed = _keys(raw_keys.split(","))
    named: tuple[ApiKey, ...] = ()
    if raw_keys.strip() and not listed:
        raise SettingsError(f"{_PREFIX}{variable} is set but holds no key: unset it to run without keys.")
    if key_file:
        filed, named = _filed_keys(variable, key_file)
        if not filed:
            raise SettingsError(f"{_PREFIX}{variable}_FILE={key_file} holds no key (only blank lines, comments or "
                                f"revoked keys): refusing to start with authentication off; unset it to run "
                                f"without keys.")
        listed += filed
    return frozenset(entry.removeprefix(DIGEST_PREFIX).lower() if entry.startswith(DIGEST_PREFIX)
                     else digest_key(entry) for entry in listed), named


@dataclass(frozen=True)
class EconomicsSettings:
    """How much live traffic the break-even needs before it extrapolates (see docs/economics.md)."""

    window_s: float = 7 * 86_400
    """The sliding window the observed volume and costs are read over."""
    min_observed_s: float = 3_600
    """Less observed time than this is not extrapolated to a month."""
    min_requests: int = 500
    """Fewer successful requests in the window than this are not extrapolated either."""
    min_prompted_requests: int = 50
    """Prompted-arm requests needed before prompting's real cost per query counts as known."""

    def __post_init__(self) -> None:
        if not self.window_s > 0:
            raise ValueError(f"HYBRID_GATEWAY_ECONOMICS_WINDOW_S must be > 0, got {self.window_s}")
        if self.min_observed_s < 0 or self.min_requests < 0 or self.min_prompted_requests < 0:
            raise ValueError("the economics minimums must be >= 0")


@dataclass(frozen=True)
class Settings:
    policies_dir: Path = DEFAULT_POLICIES
    data_dir: Path = Path("var")
    api_key_digests: frozenset[str] = field(default_factory=frozenset, repr=False)
    api_keys: tuple[ApiKey, ...] = field(default=(), repr=False)
    """The named client keys (a structured keys file): their digests are among ``api_key_digests``."""
    api_keys_file: Path | None = None
    """The structured keys file the named keys came from: re-read while running (``client_keys``)."""
    admin_key_digests: frozenset[str] = field(default_factory=frozenset, repr=False)
    max_body_bytes: int = 4 * 1024 * 1024
    reload_interval_s: float = 1.0
    access_log: bool = False
    chroma_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "hg:"
    database_url: str | None = field(default=None, repr=False)  # PostgreSQL for captures; None: SQLite under data_dir
    economics: EconomicsSettings = field(default_factory=EconomicsSettings)
    edge: EdgeSettings = field(default_factory=EdgeSettings)
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.api_keys:  # a named key is a client key, however the settings were built
            object.__setattr__(self, "api_key_digests",
                               self.api_key_digests | {key.digest for key in self.api_keys})

    @cached_property
    def client_keys(self) -> ClientKeys:
        """The client keys in force: these settings' at first, then as the keys file says."""
        return ClientKeys(self.api_key_digests, self.api_keys, self.api_keys_file)

    @classmethod
    def from_env(cls) -> Settings:
        api_key_digests, api_keys = _key_digests("API_KEYS")
        key_file = _env("API_KEYS_FILE")
        return cls(
            policies_dir=Path(_env("POLICIES", str(DEFAULT_POLICIES))),
            data_dir=Path(_env("DATA_DIR", "var")),
            api_key_digests=api_key_digests,
            api_keys=api_keys,
            api_keys_file=Path(key_file) if key_file and is_structured(Path(key_file)) else None,
            admin_key_digests=_key_digests("ADMIN_KEYS")[0],
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(4 * 1024 * 1024))),
            reload_interval_s=float(_env("RELOAD_INTERVAL_S", "1.0")),
            access_log=_flag("ACCESS_LOG", True),
            chroma_url=_env("CHROMA_URL") or None,
            redis_url=_env("REDIS_URL") or None,
            redis_prefix=_env("REDIS_PREFIX", "hg:"),
            database_url=_env("DATABASE_URL") or None,
            economics=EconomicsSettings(
                window_s=float(_env("ECONOMICS_WINDOW_S", str(EconomicsSettings.window_s))),
                min_observed_s=float(_env("ECONOMICS_MIN_OBSERVED_S", str(EconomicsSettings.min_observed_s))),
                min_requests=int(_env("ECONOMICS_MIN_REQUESTS", str(EconomicsSettings.min_requests))),
                min_prompted_requests=int(_env("ECONOMICS_MIN_PROMPTED_REQUESTS",
                                               str(EconomicsSettings.min_prompted_requests)))),
            edge=EdgeSettings.from_env(_env, _flag),
            limits=Limits.from_env(_env),
        )

    def key_allowed(self, presented: str, *, admin: bool = False) -> bool:
        """Compare the presented key's digest with every configured digest in constant time."""
        return self.matching_digest(presented, admin=admin) is not None

    def matching_digest(self, presented: str, *, admin: bool = False) -> str | None:
        """The configured digest the presented key has, or None; every digest is compared, in constant time."""
        candidate = digest_key(presented)
        matched = None
        for digest in self.admin_key_digests if admin else self.client_keys.current.digests:
            if hmac.compare_digest(candidate, digest):
                matched = digest
        return matched

    def named_key(self, digest: str) -> ApiKey | None:
        """The named key (with its limits) whose digest this is; None for a key of the plain list or file."""
        return self.client_keys.current.named.get(digest)
