"""Process settings, built once from the environment and never mutated.

``hybrid-gateway serve`` writes its flags into ``HYBRID_GATEWAY_*`` variables so
every uvicorn worker process builds the same ``Settings`` from its environment.
API keys are kept only as SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

_PREFIX = "HYBRID_GATEWAY_"
DEFAULT_POLICIES = Path(__file__).resolve().parent.parent / "policies" / "default"


def _env(name: str, default: str = "") -> str:
    return os.environ.get(_PREFIX + name, default)


def _flag(name: str, default: bool) -> bool:
    value = _env(name, "1" if default else "0").strip().lower()
    return value in ("1", "true", "yes", "on")


def digest_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _key_digests(raw_keys: str, key_file: str) -> frozenset[str]:
    """Keys from a comma list and/or a file (one per line); ``sha256:<hex>`` entries are digests already."""
    entries = [k.strip() for k in raw_keys.split(",")]
    if key_file:
        entries += [line.strip() for line in Path(key_file).read_text(encoding="utf-8").splitlines()]
    digests = set()
    for entry in entries:
        if not entry or entry.startswith("#"):
            continue
        digests.add(entry.removeprefix("sha256:").lower() if entry.startswith("sha256:") else digest_key(entry))
    return frozenset(digests)


@dataclass(frozen=True)
class Settings:
    policies_dir: Path = DEFAULT_POLICIES
    data_dir: Path = Path("var")
    api_key_digests: frozenset[str] = field(default_factory=frozenset, repr=False)
    admin_key_digests: frozenset[str] = field(default_factory=frozenset, repr=False)
    max_body_bytes: int = 4 * 1024 * 1024
    reload_interval_s: float = 1.0
    access_log: bool = False
    chroma_url: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "hg:"

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            policies_dir=Path(_env("POLICIES", str(DEFAULT_POLICIES))),
            data_dir=Path(_env("DATA_DIR", "var")),
            api_key_digests=_key_digests(_env("API_KEYS"), _env("API_KEYS_FILE")),
            admin_key_digests=_key_digests(_env("ADMIN_KEYS"), _env("ADMIN_KEYS_FILE")),
            max_body_bytes=int(_env("MAX_BODY_BYTES", str(4 * 1024 * 1024))),
            reload_interval_s=float(_env("RELOAD_INTERVAL_S", "1.0")),
            access_log=_flag("ACCESS_LOG", True),
            chroma_url=_env("CHROMA_URL") or None,
            redis_url=_env("REDIS_URL") or None,
            redis_prefix=_env("REDIS_PREFIX", "hg:"),
        )

    def key_allowed(self, presented: str, *, admin: bool = False) -> bool:
        """Compare the presented key's digest with every configured digest in constant time."""
        candidate = digest_key(presented)
        allowed = False
        for digest in self.admin_key_digests if admin else self.api_key_digests:
            allowed |= hmac.compare_digest(candidate, digest)
        return allowed
