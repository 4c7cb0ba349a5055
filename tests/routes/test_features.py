"""Feature extraction: named cues fire on the right text, hashing is stable, cost is bounded."""

from __future__ import annotations

import math
import re
import sys
import zlib

import numpy as np
import pytest

from routes._features import DENSE_NAMES, WINDOW, WordHashes, extract
from routes._messages import content_text, conversation, prompt_messages

BITS = 12


def _dense(prompt: str) -> dict[str, float]:
    feats = extract(conversation(prompt_messages(prompt)), BITS)
    return dict(zip(DENSE_NAMES, feats.dense.tolist(), strict=True))


def test_one_value_per_named_feature() -> None:
    feats = extract(conversation(prompt_messages("What is 2 + 2?")), BITS)
    assert feats.dense.shape == (len(DENSE_NAMES),)
    assert len(set(DENSE_NAMES)) == len(DENSE_NAMES)


def test_maths_prompt_lights_maths_cues() -> None:
    maths = _dense("Solve the equation x^2 + 3x - 4 = 0 and find the integral of $\\frac{1}{x}$.")
    prose = _dense("Tell me about the history of the Roman empire.")
    assert maths["math_operators"] > prose["math_operators"] == 0
    assert maths["cue_math"] > 0 and maths["latex"] > 0
    assert prose["cue_society"] > 0


def test_code_prompt_lights_code_cues() -> None:
    code = _dense("Fix this bug:\n```python\ndef f(x):\n    return {x: 1};\n```")
    assert code["code_fence"] == 1.0
    assert code["code_syntax"] > 0 and code["cue_code"] > 0


def test_multiple_choice_layout() -> None:
    feats = _dense("Which is NOT a prime?\nA. 2\nB. 3\nC. 4\nD. 5\nAnswer:")
    assert feats["choice_options"] == pytest.approx(math.log1p(4))
    assert feats["negation_caps"] > 0
    assert feats["question_marks"] == pytest.approx(math.log1p(1))


def test_conversation_depth_uses_earlier_turns() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "First question here"},
        {"role": "assistant", "content": "An answer."},
        {"role": "user", "content": "And then?"},
    ]
    conv = conversation(messages)
    assert conv.text == "And then?"
    assert conv.prior_turns == 1
    assert conv.context_chars == len("First question here") + len("An answer.")
    assert conv.has_system


def test_unigram_hash_is_stable_crc32() -> None:
    feats = extract(conversation(prompt_messages("hello")), BITS)
    assert feats.n_unigrams == 1
    assert int(feats.indices[0]) == zlib.crc32(b"hello") & ((1 << BITS) - 1)


def test_numbers_collapse_to_their_width() -> None:
    a = extract(conversation(prompt_messages("I have 12 apples")), BITS)
    b = extract(conversation(prompt_messages("I have 57 apples")), BITS)
    assert (
        a.indices[: a.n_unigrams + a.n_bigrams].tolist() == b.indices[: b.n_unigrams + b.n_bigrams].tolist()
    )


def test_hashed_groups_are_unit_norm_and_in_range() -> None:
    feats = extract(conversation(prompt_messages("A fairly ordinary sentence about cats and dogs.")), BITS)
    n_uni, n_bi, n_shared = feats.n_unigrams, feats.n_bigrams, feats.n_shared
    for group in (
        feats.values[:n_uni],
        feats.values[n_uni : n_uni + n_bi],
        feats.values[n_uni + n_bi : n_shared],
    ):
        assert float(np.sum(group**2)) == pytest.approx(1.0)
    assert feats.values[n_shared:].tolist() == feats.values[:n_shared].tolist()
    assert feats.indices.min() >= 0 and feats.indices.max() < 1 << BITS


def test_format_copy_depends_on_multiple_choice_layout() -> None:
    stem = "Which planet is largest?"
    free = extract(conversation(prompt_messages(stem)), BITS)
    exam = extract(conversation(prompt_messages(stem + "\nA. Mars\nB. Jupiter\nAnswer:")), BITS)
    n = free.n_unigrams
    assert free.indices[:n].tolist() == exam.indices[:n].tolist()  # shared copy: same words, same slots
    assert (
        free.indices[free.n_shared : free.n_shared + n].tolist()
        != exam.indices[exam.n_shared : exam.n_shared + n].tolist()
    )


def test_long_text_is_scanned_only_within_the_window() -> None:
    long_text = "word " * (WINDOW // 2)
    feats = extract(conversation(prompt_messages(long_text)), BITS)
    assert feats.n_unigrams <= WINDOW // 4
    assert _dense(long_text)["length_chars"] == pytest.approx(math.log1p(len(long_text)))


def test_word_hash_cache_is_bounded_by_bytes_and_starts_over_when_full() -> None:
    cache = WordHashes(max_bytes=4096, max_word_chars=8)
    assert cache["w0"] == zlib.crc32(b"w0")
    overhead = cache.bytes - sys.getsizeof("w0")  # what an entry costs beyond its word: the same for every entry
    assert overhead > 0
    words = [f"w{i}" for i in range(500)] + ["\U0001f600" * 8]  # 4-byte characters cost the most
    for word in words:
        assert cache[word] == zlib.crc32(word.encode("utf-8"))
        assert cache.bytes == sum(sys.getsizeof(w) + overhead for w in cache) <= cache.max_bytes
    assert 0 < len(cache) < len(words)  # it filled, emptied and refilled
    assert cache["w499"] == zlib.crc32(b"w499")


def test_long_words_are_hashed_each_time_not_cached() -> None:
    """An entry cap let long "words" (up to WINDOW characters each) hold hundreds of megabytes."""
    word = "q" * (WINDOW - 10)
    feats = extract(conversation(prompt_messages(f"define {word} please")), BITS)
    assert feats.indices[1] == zlib.crc32(word.encode()) & ((1 << BITS) - 1)
    cache = WordHashes(max_bytes=16 << 20, max_word_chars=32)
    assert (cache[word], cache["define"]) == (zlib.crc32(word.encode()), zlib.crc32(b"define"))
    assert word not in cache and "define" in cache
    assert cache.bytes <= cache.max_bytes


def test_content_parts_keep_only_text() -> None:
    parts = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this"},
    ]
    assert content_text(parts) == "describe\nthis"
    assert content_text(None) == ""
    assert content_text(42) == ""


@pytest.mark.parametrize("prompt", [
    "Tom has 12 apples, buys 3.5 more at 1/2 price (50%) then sells 1,200 -- how_many left?\nA. 1\nB. 2",
    "Zoë paid 12 € for 3½ croissants; then 2/3 of the 1,000.50 remaining?",  # not ASCII
])
def test_words_and_digit_counts_are_the_regex_definitions(prompt: str) -> None:
    """ASCII prompts take a byte-level path; both paths mean `\\w+` words and `\\d` runs of the lower-cased text."""
    lower = re.sub(r"\d+", "0", prompt.lower())
    feats = extract(conversation(prompt_messages(prompt)), BITS)
    dense = dict(zip(DENSE_NAMES, feats.dense.tolist(), strict=True))
    assert feats.words == tuple(re.findall(r"\w+", lower))
    assert dense["numbers"] == math.log1p(len(re.findall(r"\d+", prompt)))
    assert dense["quantities"] == math.log1p(len(re.findall(r"\d[\d,]*(?:\.\d+)?", prompt)))
    assert dense["decimals"] == math.log1p(len(re.findall(r"\d\.\d", prompt)))
    assert dense["digit_share"] == sum(c.isdigit() and c.isascii() for c in prompt) / len(prompt.encode())
