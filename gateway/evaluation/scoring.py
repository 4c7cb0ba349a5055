"""Per-example scores and per-arm figures, as the decision guide lists them.

Quality, per example, against the expected answer:

* ``exact_match``: 1 when the answers are equal after SQuAD's normalisation
  (lower case, punctuation and the articles a/an/the removed, whitespace
  collapsed), else 0. For single correct answers (labels, extracted fields).
* ``f1``: SQuAD's token F1 over the same normalised words. Partial credit for
  free text; equal to exact match for one-word answers. The default primary metric.
* ``similarity``: cosine of the retrieval layer's MiniLM sentence embeddings
  (unit vectors, so a dot product). Meaning over wording.
* ``json_valid``: 1 when the answer parses as JSON and conforms to the given
  JSON schema (only with ``--json-schema``).

A call that failed after its retries scores 0 on every quality metric: a
user would have got no answer. Latency, tokens and cost are over successful
calls only (a failed call is not billed by the gateway). Percentiles are
linear-interpolated (numpy's default).
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gateway.evaluation.vocabulary import QUALITY, STRATEGY

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def exact_match(answer: str, expected: str) -> float:
    return float(normalise(answer) == normalise(expected))


def token_f1(answer: str, expected: str) -> float:
    got, want = normalise(answer).split(), normalise(expected).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def similarities(answers: Sequence[str], expected: Sequence[str]) -> list[float]:
    """Cosine similarity of each pair with the retrieval layer's offline MiniLM encoder."""
    if not answers:
        return []
    from retrieval import MiniLMEncoder  # ~0.2 s to load: only when there is something to compare

    vectors = MiniLMEncoder(threads=2).embed([*answers, *expected])
    return [float(v) for v in np.einsum("ij,ij->i", vectors[:len(answers)], vectors[len(answers):])]


def json_conformance(answer: str, schema: Mapping[str, Any]) -> float:
    """1.0 when ``answer`` is JSON valid against ``schema``."""
    import jsonschema

    try:
        jsonschema.validate(json.loads(answer), schema)
    except (ValueError, jsonschema.ValidationError):
        return 0.0
    return 1.0


def score(records: Sequence[Mapping[str, Any]], expected: Sequence[str],
          schema: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Each journal record with its quality scores; ``expected[i]`` belongs to ``records[i]``."""
    ok = [i for i, r in enumerate(records) if r["ok"]]
    cosine = dict(zip(ok, similarities([records[i]["answer"] for i in ok], [expected[i] for i in ok]),
                      strict=True))
    scored = []
    for i, record in enumerate(records):
        answer = record.get("answer", "")
        values: dict[str, float | None] = {name: 0.0 for name in QUALITY}
        if record["ok"]:
            values.update(exact_match=exact_match(answer, expected[i]), f1=token_f1(answer, expected[i]),
                          similarity=cosine[i])
            if schema is not None:
                values["json_valid"] = json_conformance(answer, schema)
        if schema is None:
            values["json_valid"] = None
        scored.append({**record, "expected": expected[i], **values})
    return scored


def _percentile(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _fell_back(record: Mapping[str, Any]) -> bool:
    """A forced arm answered by another; on the strategy's calls, whose arm is the route's to choose, any
    fallback the gateway took (``x-gateway-fallback``)."""
    if record["arm"] == STRATEGY:
        return bool(record.get("fallback"))
    return record.get("served_arm") not in (None, record["arm"])


def arm_summary(scored: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One arm's figures over its scored examples."""
    ok = [r for r in scored if r["ok"]]
    latency = [r["latency_s"] for r in ok]
    ttft = [r["ttft_s"] for r in ok if r["ttft_s"] is not None]
    costs = [r["cost_usd"] for r in ok if r["cost_usd"] is not None]
    summary: dict[str, Any] = {"examples": len(scored), "errors": len(scored) - len(ok),
                               "error_rate": (len(scored) - len(ok)) / len(scored) if scored else None}
    for name in QUALITY:
        values = [r[name] for r in scored if r[name] is not None]
        summary[name] = _mean(values)
    summary.update(
        latency_p50_s=_percentile(latency, 50), latency_p95_s=_percentile(latency, 95),
        ttft_p50_s=_percentile(ttft, 50), ttft_p95_s=_percentile(ttft, 95),
        prompt_tokens_mean=_mean([r["prompt_tokens"] for r in ok if r["prompt_tokens"] is not None]),
        completion_tokens_mean=_mean([r["completion_tokens"] for r in ok if r["completion_tokens"] is not None]),
        cost_per_query_usd=_mean(costs), cost_total_usd=float(sum(costs)),
        fallbacks=sum(1 for r in ok if _fell_back(r)),
    )
    return summary
