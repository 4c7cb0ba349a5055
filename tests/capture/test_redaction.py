"""Each kind of secret in a set of examples is removed before storage; ordinary numbers and words stay."""

from __future__ import annotations

import pytest

from gateway.capture import Redactor
from policies import Redaction

FULLWIDTH = str.maketrans("0123456789", "".join(chr(0xFF10 + digit) for digit in range(10)))
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + digit) for digit in range(10)))  # digits too

REMOVED = [
    ("email", "Write to jane.doe+billing@example.co.uk about it", "jane.doe+billing@example.co.uk"),
    ("email", "cc: ops@lumen-freight.io", "ops@lumen-freight.io"),
    ("phone", "Call me on +1 (415) 555-0132 tomorrow", "+1 (415) 555-0132"),
    ("phone", "UK office: 020 7946 0958", "020 7946 0958"),
    ("phone", "mobile +44 7700 900123", "+44 7700 900123"),
    ("card", "My card is 4111 1111 1111 1111, exp 12/29", "4111 1111 1111 1111"),
    ("card", "charge 5500-0000-0000-0004 please", "5500-0000-0000-0004"),
    ("card", "amex 378282246310005", "378282246310005"),
    ("api_key", "my key is sk-proj-Ab3dEf6hIj9kLm2nOp5q and it fails", "sk-proj-Ab3dEf6hIj9kLm2nOp5q"),
    ("api_key", "anthropic sk-ant-api03-abcdefghijklmnop0123", "sk-ant-api03-abcdefghijklmnop0123"),
    ("api_key", "aws AKIAIOSFODNN7EXAMPLE in the config", "AKIAIOSFODNN7EXAMPLE"),
    ("api_key", "token ghp_16C7e42F292c6912E7710c838347Ae178B4a", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("api_key", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"),
    ("api_key", "slack xoxb-1234567890 here", "xoxb-1234567890"),  # the shortest key: 15 characters
    ("api_key", "Authorization: bearer a.b.c.d.e.f.g.h.i", "bearer a.b.c.d.e.f.g.h.i"),  # no long run in it
    ("card", *(text.translate(FULLWIDTH) for text in ("card 4111 1111 1111 1111 on file", "4111 1111 1111 1111"))),
    ("phone", *(text.translate(ARABIC_INDIC) for text in ("call +44 7700 900123 now", "+44 7700 900123"))),
    ("api_key", "secret=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
     "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"),
]

KEPT = [
    "The shipment left on 2026-12-04 at 10:30 and costs 1,250.00 USD.",
    "Python 3.11.7 on build 20261204; order #4521, 3 pallets of 120 kg.",
    "Card ending 1111 was declined.",  # a fragment is no card number
    "Tracking 1234 5678 9012 3456",  # 16 digits: too many for a phone, and they fail the Luhn check
    "Refunds take 5-7 business days; call the desk.",
]


@pytest.mark.parametrize(("kind", "text", "secret"), REMOVED)
def test_each_kind_of_secret_is_replaced_by_its_marker(kind: str, text: str, secret: str) -> None:
    redacted = Redactor()(text)
    assert secret not in redacted
    assert f"[REDACTED:{kind}]" in redacted
    assert redacted == text.replace(secret, f"[REDACTED:{kind}]")  # nothing else is touched


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_numbers_dates_and_words_stay(text: str) -> None:
    assert Redactor()(text) == text


def test_a_routes_own_patterns_run_after_the_built_in_ones() -> None:
    redactor = Redactor((Redaction(name="customer", pattern=r"\bCUST-\d{6}\b"),))
    assert redactor("customer CUST-004211 at ops@example.com") == "customer [REDACTED:customer] at [REDACTED:email]"
    assert Redactor()("customer CUST-004211") == "customer CUST-004211"
