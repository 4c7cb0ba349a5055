"""Does a policy set need the built-in demo upstream? Asked by ``serve --demo auto`` and by ``eval`` alike."""

from __future__ import annotations

from urllib.parse import urlsplit

from policies import PolicySet

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def wants_demo(policy: PolicySet) -> bool:
    """True when some target is the demo provider on a loopback address (one this host must start)."""
    return any(target.provider == "demo" and target.api_base and urlsplit(target.api_base).hostname in LOOPBACK
               for target in policy.targets.values())
