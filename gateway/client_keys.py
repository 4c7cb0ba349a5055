"""The client keys in force, and a structured keys file re-read while the gateway runs.

A key revoked with ``hybrid-gateway keys revoke`` (or a limit changed in the file) takes effect within the
reload interval, on every worker and replica that reads the file, with no restart. What the settings list
outside the file (``HYBRID_GATEWAY_API_KEYS``, a plain keys file) stays as it was read at start. A file that
cannot be read, does not parse, or would leave no key at all never replaces the keys in force: the old ones
stay, and the failure is logged and counted, as a bad policy file is.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gateway.api_keys import ApiKey, KeysFileError, parse_keys

log = logging.getLogger("hybrid_gateway.keys")


@dataclass(frozen=True)
class KeySet:
    """One consistent view: every accepted digest, and the named keys among them by digest."""

    digests: frozenset[str]
    named: dict[str, ApiKey]


class ClientKeys:
    """``current`` is swapped whole by ``reload``, so a request sees one key set from start to end."""

    def __init__(self, digests: frozenset[str], named: tuple[ApiKey, ...], file: Path | None) -> None:
        self._fixed = digests - {key.digest for key in named}  # the keys from outside the file
        self._file = file
        self._seen = self._stamp()
        self.current = KeySet(digests, {key.digest: key for key in named})

    def _stamp(self) -> tuple[int, int] | None:
        if self._file is None:
            return None
        try:
            stat = self._file.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def reload(self) -> bool | None:
        """Re-read the file if it changed: True when the new keys are in force, False when they were refused
        (the old ones stay), None when nothing changed."""
        stamp = self._stamp()
        if self._file is None or stamp == self._seen:
            return None
        self._seen = stamp
        try:
            named = parse_keys(self._file.read_text(encoding="utf-8"), str(self._file)).live()
        except (OSError, KeysFileError) as exc:
            log.error("keys file %s not reloaded, the keys in force stay: %s", self._file, exc)
            return False
        digests = self._fixed | {key.digest for key in named}
        if not digests:
            log.error("keys file %s now holds no key: refusing to turn authentication off; the keys in force stay",
                      self._file)
            return False
        self.current = KeySet(digests, {key.digest: key for key in named})
        log.info("keys file %s reloaded: %d key(s), %d named", self._file, len(digests), len(named))
        return True
