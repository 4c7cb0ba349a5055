"""Remove secrets and personal data from captured text before it is stored.

Built in, in the order applied: API keys and tokens (provider-shaped keys, bearer
tokens, long mixed letter-and-digit strings), card numbers (13 to 19 digits that
pass the Luhn check, so order numbers and timestamps stay), e-mail addresses, and
phone numbers (9 to 15 digits in a phone's shape, so dates and amounts stay). A
route adds its own patterns under ``capture.redact``. Each match becomes
``[REDACTED:<kind>]``, so an example still reads naturally and the dataset shows
what was removed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from policies import Redaction

_KEY = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_\-]{16,}"  # OpenAI, Anthropic
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_\-]{35}"  # Google
    r"|[A-Za-z0-9_\-]{32,})"  # any long token: a key when it mixes letters and digits (``_is_key``)
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*")
_KEY_PREFIXES = ("sk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox", "AIza")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w+])\+?(?:\d[ .\-]?){0,3}(?:\(\d{1,4}\)[ .\-]?)?\d{2,4}(?:[ .\-]?\d{2,4}){2,4}(?!\w)")

# Cheap tests that let a text skip a pattern it cannot match: most prompts hold no long token, no "@",
# and fewer than 9 digits, and these run at C speed where the patterns would scan position by position.
_LONG_RUN = re.compile(r"[A-Za-z0-9_\-]{16,}")
_NO_DIGITS = str.maketrans("", "", "0123456789")


def _may_hold_key(text: str) -> bool:
    return _LONG_RUN.search(text) is not None


def _may_hold_email(text: str) -> bool:
    return "@" in text


def _may_hold_number(text: str) -> bool:
    return len(text) - len(text.translate(_NO_DIGITS)) >= 9  # a phone has 9+ digits, a card 13+


def _luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _digits(text: str) -> str:
    return "".join(char for char in text if char.isdigit())


def _is_card(found: str) -> bool:
    digits = _digits(found)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _is_phone(found: str) -> bool:
    return 9 <= len(_digits(found)) <= 15


def _is_key(found: str) -> bool:
    if found.startswith(_KEY_PREFIXES) or found[:6].lower() == "bearer":
        return True
    return any(char.isdigit() for char in found) and any(char.isalpha() for char in found)


def _always(found: str) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] = _always
    may_match: Callable[[str], bool] = bool  # a quick test first; ``bool``: any non-empty text may

    def apply(self, text: str) -> str:
        return self.pattern.sub(self._replacement, text) if self.may_match(text) else text

    def _replacement(self, found: re.Match[str]) -> str:
        return f"[REDACTED:{self.kind}]" if self.accept(found.group(0)) else found.group(0)


_BUILT_IN = (_Rule("api_key", _KEY, _is_key, _may_hold_key), _Rule("card", _CARD, _is_card, _may_hold_number),
             _Rule("email", _EMAIL, _always, _may_hold_email), _Rule("phone", _PHONE, _is_phone, _may_hold_number))
_CACHED_CHARS = 4096  # texts up to this long are remembered: an arm's system prompt comes back on every request


class Redactor:
    """The built-in rules and a route's own, compiled once per policy."""

    def __init__(self, custom: Sequence[Redaction] = ()) -> None:
        self._rules = _BUILT_IN + tuple(_Rule(rule.name, re.compile(rule.pattern)) for rule in custom)
        self._cached = functools.lru_cache(maxsize=512)(self._redact)

    def __call__(self, text: str) -> str:
        return self._cached(text) if len(text) <= _CACHED_CHARS else self._redact(text)

    def _redact(self, text: str) -> str:
        for rule in self._rules:
            text = rule.apply(text)
        return text
