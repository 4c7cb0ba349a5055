"""Features of one conversation: a few named cues plus hashed word and character n-grams.

Named ("dense") features carry the signals known to predict when a weak model fails -- length,
depth, maths, code, reasoning and multi-step cues, question layout, domain words -- and give the
explanation its vocabulary. Hashed n-grams let the linear model learn the rest from data.

Everything here runs on the request path, so it is built for a bounded cost: regexes are compiled
once, only the first `WINDOW` characters are scanned (the length features still see the full
length), token hashes of short words are cached within a byte budget, and n-gram hashing is vectorised with numpy. Hashes are CRC32 and
multiply-shift, never Python's salted `hash()`, so a saved model means the same in every process.

A chat prompt is short, so a numpy call's fixed cost (~1 us) outweighs its work: byte classes are
counted with `bytes.translate` and word lengths summed in Python rather than through small arrays,
and all multiply-shift hashes of a prompt are mixed in one array operation (~40% of a `fast`
decision went to such calls). The values are the same integers as before, so features do not change.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import zlib
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ._lexicon import CUE_NAMES, WORD_CUE
from ._messages import Conversation

WINDOW = 6000
CHAR_NGRAMS = (3, 4)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio: multiply-shift hashing
_BIGRAM_SALT = np.uint64(0x632BE59BD9B4E019)
_FORMAT_SALTS = {True: 0x5BD1E995, False: 0x27D4EB2F}  # multiple-choice, free-form
_FORMAT_MULTIPLIER = 2654435761  # Knuth's multiplicative hash constant

_WORD_RE = re.compile(r"\w+")
_NUMBER_RE = re.compile(r"\d+")
# ASCII text (nearly all prompts) takes byte-level equivalents: a regex over bytes skips Unicode's
# character classes, and `\w+` is a translate-and-split (3-5x cheaper, the same words and counts).
_ASCII_NUMBER_RE = re.compile(rb"[0-9]+")
_ASCII_NON_WORD_TO_SPACE = bytes(c if chr(c).isalnum() or c == ord("_") else ord(" ") for c in range(128)) + bytes(128)
_OPTION_RE = re.compile(r"^\s*\(?[A-J][.)]\s", re.MULTILINE)
_SENTENCE_RE = re.compile(r"[.!?](?:\s|$)")
_DIGIT_BYTES = b"0123456789"
_ASCII_OPERATORS = b"=+*/^<>"
_UNICODE_OPERATORS = "\u2264\u2265\u00d7\u00f7\u221a\u03c0\u2211\u222b"  # <= >= x / sqrt pi sum integral
_CODE_BYTES = b"{};"
_UPPER_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NON_ASCII_BYTES = bytes(range(128, 256))
_NEGATIONS = ("NOT", "EXCEPT", "LEAST")
# Word-problem cues (GSM8K-style maths): what makes a chain of arithmetic long or error-prone.
_QUANTITY = r"\d[\d,]*(?:\.\d+)?"
_DECIMAL = r"\d\.\d"
_FRACTION_DIGITS = r"\d/\d"
_DIGIT_PATTERNS = tuple(re.compile(pattern) for pattern in (_QUANTITY, _DECIMAL, _FRACTION_DIGITS))
_ASCII_DIGIT_PATTERNS = tuple(re.compile(pattern.encode()) for pattern in (_QUANTITY, _DECIMAL, _FRACTION_DIGITS))
_FRACTION_WORDS = frozenset(["half", "halves", "third", "thirds", "quarter", "quarters", "fourth", "fifth", "fifths", "tenth", "twice", "double", "triple"])
_SEQUENCE_WORDS = frozenset(["first", "second", "third", "last", "next", "then", "after", "before", "remaining", "rest", "left"])
_COMPARISON_WORDS = frozenset(["more", "less", "fewer", "than", "times"])
_UNIT_STEMS = ["second", "minute", "hour", "day", "week", "month", "year", "inch", "feet", "foot", "yard", "mile", "meter", "cm", "km", "pound", "ounce", "gram", "kg", "liter", "gallon", "cup", "dozen"]
_UNIT_OF = {form: stem for stem in _UNIT_STEMS for form in (stem, stem + "s", stem + "es")}

DENSE_NAMES: tuple[str, ...] = (
    "length_chars",
    "length_words",
    "lines",
    "sentences",
    "question_marks",
    "prior_turns",
    "context_chars",
    "system_prompt",
    "digit_share",
    "numbers",
    "math_operators",
    "latex",
    "code_fence",
    "code_syntax",
    "choice_options",
    "statement_pair",
    "negation_caps",
    "passage",
    "mean_word_length",
    "long_word_share",
    "uppercase_share",
    "non_ascii_share",
    *(f"cue_{name}" for name in CUE_NAMES),
    "quantities",
    "decimals",
    "fractions",
    "percentages",
    "sequence_words",
    "comparisons",
    "unit_kinds",
)


@dataclass(frozen=True, slots=True)
class Features:
    """Dense values (aligned with DENSE_NAMES) and hashed (index, value) pairs.

    Hashed entries are laid out as unigrams, then bigrams, then character n-grams (`n_shared`
    entries in all), then the same entries again re-hashed by prompt format. The shared copy
    carries what a word means anywhere; the format copy lets the same word weigh differently in
    a multiple-choice exam question and in a free-form request, without one dataset's habits
    leaking into the other's. `words` are the unigram tokens, kept so an explanation can name the
    word that mattered most.
    """

    dense: NDArray[np.float64]
    indices: NDArray[np.int64]
    values: NDArray[np.float64]
    words: tuple[str, ...]
    n_unigrams: int
    n_bigrams: int
    n_shared: int


class WordHashes(dict[str, int]):
    """CRC32 of words, remembering those of at most `max_word_chars` characters within `max_bytes`.

    Bounded by bytes, not entries: an entry cap let a few thousand long "words" (up to WINDOW
    characters each) hold hundreds of megabytes. Long words are rare and repeat rarely, so they
    are hashed each time; when the budget is spent the cache starts over. A hit is a plain dict
    look-up (no Python call); a miss takes a lock so concurrent decisions keep the count exact.
    """

    def __init__(self, max_bytes: int, max_word_chars: int) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.max_word_chars = max_word_chars
        self.bytes = 0
        self._lock = threading.Lock()

    def __missing__(self, word: str) -> int:
        value = zlib.crc32(word.encode("utf-8"))
        if len(word) <= self.max_word_chars:
            cost = sys.getsizeof(word) + _ENTRY_BYTES
            with self._lock:
                if self.bytes + cost > self.max_bytes:
                    self.clear()
                    self.bytes = 0
                self[word] = value
                self.bytes += cost
        return value


_ENTRY_BYTES = 100  # the dict slot (its share of the table) and the int beside the word itself
_WORD_HASHES = WordHashes(max_bytes=16 << 20, max_word_chars=32)


def _mix(values: NDArray[np.uint64], bits: int) -> NDArray[np.int64]:
    return ((values * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


def _char_ngram_keys(data: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """Each character n-gram's key before mixing: `n * 257**n + sum(byte_i * 257**(n-1-i))`, n in CHAR_NGRAMS.

    Built from shared prefixes (a 4-gram is its 3-gram times 257 plus a byte); the keys fit in 64
    bits without wrapping, so they equal the step-by-step polynomial exactly.
    """
    keys = []
    prefix = data
    for n in range(1, CHAR_NGRAMS[-1] + 1):
        if n > 1:
            prefix = prefix[:-1] * np.uint64(257) + data[n - 1 :]
        if n in CHAR_NGRAMS and prefix.size:
            keys.append(prefix + np.uint64(n * 257**n))
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)


def _unit_norm(size: int) -> float:
    """The value each of `size` equal entries takes for unit L2 norm, so long prompts do not get larger totals."""
    return 1.0 / math.sqrt(size) if size else 0.0


def _count(raw: bytes, members: bytes) -> int:
    """How many bytes of `raw` are among `members` (a C pass, no array)."""
    return len(raw) - len(raw.translate(None, members))


@dataclass(frozen=True, slots=True)
class Scan:
    """One pass over a conversation: its named features, and what the hashed ones are built from.

    The compiled scorer (`routes/_scorer.c`) hashes `words` and `lower` itself, so a decision
    stops here; `extract` goes on to the hashed (index, value) pairs that training and
    explanations need.
    """

    dense: tuple[float, ...]  # aligned with DENSE_NAMES
    words: list[str]  # unigram tokens, digit runs as "0"
    lower: bytes  # the lower-cased window, digit runs as "0", UTF-8
    multiple_choice: bool  # the prompt lists at least two lettered options


def scan(conv: Conversation) -> Scan:
    """The named features of `conv` and the inputs of its hashed ones."""
    full = conv.text
    text = full[:WINDOW]
    raw = text.encode("utf-8")
    n_bytes = max(len(raw), 1)
    # Numbers differ in value, not in what they say about difficulty: all become "0".
    if len(raw) == len(text):  # ASCII
        lowered, n_numbers = _ASCII_NUMBER_RE.subn(b"0", raw.lower())
        lower = lowered.decode("ascii")
        words = lowered.translate(_ASCII_NON_WORD_TO_SPACE).decode("ascii").split()
        digit_counts = [len(pattern.findall(raw)) for pattern in _ASCII_DIGIT_PATTERNS]
    else:
        lower, n_numbers = _NUMBER_RE.subn("0", text.lower())
        lowered = lower.encode("utf-8")
        words = _WORD_RE.findall(lower)
        digit_counts = [len(pattern.findall(text)) for pattern in _DIGIT_PATTERNS]
    n_words = max(len(words), 1)
    lengths = list(map(len, words))
    word_chars = sum(lengths)
    long_words = sum(map((8).__lt__, lengths))
    cues = [cue for cue in map(WORD_CUE.get, words) if cue is not None]
    n_options = len(_OPTION_RE.findall(text))
    unicode_ops = sum(map(text.count, _UNICODE_OPERATORS)) if len(raw) != len(text) else 0
    dense = (
        math.log1p(len(full)),
        math.log1p(len(words)),
        math.log1p(raw.count(b"\n")),
        math.log1p(len(_SENTENCE_RE.findall(text))),
        math.log1p(raw.count(b"?")),
        math.log1p(conv.prior_turns),
        math.log1p(conv.context_chars),
        float(conv.has_system),
        _count(raw, _DIGIT_BYTES) / n_bytes,
        math.log1p(n_numbers),
        math.log1p(_count(raw, _ASCII_OPERATORS) + unicode_ops),
        math.log1p(raw.count(b"\\")),  # backslashes: LaTeX commands
        float("```" in text),
        math.log1p(_count(raw, _CODE_BYTES) + text.count("==") + text.count("()")),
        math.log1p(n_options),
        float("statement 1" in lower),
        math.log1p(sum(map(text.count, _NEGATIONS))),
        float("refers to the following" in lower),
        float(word_chars) / n_words,
        float(long_words) / n_words,
        _count(raw, _UPPER_BYTES) / n_bytes,
        _count(raw, _NON_ASCII_BYTES) / n_bytes,
        *map(math.log1p, map(cues.count, range(len(CUE_NAMES)))),
        *_word_problem(text, lower, words, *digit_counts),
    )
    return Scan(dense, words, lowered, n_options >= 2)


def extract(conv: Conversation, bits: int) -> Features:
    """Compute all features of `conv`; hashed indices fall in [0, 2**bits)."""
    found = scan(conv)
    words = found.words
    indices, values = _hashed(words, found.lower, multiple_choice=found.multiple_choice, bits=bits)
    n_unigrams = len(words)
    return Features(
        dense=np.asarray(found.dense, dtype=np.float64),
        indices=indices,
        values=values,
        words=tuple(words),
        n_unigrams=n_unigrams,
        n_bigrams=max(n_unigrams - 1, 0),
        n_shared=indices.size // 2,
    )


def _word_problem(text: str, lower: str, words: list[str], quantities: int, decimals: int,
                  fraction_digits: int) -> tuple[float, ...]:
    """Cues of a multi-step arithmetic word problem; `lower` and `words` have digit runs as "0".

    Chosen by 5-fold cross-validation on the GSM8K train split (see `routes/training/train.py`): decimals,
    fractions and sequencing words ("then", "remaining", "left") each carry signal the hashed words
    miss; quantity, percentage, comparison and unit counts are kept as the word-problem basics. The
    three digit-pattern counts come from the caller, which matches them on bytes when it can.
    """
    units = set(filter(None, map(_UNIT_OF.get, words)))
    return (
        math.log1p(quantities),
        math.log1p(decimals),
        math.log1p(fraction_digits + sum(map(_FRACTION_WORDS.__contains__, words))),
        math.log1p(text.count("%") + lower.count("percent")),
        math.log1p(sum(map(_SEQUENCE_WORDS.__contains__, words))),
        math.log1p(sum(map(_COMPARISON_WORDS.__contains__, words))),
        math.log1p(len(units)),
    )


def _hashed(
    words: list[str], lower: bytes, multiple_choice: bool, bits: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Word unigrams and bigrams and character n-grams, each group unit-norm, plus their format copy."""
    token_hashes = np.fromiter(map(_WORD_HASHES.__getitem__, words), dtype=np.uint64, count=len(words))
    unigrams = (token_hashes & np.uint64((1 << bits) - 1)).astype(np.int64)
    bigram_keys = token_hashes[:-1] * _BIGRAM_SALT + token_hashes[1:]
    char_keys = _char_ngram_keys(np.frombuffer(lower, dtype=np.uint8).astype(np.uint64))
    shared = np.concatenate((unigrams, _mix(np.concatenate((bigram_keys, char_keys)), bits)))
    by_format = (shared * _FORMAT_MULTIPLIER + _FORMAT_SALTS[multiple_choice]) & ((1 << bits) - 1)
    n_uni, n_bi = unigrams.size, bigram_keys.size
    group_values = np.empty(shared.size)
    group_values[:n_uni] = _unit_norm(n_uni)
    group_values[n_uni : n_uni + n_bi] = _unit_norm(n_bi)
    group_values[n_uni + n_bi :] = _unit_norm(char_keys.size)
    return np.concatenate((shared, by_format)), np.concatenate((group_values, group_values))
