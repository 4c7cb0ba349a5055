"""Remove secrets and personal data from captured text before it is stored.

Built in, in the order applied: API keys and tokens (provider-shaped keys, bearer
tokens, long mixed letter-and-digit strings), card numbers (13 to 19 digits that
pass the Luhn check, so order numbers and timestamps stay), e-mail addresses, and
phone numbers (9 to 15 digits in a phone's shape, so dates and amounts stay). A
route adds its own patterns under ``capture.redact``. Each match becomes
``[REDACTED:<kind>]``, so an example still reads naturally and the dataset shows
what was removed. A built-in pattern runs only on a text that holds what it needs
(a long run of key characters, an "@", enough digits), which a few byte scans tell:
most texts hold none, and the capture writer shares the gateway's CPU.
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

# What each built-in pattern needs, found in the text's UTF-8 bytes by ``bytes.translate`` and substring search
# (C loops, ~1 us for a 400-character text, where each pattern scans position by position at ~50 ns a
# character): a text that lacks it skips the pattern. The replacements only ever remove what a later pattern
# needs, so the scan of the original text holds for every pattern after it.
_KEY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_KEY_CLASS = bytes(0x61 if byte in _KEY_CHARS else 0x20 for byte in range(256))  # a key's characters -> "a"
_SHORTEST_KEY = b"a" * 15  # "xoxb-" and 10 more; every other key but a bearer token is longer
_DIGIT_CLASS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x78 for byte in range(256))  # ASCII digits -> "0"
_SEPARATORS = b" .-"  # deleted before the digits are classed: what may stand between a number's digits
_CARD_DIGITS = b"0" * 13  # the shortest card number
_PHONE_DIGITS = b"0" * 6  # a phone's groups after its optional prefix: three of 2 to 4 digits
_ASCII = bytes(range(128))
_DIGIT = re.compile(r"\d")


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

    def apply(self, text: str) -> str:
        return self.pattern.sub(self._replacement, text)

    def _replacement(self, found: re.Match[str]) -> str:
        return f"[REDACTED:{self.kind}]" if self.accept(found.group(0)) else found.group(0)


_API_KEY, _CARD_RULE, _EMAIL_RULE, _PHONE_RULE = (_Rule("api_key", _KEY, _is_key), _Rule("card", _CARD, _is_card),
                                                  _Rule("email", _EMAIL), _Rule("phone", _PHONE, _is_phone))
_CACHED_CHARS = 4096  # texts up to this long are remembered: an arm's system prompt comes back on every request


def _built_in(text: str) -> list[_Rule]:
    """The built-in rules that may match ``text``, in the order they apply."""
    raw = text.encode("utf-8", "surrogatepass")
    digits = raw.translate(_DIGIT_CLASS, _SEPARATORS)
    rules = [_API_KEY] if _SHORTEST_KEY in raw.translate(_KEY_CLASS) or b"bearer" in raw.lower() else []
    other_digits = not raw.isascii() and _has_other_digits(raw)  # the classes count ASCII digits only
    if other_digits or _CARD_DIGITS in digits:
        rules.append(_CARD_RULE)
    if b"@" in raw:
        rules.append(_EMAIL_RULE)
    if other_digits or (_PHONE_DIGITS in digits and digits.count(0x30) >= 9):  # a phone has 9 digits in all
        rules.append(_PHONE_RULE)
    return rules


def _has_other_digits(raw: bytes) -> bool:
    """Whether a text holds digits of another script (fullwidth, Arabic-Indic, ...), which the patterns'
    ``\\d`` matches too: its non-ASCII characters alone, usually a few quotes or accents, are searched."""
    return _DIGIT.search(raw.translate(None, _ASCII).decode("utf-8", "surrogatepass")) is not None


class Redactor:
    """The built-in rules and a route's own, compiled once per policy."""

    def __init__(self, custom: Sequence[Redaction] = ()) -> None:
        self._custom = tuple(_Rule(rule.name, re.compile(rule.pattern)) for rule in custom)
        self._cached = functools.lru_cache(maxsize=512)(self._redact)

    def __call__(self, text: str) -> str:
        return self._cached(text) if len(text) <= _CACHED_CHARS else self._redact(text)

    def _redact(self, text: str) -> str:
        for rule in _built_in(text):
            text = rule.apply(text)
        for rule in self._custom:
            text = rule.apply(text)
        return text
