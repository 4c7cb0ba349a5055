"""What the gateway accepts at its edge: who may connect unauthenticated, which Host names, how big and how slow.

One frozen object inside ``Settings`` (``settings.edge``). Every limit has a
default that an ordinary OpenAI client never meets (docs/api.md lists them
with the error each one answers), and each is a ``HYBRID_GATEWAY_*`` variable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Names of loopback a browser may use. IP literals need no entry: see ``gateway.edge.guard``.
LOOPBACK_NAMES = frozenset({"localhost"})
ANY_HOST = "*"


def parse_hosts(raw: str) -> frozenset[str] | None:
    """A comma list of host names (``*.example.com`` wildcards allowed); None when it allows any (``*``)."""
    names = frozenset(name.strip().lower().rstrip(".") for name in raw.split(",") if name.strip())
    if ANY_HOST in names:
        return None
    return names or LOOPBACK_NAMES


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"HYBRID_GATEWAY_{name} must be > 0, got {value}")


@dataclass(frozen=True)
class EdgeSettings:
    allow_unauthenticated: bool = False
    """Listen on a non-loopback address without client keys (``serve`` refuses otherwise)."""
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES
    """Host header names answered (None: any); against DNS rebinding of a gateway without keys."""
    monitoring_needs_key: bool = True
    """With client keys configured, ``/metrics`` and ``/dashboard`` need one too."""
    max_json_depth: int = 64
    """Deepest nesting of arrays/objects accepted in a JSON body."""
    max_header_bytes: int = 32 * 1024
    """Request line and headers together."""
    max_headers: int = 100
    header_timeout_s: float = 10.0
    """From a connection's (or request's) first byte until its headers are complete."""
    body_timeout_s: float = 60.0
    """From the end of the headers until the whole body has arrived."""
    max_concurrency: int = 512
    """Requests in flight in one process (streams included); 0: no limit."""

    def __post_init__(self) -> None:
        for name, value in (("MAX_JSON_DEPTH", self.max_json_depth), ("MAX_HEADER_BYTES", self.max_header_bytes),
                            ("MAX_HEADERS", self.max_headers), ("HEADER_TIMEOUT_S", self.header_timeout_s),
                            ("BODY_TIMEOUT_S", self.body_timeout_s)):
            _positive(name, value)
        if self.max_concurrency < 0:
            raise ValueError(f"HYBRID_GATEWAY_MAX_CONCURRENCY must be >= 0, got {self.max_concurrency}")

    @classmethod
    def from_env(cls, env: Callable[[str, str], str], flag: Callable[[str, bool], bool]) -> EdgeSettings:
        """Read through ``Settings``' own helpers, so every variable has the ``HYBRID_GATEWAY_`` prefix."""
        default = cls()
        return cls(
            allow_unauthenticated=flag("ALLOW_UNAUTHENTICATED", False),
            allowed_hosts=parse_hosts(env("ALLOWED_HOSTS", "")),
            monitoring_needs_key=flag("MONITORING_NEEDS_KEY", True),
            max_json_depth=int(env("MAX_JSON_DEPTH", str(default.max_json_depth))),
            max_header_bytes=int(env("MAX_HEADER_BYTES", str(default.max_header_bytes))),
            max_headers=int(env("MAX_HEADERS", str(default.max_headers))),
            header_timeout_s=float(env("HEADER_TIMEOUT_S", str(default.header_timeout_s))),
            body_timeout_s=float(env("BODY_TIMEOUT_S", str(default.body_timeout_s))),
            max_concurrency=int(env("MAX_CONCURRENCY", str(default.max_concurrency))),
        )
