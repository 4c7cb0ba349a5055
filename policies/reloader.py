"""Hot reload: keep serving the last good policy set while files change underneath.

Polling a fingerprint (names and bytes of the YAML files) works the same for a
local edit, an editor's atomic rename and a Kubernetes ConfigMap's symlink
swap, and costs a few stat/read calls per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from policies.loader import ModelCheck, PolicyIssue, PolicyLoadError, fingerprint, load_policies
from policies.schema import PolicySet

log = logging.getLogger("hybrid_gateway.policies")

ReloadResult = Literal["success", "failure", "unchanged"]


class PolicyHolder:
    """The running policy set; ``reload`` swaps it only for a valid one (``check_model`` as in load_policies)."""

    def __init__(self, directory: str | Path, on_reload: Callable[[ReloadResult], None] | None = None,
                 check_model: ModelCheck | None = None) -> None:
        self.directory = Path(directory)
        self._on_reload = on_reload or (lambda result: None)
        self._check_model = check_model
        self._current = load_policies(self.directory, check_model)
        _log_warnings(self._current)
        self.last_error: PolicyLoadError | None = None
        self._rejected = ""

    @property
    def current(self) -> PolicySet:
        return self._current

    def reload(self) -> ReloadResult:
        """Load the directory again; a failing directory never replaces the running policy."""
        try:
            seen = fingerprint(self.directory)
            if seen in (self._current.fingerprint, self._rejected):
                return "unchanged"
            candidate = load_policies(self.directory, self._check_model)
        except OSError as exc:
            return self._reject(PolicyLoadError([PolicyIssue(str(self.directory), 0, "", str(exc))]), "")
        except PolicyLoadError as exc:
            return self._reject(exc, seen)
        self._current = candidate
        self.last_error = None
        log.info("policies reloaded: fingerprint %s, %d routes, %d targets",
                 candidate.fingerprint, len(candidate.routes), len(candidate.targets))
        _log_warnings(candidate)
        self._on_reload("success")
        return "success"

    def _reject(self, error: PolicyLoadError, seen: str) -> ReloadResult:
        """Count and log a bad directory once per distinct content, not once per poll."""
        self._rejected = seen
        self.last_error = error
        log.error("policy reload rejected; keeping fingerprint %s:\n%s", self._current.fingerprint, error)
        self._on_reload("failure")
        return "failure"

    async def watch(self, interval_s: float = 1.0) -> None:
        """Reload whenever the files change; runs until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            await asyncio.to_thread(self.reload)


def _log_warnings(policy: PolicySet) -> None:
    for warning in policy.warnings:
        log.warning("policy warning: %s", warning)
