"""The `fast` model's own word-piece split of printable ASCII gives the tokenizer's ids, and falls back to it."""

from __future__ import annotations

import random

import pytest

from routes._static import STATIC_PIECES, load_pieces, load_tokenizer


def _tokenizer_ids(text: str) -> list[int]:
    return list(load_tokenizer().encode(text, add_special_tokens=False).ids[:STATIC_PIECES])


@pytest.mark.parametrize("text", [
    "What is the refund policy for annual plans?",
    "Solve x^2+3x-4=0; then f(x) = (x_1 + x_2)/2 -- 12,345.67% of $8 @ [a]{b}|c~`d'e\"f",
    "snake_case __init__ CamelCaseWords HTTPServer iPhone12 3rd 2nd",
    "unaffable unbelievably antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "x" * 100 + " " + "y" * 101 + " ok",  # WordPiece's 100-character limit: the longer word is one [UNK]
    " ".join(["word"] * (STATIC_PIECES + 10)),  # cut at STATIC_PIECES
    "",
    "   ",
    "Café naïve résumé",  # accents: the tokenizer's own normalisation
    "日本語 and English",
    "tab\tand\nnewline",  # not printable: the tokenizer
])
def test_pieces_are_the_tokenizers(text: str) -> None:
    assert load_pieces()(text) == _tokenizer_ids(text)


def test_pieces_match_the_tokenizer_on_random_printable_ascii() -> None:
    rng = random.Random(0)
    alphabet = [chr(code) for code in range(32, 127)]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 200))) for _ in range(500)]
    texts += [" ".join("".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(1, 120)))
                       for _ in range(4)) for _ in range(200)]
    pieces = load_pieces()
    assert [pieces(text) for text in texts] == [_tokenizer_ids(text) for text in texts]
