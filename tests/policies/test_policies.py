"""Policy files: precise file:line errors, the shipped default, hot reload that never takes a bad file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import routes
from policies import PolicyHolder, PolicyLoadError, load_policies
from tests.support.metrics import scrape
from tests.support.polling import poll
from tests.support.process import free_port
from tests.support.servers import ServerThread

GOOD = """version: 1
targets:
  a:
    provider: vllm
    model: m-a
    api_base: http://127.0.0.1:1/v1
routes:
  r:
    arms:
      prompted:
        target: a
"""


def write(directory: Path, text: str, name: str = "p.yaml") -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(PolicyLoadError) as failure:
        load_policies(directory)
    return [str(issue) for issue in failure.value.issues]


def test_shipped_default_policies_load() -> None:
    policy = load_policies(Path(__file__).resolve().parents[2] / "policies" / "default")
    assert "support" in policy.routes
    assert policy.routes["support"].arms.fine_tuned is not None


def test_unknown_target_names_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("target: a", "target: b"))
    assert issues_of(tmp_path) == [
        f"{path}:11: routes.r.arms.prompted.target: unknown target 'b' (known targets: a)"]


def test_schema_errors_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("    model: m-a\n", "    model: m-a\n    timeout_s: -1\n    colour: red\n"))
    found = issues_of(tmp_path)
    assert f"{path}:6: targets.a.timeout_s: Input should be greater than 0" in found
    assert f"{path}:7: targets.a.colour: Extra inputs are not permitted" in found


def test_invalid_yaml_and_duplicate_keys(tmp_path: Path) -> None:
    path = write(tmp_path, "targets: [unclosed\n")
    assert issues_of(tmp_path)[0].startswith(f"{path}:2: invalid YAML")
    write(tmp_path, GOOD.replace("    model: m-a\n", "    model: m-a\n    model: m-b\n"))
    assert issues_of(tmp_path) == [f"{path}:6: targets.a.model: duplicate key"]


def test_definitions_may_not_repeat_across_files(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    second = write(tmp_path, GOOD.split("routes:")[0], "b.yaml")
    assert issues_of(tmp_path) == [f"{second}:3: targets.a: target 'a' is already defined in {tmp_path / 'a.yaml'}"]


def test_bad_url_and_missing_fine_tuned_arm(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("http://127.0.0.1:1/v1", "ftp://x").replace("  r:\n", "  r:\n    default_arm: fine_tuned\n"))
    found = issues_of(tmp_path)
    assert f"{path}:6: targets.a.api_base: Value error, must be an http:// or https:// URL" in found


def test_without_key_substitutes_while_the_key_is_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = GOOD.replace("routes:", """  cloud:
    provider: openai
    model: gpt-4o
    api_key_env: TEST_HG_KEY
    without_key: a
routes:""").replace("target: a", "target: cloud")
    write(tmp_path, text)
    monkeypatch.delenv("TEST_HG_KEY", raising=False)
    assert load_policies(tmp_path).target("cloud")[0] == "a"
    monkeypatch.setenv("TEST_HG_KEY", "sk-x")
    assert load_policies(tmp_path).target("cloud")[0] == "cloud"


def test_policy_check_cli(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    ok = subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path)],
                        capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "1 route(s)" in ok.stdout
    write(tmp_path, GOOD.replace("target: a", "target: zz"))
    bad = subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert "p.yaml:11: routes.r.arms.prompted.target: unknown target 'zz'" in bad.stderr


def test_reload_applies_good_files_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    write(tmp_path, GOOD)
    results: list[str] = []
    holder = PolicyHolder(tmp_path, on_reload=results.append)
    assert holder.reload() == "unchanged"
    write(tmp_path, GOOD.replace("  r:\n", "  r2:\n"))
    assert holder.reload() == "success"
    assert set(holder.current.routes) == {"r2"}
    write(tmp_path, GOOD.replace("  r:\n", "  r3:\n").replace("target: a", "target: missing"))
    assert holder.reload() == "failure"
    assert set(holder.current.routes) == {"r2"}
    assert holder.reload() == "unchanged"  # the same bad content is reported once, not every poll
    assert results == ["success", "failure"]


def test_running_gateway_hot_reloads(start_gateway: object, policy_dir: Path) -> None:
    gateway: ServerThread = start_gateway()  # type: ignore[operator]
    policy_file = policy_dir / "policy.yaml"
    original = policy_file.read_text()

    def models() -> set[str]:
        return {m["id"] for m in httpx.get(gateway.url + "/v1/models").json()["data"]}

    def metric(result: str) -> float:
        for line in httpx.get(gateway.url + "/metrics").text.splitlines():
            if line.startswith(f'gateway_policy_reloads_total{{result="{result}"}}'):
                return float(line.split()[-1])
        return 0.0

    policy_file.write_text(original.replace("  chat-small:", "  chat-tiny:"))
    poll(lambda: "chat-tiny" in models(), "the reload")
    policy_file.write_text(original.replace("  chat-small:", "  chat-broken:").replace("target: small}", "target: nope}"))
    poll(lambda: metric("failure") == 1.0, "the failed reload to be counted")
    assert "chat-tiny" in models() and "chat-broken" not in models()
    assert metric("success") == 1.0


ROUTED = GOOD.replace("        target: a\n", "        target: a\n      fine_tuned:\n        target: a\n    classifier:\n"
                      "      model: models/router.npz\n")


def test_policy_check_loads_every_model_file_a_route_names(tmp_path: Path) -> None:
    path = write(tmp_path, ROUTED)
    check = [sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path)]
    missing = subprocess.run(check, capture_output=True, text=True, check=False)
    assert missing.returncode == 1
    assert f"{path}:15: routes.r.classifier.model: cannot load {tmp_path / 'models/router.npz'}" in missing.stderr
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "router.npz").write_text("not a model")
    garbage = subprocess.run(check, capture_output=True, text=True, check=False)
    assert garbage.returncode == 1 and "cannot read model file" in garbage.stderr
    shutil.copy(Path(routes.__file__).parent / "models" / "fast.npz", tmp_path / "models" / "router.npz")
    assert subprocess.run(check, capture_output=True, text=True, check=False).returncode == 0


def test_serve_refuses_a_missing_model_file_in_one_line(tmp_path: Path) -> None:
    write(tmp_path, ROUTED)
    started = subprocess.run([sys.executable, "-m", "gateway.cli", "serve", "--policies", str(tmp_path), "--demo", "off",
                              "--port", str(free_port())], capture_output=True, text=True, check=False, timeout=120)
    assert started.returncode == 2 and "Traceback" not in started.stderr
    (line,) = started.stderr.splitlines()
    assert line.startswith("cannot start: ") and "routes.r.classifier.model: cannot load" in line


def test_a_reload_naming_a_missing_model_file_is_refused(start_gateway: object, policy_dir: Path,
                                                         fake: object) -> None:
    gateway: ServerThread = start_gateway()  # type: ignore[operator]
    policy_file = policy_dir / "policy.yaml"
    policy_file.write_text(policy_file.read_text().replace(
        "  chat:\n", "  chat:\n    classifier: {model: gone.npz}\n", 1))
    poll(lambda: scrape(gateway.url, "gateway_policy_reloads_total", result="failure") == 1,
         "the refused reload to be counted")
    answer = httpx.post(gateway.url + "/v1/chat/completions", timeout=30,
                        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200 and "x-gateway-score" not in answer.headers  # still the last good policy
    assert scrape(gateway.url, "gateway_policy_reloads_total", result="success") == 0


def test_an_experiment_declares_its_feedback_scale(tmp_path: Path) -> None:
    experiment = ("experiments:\n  e:\n    route: r\n    variants:\n      one: {weight: 1}\n"
                  "      two: {weight: 1, target: a}\n")
    write(tmp_path, GOOD + experiment)
    scale = load_policies(tmp_path).experiments["e"].feedback
    assert (scale.min, scale.max) == (0, 1)  # the default: a fraction
    path = write(tmp_path, GOOD + experiment + "    feedback: {min: 5, max: 1}\n")
    assert issues_of(tmp_path) == [f"{path}:18: experiments.e.feedback: Value error, min must be below max"]


TUNED = GOOD + """      fine_tuned:
        target: small
"""


def test_a_fine_tuned_arm_on_anthropic_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, TUNED.replace("targets:\n", "targets:\n  small: {provider: anthropic, "
                                         "model: claude-haiku-4-5, api_key_env: ANTHROPIC_API_KEY}\n"))
    [issue] = issues_of(tmp_path)
    assert issue.startswith(f"{path}:14: routes.r.arms.fine_tuned.target: target 'small' cannot serve a "
                            "fine_tuned arm: Anthropic offers no public fine-tuning")


def test_an_openai_fine_tuned_arm_without_ft_loads_with_a_warning(tmp_path: Path) -> None:
    base = TUNED.replace("targets:\n", "targets:\n  small: {provider: openai, model: gpt-4o-mini}\n")
    path = write(tmp_path, base)
    assert load_policies(tmp_path).warnings == (
        f"{path}:14: routes.r.arms.fine_tuned.target: target 'small' (openai model 'gpt-4o-mini') is not a "
        "fine-tuned model (its tuned models start with 'ft:'): the fine_tuned arm is serving a base model",)
    check = subprocess.run([sys.executable, "-m", "gateway.cli", "policy", "check", str(tmp_path)],
                           capture_output=True, text=True, check=False)
    assert check.returncode == 0 and "1 warning(s)" in check.stdout
    assert "warning: " in check.stderr and "is not a fine-tuned model" in check.stderr
    write(tmp_path, base.replace("model: gpt-4o-mini", "model: 'ft:gpt-4o-mini-2024-07-18:acme::abc123'"))
    assert load_policies(tmp_path).warnings == ()


def test_the_same_base_model_on_the_prompted_arm_or_a_self_hosted_server_is_not_warned_about(
        tmp_path: Path) -> None:
    write(tmp_path, TUNED.replace("targets:\n", "targets:\n  small: {provider: vllm, model: llama-3-8b-support}\n"
                                  "  big: {provider: openai, model: gpt-4o}\n").replace(
        "      prompted:\n        target: a\n", "      prompted:\n        target: big\n"))
    assert load_policies(tmp_path).warnings == ()


CASCADE = TUNED.replace("targets:\n", "targets:\n  small: {provider: openai, model: 'ft:m-small'}\n").replace(
    "  r:\n", "  r:\n    strategy: cascade\n    default_arm: fine_tuned\n")


def test_a_cascade_with_its_acceptors_loads(tmp_path: Path) -> None:
    write(tmp_path, CASCADE.replace("    arms:\n", "    acceptors: {reject: ['not sure'], min_mean_logprob: -1}\n"
                                      "    arms:\n", 1))
    route = load_policies(tmp_path).routes["r"]
    assert route.strategy == "cascade" and route.acceptors is not None and route.acceptors.wants_logprobs


@pytest.mark.parametrize(("change", "line", "message"), [
    (("      fine_tuned:\n        target: small\n", ""), 9, "routes.r: Value error, strategy: cascade needs a "
     "fine_tuned arm"),
    (("    strategy: cascade\n", ""), 9, "routes.r: Value error, acceptors apply only to strategy: cascade"),
    (("reject: ['not sure']", "reject: ['(unclosed']"), 12, "routes.r.acceptors.reject: Value error, '(unclosed' is "
     "not a valid regular expression"),
    (("min_mean_logprob: -1", "min_mean_logprob: 0.5"), 12, "routes.r.acceptors.min_mean_logprob: Input should be "
     "less than or equal to 0"),
])
def test_cascade_mistakes_are_refused(tmp_path: Path, change: tuple[str, str], line: int, message: str) -> None:
    text = CASCADE.replace("    arms:\n", "    acceptors: {reject: ['not sure'], min_mean_logprob: -1}\n"
                           "    arms:\n", 1).replace(*change)
    if "fine_tuned arm" in message:
        text = text.replace("    default_arm: fine_tuned\n", "")
    path = write(tmp_path, text)
    [issue] = issues_of(tmp_path)
    assert issue.startswith(f"{path}:{line}: {message}"), issue


def test_a_cascade_nothing_reaches_loads_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, CASCADE.replace("    default_arm: fine_tuned\n", ""))
    [warning] = load_policies(tmp_path).warnings
    assert warning.startswith(f"{path}:10: routes.r.strategy: the cascade starts only from the fine_tuned arm")


ENSEMBLE = CASCADE.replace("strategy: cascade", "strategy: ensemble").replace(
    "    arms:\n", "    ensemble: {selector: judge, judge: {target: small, timeout_s: 3}}\n    arms:\n", 1)


def test_an_ensemble_with_its_judge_loads(tmp_path: Path) -> None:
    write(tmp_path, ENSEMBLE)
    route = load_policies(tmp_path).routes["r"]
    assert route.ensemble is not None and route.ensemble.judge is not None
    assert (route.ensemble.selector, route.ensemble.judge.timeout_s, route.stream) == ("judge", 3, "buffered")


@pytest.mark.parametrize(("change", "line", "message"), [
    (("    ensemble: {selector: judge, judge: {target: small, timeout_s: 3}}\n", ""), 9,
     "routes.r: Value error, strategy: ensemble needs an ensemble block"),
    (("judge: {target: small, timeout_s: 3}", "samples: 2"), 12, "routes.r.ensemble: Value error, selector: judge "
     "needs a judge block"),
    (("target: small, timeout_s", "target: nobody, timeout_s"), 12, "routes.r.ensemble.judge.target: unknown target "
     "'nobody'"),
    (("strategy: ensemble", "strategy: route\n    stream: passthrough-no-cascade"), 9, "routes.r: Value error, "
     "strategy: ensemble needs"),
    (("    arms:\n", "    acceptors: {judge: {target: small}}\n    arms:\n"), 9, "routes.r: Value error, an "
     "ensemble's judge is ensemble.judge"),
])
def test_ensemble_mistakes_are_refused(tmp_path: Path, change: tuple[str, str], line: int, message: str) -> None:
    path = write(tmp_path, ENSEMBLE.replace(*change))
    [issue] = issues_of(tmp_path)
    assert issue.startswith(f"{path}:{line}: {message}"), issue


def test_a_cascade_judge_must_be_a_known_target(tmp_path: Path) -> None:
    path = write(tmp_path, CASCADE.replace("    arms:\n", "    acceptors: {judge: {target: nobody}}\n    arms:\n", 1))
    [issue] = issues_of(tmp_path)
    assert issue.startswith(f"{path}:12: routes.r.acceptors.judge.target: unknown target 'nobody'"), issue


def test_a_cache_on_a_strategy_route_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, CASCADE.replace("    arms:\n", "    cache: {ttl_s: 60}\n    arms:\n", 1))
    [issue] = issues_of(tmp_path)
    assert issue.startswith(f"{path}:9: routes.r: Value error, cache applies only to strategy: route"), issue
