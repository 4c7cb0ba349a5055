"""Live calibration: the threshold that sends `strong_share` of a route's *own* traffic to the prompted arm.

Why. A model file's calibration quantiles describe its training mix (MMLU, GSM8K, MT-Bench). Real
traffic scores elsewhere: short support questions cluster around 0.43-0.60, so the training-mix
threshold for 30% (~0.58) sent about 1% of them to the prompted arm. The promise is about the
route's traffic, so the threshold is the (1 - share) quantile of the scores the route has seen.

How. `ScoreSketch` keeps a histogram of recent scores over [0, 1] in `BINS` fine bins (1/4096
wide: tightly clustered scores still spread over hundreds of bins), cut into slices so old scores
leave the window: a slice closes after 1/`SLICES` of `window.decisions` decisions or of
`window.seconds`, and the window is the newest slices that add up to `window.decisions` decisions
(give or take one slice), none older than `window.seconds`. Slices are plain counts, so slices from
other replicas (`encode` / `decode`, shared through Redis by the gateway) merge by addition.

Warm start. The model's training quantiles act as a prior worth `window.prior_weight` decisions;
each real decision in the window replaces one pseudo-decision, so the prior is gone once the
window holds that many (and comes back if traffic stops long enough for the window to empty).

Ties. A threshold cannot split many requests with the same score (a repeated "hi"), so the cut is a
bin and a fraction: scores in higher bins go to the prompted arm, scores in lower bins do not, and a
score in the cut's own bin goes there with probability `fraction`. The realised share then matches
the histogram's whatever the ties; `Cut.threshold` is the equivalent score, for display.

Everything here is pure: a clock and a random source are injected, no I/O.
"""

from __future__ import annotations

import base64
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

BINS = 4096
BLOCK = 64  # bins per block of the two-level cut search
CUT_STRIDE = 1000  # a window of n decisions recomputes its cut every n / CUT_STRIDE of them
SLICES = 16
_FORMAT = "v1"


@dataclass(frozen=True, slots=True)
class CalibrationWindow:
    """How much recent traffic the estimate covers, and what the warm start is worth (see module doc)."""

    decisions: int = 10_000
    seconds: float = 86_400.0
    prior_weight: float = 20.0

    def __post_init__(self) -> None:
        if self.decisions < 1 or self.seconds <= 0 or self.prior_weight <= 0:
            raise ValueError(f"invalid calibration window {self}")


def bin_of(score: float) -> int:
    """The histogram bin of a score in [0, 1]."""
    return min(BINS - 1, max(0, int(score * BINS)))


@dataclass(frozen=True, slots=True)
class Cut:
    """Where a calibrated rule splits scores: above bin `bin` prompted, in it with probability `fraction`.

    `threshold` is the score the cut stands for (the bin's upper edge less `fraction` of its width):
    what a fixed threshold would be if scores were spread evenly inside the bin.
    """

    threshold: float
    bin: int
    fraction: float

    def prompted(self, score: float, draw: Callable[[], float]) -> bool:
        index = bin_of(score)
        return index > self.bin or (index == self.bin and draw() < self.fraction)


def cut_of(histogram: NDArray[np.float64], share: float,
           blocks: NDArray[np.float64] | None = None) -> Cut:
    """The cut that sends `share` of a histogram's mass to the prompted arm.

    Two levels, so a cut costs two cumulative sums of `BLOCK` values rather than one of `BINS`:
    the block holding the cut from `blocks` (the histogram's sums per `BLOCK` bins, kept up to date
    by the caller, or computed here), then the bin inside it.
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be within [0, 1], got {share}")
    if share == 0.0:
        return Cut(math.nextafter(1.0, 2.0), BINS, 0.0)  # above every possible score
    if blocks is None:
        blocks = histogram.reshape(-1, BLOCK).sum(axis=1)
    top_blocks = np.cumsum(blocks[::-1])
    total = float(top_blocks[-1])
    target = share * total
    if total <= 0.0 or target >= total:
        return Cut(0.0, -1, 1.0)  # everything prompted (or no evidence at all: quality wins)
    k = int(np.searchsorted(top_blocks, target, side="right"))  # first block (from the top) past the target
    block = blocks.size - 1 - k
    above = float(top_blocks[k - 1]) if k else 0.0
    top = np.cumsum(histogram[block * BLOCK:(block + 1) * BLOCK][::-1]) + above
    j = min(int(np.searchsorted(top, target, side="right")), BLOCK - 1)  # min: rounding at the block's edge
    before = float(top[j - 1]) if j else above
    fraction = min(1.0, max(0.0, (target - before) / max(float(top[j]) - before, 1e-300)))
    index = block * BLOCK + BLOCK - 1 - j
    return Cut((index + 1 - fraction) / BINS, index, fraction)


def prior_histogram(quantiles: NDArray[np.float64]) -> NDArray[np.float64]:
    """A model's score quantiles as a histogram of total mass 1 (each quantile an equal point mass)."""
    counts = np.bincount(np.clip((quantiles * BINS).astype(np.int64), 0, BINS - 1), minlength=BINS)
    return counts.astype(np.float64) / float(quantiles.size)


@dataclass(slots=True)
class Slice:
    """Counts of the scores one process saw in one stretch of time; mergeable by addition."""

    origin: str
    seq: int
    started: float
    ended: float
    n: int = 0
    prompted: int = 0
    counts: NDArray[np.int64] = field(default_factory=lambda: np.zeros(BINS, dtype=np.int64))

    @property
    def name(self) -> str:
        return f"{self.origin}:{self.seq}"

    def encode(self) -> str:
        """Text (Redis replies are decoded to str): header fields, then the non-zero bins, base64."""
        nonzero = np.flatnonzero(self.counts)
        return ":".join((_FORMAT, self.origin, str(self.seq), repr(self.started), repr(self.ended), str(self.n),
                         str(self.prompted), _b64(nonzero.astype("<u2")), _b64(self.counts[nonzero].astype("<u4"))))

    @classmethod
    def decode(cls, text: str) -> Slice:
        """The slice `encode` wrote; ValueError when the text is not one."""
        parts = text.split(":")
        if len(parts) != 9 or parts[0] != _FORMAT:
            raise ValueError("not an encoded score slice")
        _, origin, seq, started, ended, n, prompted, index, values = parts
        counts = np.zeros(BINS, dtype=np.int64)
        counts[np.frombuffer(base64.b64decode(index), dtype="<u2")] = np.frombuffer(
            base64.b64decode(values), dtype="<u4")
        return cls(origin, int(seq), float(started), float(ended), int(n), int(prompted), counts)


def _b64(array: NDArray[np.generic]) -> str:
    return base64.b64encode(array.tobytes()).decode("ascii")


@dataclass(frozen=True, slots=True)
class WindowStats:
    """What the window holds now: real decisions, how many went to the prompted arm, since when."""

    decisions: int
    prompted: int
    since: float | None
    prior_left: float  # pseudo-decisions of the warm start still counted

    @property
    def prompted_share(self) -> float | None:
        return self.prompted / self.decisions if self.decisions else None


class ScoreSketch:
    """A route's recent score distribution (this process's slices plus any merged from others).

    Not thread-safe: the gateway calls it from its event loop only. `record` and `cut` cost a few
    microseconds; the window is re-selected only when a slice closes, expires or others' slices
    arrive.
    """

    def __init__(self, prior_quantiles: NDArray[np.float64], window: CalibrationWindow, *,
                 clock: Callable[[], float] = time.time, origin: str | None = None) -> None:
        self.window = window
        self.origin = origin or uuid.uuid4().hex[:12]
        self._clock = clock
        self._prior = prior_histogram(prior_quantiles)
        self._prior_blocks = self._prior.reshape(-1, BLOCK).sum(axis=1)
        self._slice_size = max(1, math.ceil(window.decisions / SLICES))
        self._slice_s = window.seconds / SLICES
        self._own: deque[Slice] = deque()  # closed, oldest first
        self._remote: list[Slice] = []
        self._open = self._new_slice(0, clock())
        self._dirty: set[int] = set()  # own slices changed since `changes()`
        self._dropped: list[str] = []  # own slices no window will select again
        self._combined = np.zeros(BINS, dtype=np.float64)  # selected slices + the open one
        self._blocks = np.zeros(BINS // BLOCK, dtype=np.float64)  # its sums per block
        self._base_n = self._base_prompted = 0
        self._base_since: float | None = None
        self._expires = math.inf  # when the oldest selected slice leaves the time window
        self._version = 0
        self._cached: tuple[int, float, Cut] | None = None
        self._select(clock())

    def _new_slice(self, seq: int, now: float) -> Slice:
        return Slice(self.origin, seq, now, now)

    def record(self, score: float, prompted: bool) -> None:
        """Count one scored decision and the arm it went to."""
        now = self._clock()
        self._advance(now)
        current = self._open
        index = bin_of(score)
        current.counts[index] += 1
        current.n += 1
        current.prompted += prompted
        current.ended = now
        self._combined[index] += 1.0
        self._blocks[index // BLOCK] += 1.0
        self._dirty.add(current.seq)
        self._version += 1

    def cut(self, share: float) -> Cut:
        """The cut for `share` from the window and what is left of the prior.

        Recomputed after every decision while the window is small, then every `decisions / CUT_STRIDE`
        decisions (each moves a quantile of 10,000 by at most 1/10,000; ten of them barely shift it),
        and after every change of the window's slices.
        """
        self._advance(self._clock())
        cached = self._cached
        decisions = self._base_n + self._open.n
        if cached is not None and cached[1] == share and self._version - cached[0] < max(1, decisions // CUT_STRIDE):
            return cached[2]
        remaining = self.window.prior_weight - decisions
        if remaining > 0:
            result = cut_of(self._combined + remaining * self._prior, share,
                            self._blocks + remaining * self._prior_blocks)
        else:
            result = cut_of(self._combined, share, self._blocks)
        self._cached = (self._version, share, result)
        return result

    def stats(self) -> WindowStats:
        self._advance(self._clock())
        decisions = self._base_n + self._open.n
        since = self._base_since if self._base_since is not None else (self._open.started if self._open.n else None)
        return WindowStats(decisions, self._base_prompted + self._open.prompted, since,
                           max(0.0, self.window.prior_weight - decisions))

    def merge_remote(self, slices: Iterable[Slice]) -> None:
        """Replace what other processes contributed with `slices` (their latest snapshots; own ones ignored)."""
        self._remote = [s for s in slices if s.origin != self.origin]
        self._select(self._clock())

    def own_names(self) -> set[str]:
        """The names of this process's slices that are still in use (published, or about to be)."""
        return {piece.name for piece in (*self._own, self._open) if piece.n}

    def now(self) -> float:
        return self._clock()

    def changes(self, everything: bool = False) -> tuple[list[Slice], list[str]]:
        """Own slices changed since the last call (`everything`: all of them, after a failed publication)
        to publish, and own slices no longer needed, to delete."""
        self._advance(self._clock())
        changed = [s for s in (*self._own, self._open) if everything or s.seq in self._dirty]
        dropped, self._dropped, self._dirty = self._dropped, [], set()
        return changed, dropped

    def _advance(self, now: float) -> None:
        """Close the open slice when it is full or old, and let expired slices leave the window."""
        current = self._open
        if current.n >= self._slice_size or now - current.started >= self._slice_s:
            if current.n:
                self._own.append(current)
                self._open = self._new_slice(current.seq + 1, now)
            else:
                current.started = current.ended = now
            self._select(now)
        elif now >= self._expires:
            self._select(now)

    def _select(self, now: float) -> None:
        """Re-pick the window: the open slice, then the newest others until `decisions`, none too old."""
        oldest = now - self.window.seconds
        self._forget_own(oldest)
        combined = self._open.counts.astype(np.float64)
        n, prompted, since, expires = self._open.n, self._open.prompted, None, math.inf
        for piece in sorted((*self._own, *self._remote), key=lambda s: s.ended, reverse=True):
            if n >= self.window.decisions:
                break
            if piece.ended < oldest:
                continue
            combined += piece.counts
            n += piece.n
            prompted += piece.prompted
            since = piece.started if since is None else min(since, piece.started)
            expires = min(expires, piece.ended + self.window.seconds)
        self._combined = combined
        self._blocks = combined.reshape(-1, BLOCK).sum(axis=1)
        self._base_n, self._base_prompted = n - self._open.n, prompted - self._open.prompted
        self._base_since, self._expires = since, expires
        self._version += 1
        self._cached = None

    def _forget_own(self, oldest: float) -> None:
        """Drop own closed slices that are too old, or older than enough newer own decisions."""
        newer = self._open.n
        keep: deque[Slice] = deque()
        for piece in reversed(self._own):
            if piece.ended >= oldest and newer < self.window.decisions:
                keep.appendleft(piece)
                newer += piece.n
            else:
                self._dropped.append(piece.name)
                self._dirty.discard(piece.seq)
        self._own = keep
