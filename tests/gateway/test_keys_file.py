"""The structured keys file: read with precise errors, the plain file beside it, and ``hybrid-gateway keys``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gateway.api_keys import parse_keys
from gateway.settings import Settings, SettingsError, digest_key
from tests.conftest import GatewayFactory
from tests.support.chat import chat
from tests.support.fake_upstream import FakeUpstream
from tests.support.metrics import metric_sum
from tests.support.polling import poll
from tests.support.process import run_cli

DIGEST_A = "sha256:" + digest_key("sk-a")
DIGEST_B = "sha256:" + digest_key("sk-b")


def settings_from(monkeypatch: pytest.MonkeyPatch, path: Path, text: str) -> Settings:
    path.write_text(text)
    monkeypatch.setenv("HYBRID_GATEWAY_API_KEYS_FILE", str(path))
    return Settings.from_env()


def test_named_keys_with_limits_are_read_and_revoked_ones_refused(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_from(monkeypatch, tmp_path / "keys.yaml", f"""
version: 1
keys:
  team-a:
    digest: {DIGEST_A}
    rpm: 60
    tpm: 10000
    monthly_budget_usd: 25.5
    routes: [support, chat]
    created: 2026-12-01
  gone:
    digest: {DIGEST_B}
    revoked: true
""")
    monkeypatch.setenv("HYBRID_GATEWAY_API_KEYS", "sk-plain")  # the plain list still adds its keys
    settings = Settings.from_env()
    assert settings.key_allowed("sk-a") and settings.key_allowed("sk-plain") and not settings.key_allowed("sk-b")
    key = settings.named_key(digest_key("sk-a"))
    assert key is not None and (key.name, key.rpm, key.tpm, key.monthly_budget_usd) == ("team-a", 60, 10000, 25.5)
    assert key.routes == {"support", "chat"} and key.may_call("chat") and not key.may_call("other")
    assert settings.named_key(digest_key("sk-plain")) is None


@pytest.mark.parametrize(("text", "problem"), [
    ("keys:\n  team-a:\n    digest: {a}\n    rmp: 5\n", "keys.yaml:4: keys.team-a.rmp: Extra inputs are not permitted"),
    ("keys:\n  team-a:\n    digest: {a}\n    monthly_budget_usd: -1\n",
     "keys.yaml:4: keys.team-a.monthly_budget_usd: Input should be greater than or equal to 0"),
    ("keys:\n  team-a:\n    digest: {a}\n    routes: []\n",
     "keys.yaml:4: keys.team-a.routes: Value error, an empty list would let the key call nothing"),
    ("keys:\n  team-a:\n    digest: abc\n", "keys.yaml:3: keys.team-a.digest: String should match pattern"),
    ("keys:\n  team a:\n    digest: {a}\n", "keys.yaml:2: keys.team a.[key]: String should match pattern"),
    ("keys:\n  team-a:\n    digest: {a}\n  team-a:\n    digest: {b}\n", "keys.yaml:4: keys.team-a: duplicate key"),
    ("keys:\n  team-a:\n    digest: {a}\n  team-b:\n    digest: {a}\n",
     "keys.yaml:1: keys: Value error, keys 'team-a' and 'team-b' have the same digest"),
    ("version: 2\nkeys: {{}}\n", "keys.yaml:1: version: Input should be 1"),
    ("keys:\n  - {a}\n", "keys.yaml:1: keys: Input should be a valid dictionary"),
    ("keys: [\n", "keys.yaml:2: invalid YAML"),
    ("keys:\n  team-a:\n    digest: {a}\n    revoked: true\n", "holds no key (only blank lines, comments or revoked"),
])
def test_a_keys_file_that_cannot_be_meant_as_written_stops_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        settings_from(monkeypatch, tmp_path / "keys.yaml", text.format(a=DIGEST_A, b=DIGEST_B))
    assert problem in str(raised.value).replace(str(tmp_path) + "/", "")


def test_the_cli_prints_a_new_key_once_and_keeps_only_its_digest(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    keys = tmp_path / "keys.yaml"
    made = run_cli("keys", "create", "team-a", "--rpm", "30", "--tpm", "5000", "--budget-usd", "12.5",
                   "--routes", "support, chat", "--file", str(keys), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n" and key.startswith("sk-hg-") and len(key) > 40
    assert key not in made.stderr and key not in keys.read_text() and digest_key(key) in keys.read_text()
    assert keys.stat().st_mode & 0o077 == 0  # the owner's only
    assert run_cli("keys", "create", "team-b", "--file", str(keys), cwd=tmp_path).returncode == 0

    listed = run_cli("keys", "list", "--file", str(keys), cwd=tmp_path)
    assert listed.returncode == 0 and key not in listed.stdout
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:]}
    assert rows["team-a"][1:7] == [f"sha256:{digest_key(key)[:12]}...", "30", "5000", "12.5", "support,chat",
                                   rows["team-a"][6]] and rows["team-a"][7] == "active"
    assert rows["team-b"][2:6] == ["-", "-", "-", "all"]

    settings = settings_from(monkeypatch, keys, keys.read_text())
    named = settings.named_key(digest_key(key))
    assert named is not None and (named.name, named.rpm, named.routes) == ("team-a", 30, {"support", "chat"})

    assert run_cli("keys", "revoke", "team-a", "--file", str(keys), cwd=tmp_path).returncode == 0
    assert not Settings.from_env().key_allowed(key)
    assert "revoked" in run_cli("keys", "list", "--file", str(keys), cwd=tmp_path).stdout
    again = run_cli("keys", "create", "team-a", "--file", str(keys), cwd=tmp_path)
    assert again.returncode == 1 and "already has a key named 'team-a' (revoked)" in again.stderr
    assert again.stdout == ""
    unknown = run_cli("keys", "revoke", "nobody", "--file", str(keys), cwd=tmp_path)
    assert unknown.returncode == 1 and "no key named 'nobody'" in unknown.stderr


def test_the_cli_refuses_a_plain_or_broken_file(tmp_path: Path) -> None:
    plain = tmp_path / "keys.txt"
    plain.write_text("sk-one\n")
    refused = run_cli("keys", "list", "--file", str(plain), cwd=tmp_path)
    assert refused.returncode == 2 and "is not a structured keys file" in refused.stderr
    broken = tmp_path / "keys.yaml"
    broken.write_text("keys:\n  a:\n    digest: nope\n")
    refused = run_cli("keys", "create", "b", "--file", str(broken), cwd=tmp_path)
    assert refused.returncode == 2 and f"{broken}:3: keys.a.digest" in refused.stderr and refused.stdout == ""
    assert broken.read_text() == "keys:\n  a:\n    digest: nope\n"


def test_a_revoked_key_is_refused_without_a_restart_and_a_bad_file_changes_nothing(
        start_gateway: GatewayFactory, fake: FakeUpstream, tmp_path: Path) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"version: 1\nkeys:\n  team-a:\n    digest: {DIGEST_A}\n  team-b:\n    digest: {DIGEST_B}\n")
    gateway = start_gateway(api_keys=parse_keys(keys.read_text(), str(keys)).live(), api_keys_file=keys)

    def status(key: str) -> int:
        return chat(gateway, "chat", headers={"authorization": f"Bearer {key}"}).status_code

    def reloads(result: str) -> float:
        text = httpx.get(gateway.url + "/metrics", headers={"authorization": "Bearer sk-b"}).text
        return metric_sum(text, "gateway_keys_reloads_total", result=result)

    assert (status("sk-a"), status("sk-b")) == (200, 200)
    assert run_cli("keys", "revoke", "team-a", "--file", str(keys), cwd=tmp_path).returncode == 0
    poll(lambda: status("sk-a") == 401, "the revoked key to be refused")
    assert status("sk-b") == 200 and reloads("success") == 1
    keys.write_text("keys: [\n")  # a broken file never replaces the keys in force
    poll(lambda: reloads("failure") == 1, "the broken file to be refused")
    assert (status("sk-a"), status("sk-b")) == (401, 200)
