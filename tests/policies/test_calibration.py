"""The classifier's calibration block: defaults that make strong_share alone live, precise errors otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies import PolicyLoadError, load_policies
from policies.schema import Calibration

POLICY = """version: 1
targets:
  a: {{provider: vllm, model: m-a, api_base: "http://127.0.0.1:1/v1"}}
routes:
  r:
    classifier:
{classifier}
    arms: {{prompted: {{target: a}}, fine_tuned: {{target: a}}}}
"""


def load(tmp_path: Path, classifier: str) -> tuple[Path, object]:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.format(classifier=classifier))
    try:
        return path, load_policies(tmp_path).routes["r"].classifier
    except PolicyLoadError as exc:
        return path, [str(issue) for issue in exc.issues]


def test_strong_share_alone_means_live_calibration_with_defaults(tmp_path: Path) -> None:
    _, config = load(tmp_path, "      strong_share: 0.3")
    assert config.live == Calibration() and config.live.window_decisions == 10_000  # type: ignore[attr-defined]
    _, fixed = load(tmp_path, "      threshold: 0.6")
    assert fixed.live is None  # type: ignore[attr-defined]
    _, tuned = load(tmp_path, "      strong_share: 0.3\n      calibration: {window_decisions: 500, window_s: 3600}")
    assert (tuned.live.window_decisions, tuned.live.window_s, tuned.live.prior_weight) == (  # type: ignore[attr-defined]
        500, 3600, Calibration().prior_weight)


@pytest.mark.parametrize(("classifier", "line", "error"), [
    ("      threshold: 0.5\n      calibration: {window_decisions: 500}", 6,
     "routes.r.classifier: Value error, calibration needs strong_share: a fixed threshold is never recalibrated"),
    ("      strong_share: 0.3\n      calibration: {window_decisions: 10}", 8,
     "routes.r.classifier.calibration.window_decisions: Input should be greater than or equal to 100"),
    ("      strong_share: 0.3\n      calibration: {window_s: 0}", 8,
     "routes.r.classifier.calibration.window_s: Input should be greater than or equal to 60"),
    ("      strong_share: 0.3\n      calibration: {prior_weight: 0.5}", 8,
     "routes.r.classifier.calibration.prior_weight: Input should be greater than or equal to 1"),
    ("      strong_share: 0.3\n      calibration: {window: 5}", 8,
     "routes.r.classifier.calibration.window: Extra inputs are not permitted"),
])
def test_calibration_errors_name_file_line_and_key(tmp_path: Path, classifier: str, line: int, error: str) -> None:
    path, issues = load(tmp_path, classifier)
    assert issues == [f"{path}:{line}: {error}"]
