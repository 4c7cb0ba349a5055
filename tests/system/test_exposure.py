"""Secure by default: no silent "open" mode, no cross-site posts, no rebinding, monitoring behind keys."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import Settings, SettingsError, digest_key
from tests.conftest import GatewayFactory
from tests.support.browser import DevTools, chromium
from tests.support.envelope import assert_envelope
from tests.support.fake_upstream import FakeUpstream
from tests.support.metrics import metric_sum
from tests.support.polling import poll
from tests.support.process import ROOT, GatewayProcess
from tests.support.servers import ServerThread

CHAT = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
KEY = "sk-test-1"


def basic(key: str, user: str = "me") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


# --- keys: an empty key file is an error, not "authentication off" ---

@pytest.mark.parametrize("content", ["", "\n\n", "# client keys\n  # none yet\n"])
def test_a_key_file_without_keys_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    keys = tmp_path / "keys"
    keys.write_text(content)
    monkeypatch.setenv("HYBRID_GATEWAY_API_KEYS_FILE", str(keys))
    with pytest.raises(SettingsError, match="holds no key"):
        Settings.from_env()
    keys.write_text(content + "sk-live\n")
    assert Settings.from_env().api_key_digests == {digest_key("sk-live")}


def test_a_missing_key_file_or_an_empty_key_list_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_GATEWAY_API_KEYS_FILE", str(tmp_path / "absent"))
    with pytest.raises(SettingsError, match="cannot read it"):
        Settings.from_env()
    monkeypatch.delenv("HYBRID_GATEWAY_API_KEYS_FILE")
    monkeypatch.setenv("HYBRID_GATEWAY_ADMIN_KEYS", " , ")
    with pytest.raises(SettingsError, match="HYBRID_GATEWAY_ADMIN_KEYS is set but holds no key"):
        Settings.from_env()


def serve_refusal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    gateway = GatewayProcess(*args, env=env)
    return subprocess.run([sys.executable, "-m", "gateway.cli", *gateway.args], cwd=ROOT, env=gateway.env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.multiprocess
def test_serve_refuses_an_empty_key_file(tmp_path: Path) -> None:
    (tmp_path / "keys").write_text("# to be filled\n")
    done = serve_refusal(env={"HYBRID_GATEWAY_API_KEYS_FILE": str(tmp_path / "keys")})
    assert done.returncode == 2
    assert "cannot start: HYBRID_GATEWAY_API_KEYS_FILE=" in done.stderr and "holds no key" in done.stderr
    assert "Traceback" not in done.stderr


# --- listening beyond loopback without keys is an explicit choice ---

@pytest.mark.multiprocess
def test_serve_refuses_a_public_address_without_keys() -> None:
    done = serve_refusal("--host", "0.0.0.0")
    assert done.returncode == 2
    assert "refusing to listen on 0.0.0.0 without client keys" in done.stderr
    assert "--allow-unauthenticated" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.multiprocess
def test_allow_unauthenticated_starts_and_says_so_loudly() -> None:
    gateway = GatewayProcess("--host", "0.0.0.0", "--allow-unauthenticated",
                             env={"HYBRID_GATEWAY_DEMO_LATENCY_SCALE": "0"}).start()
    try:
        # bound beyond loopback, any Host name is answered unless HYBRID_GATEWAY_ALLOWED_HOSTS lists them
        assert httpx.get(gateway.url + "/healthz", headers={"host": "gw.internal:8080"}).status_code == 200
    finally:
        stderr = gateway.stop()
    assert "SECURITY: listening on 0.0.0.0" in stderr and "NO client authentication" in stderr


def test_loopback_needs_no_keys_and_no_flag() -> None:
    from gateway.cli.serve import exposure_problem

    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert exposure_problem(host, Settings()) is None
    assert exposure_problem("0.0.0.0", Settings()) is not None
    assert exposure_problem("10.0.0.5", Settings(api_key_digests=frozenset({digest_key(KEY)}))) is None


# --- JSON endpoints take JSON only: no cross-site "simple" posts ---

@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
def test_json_endpoints_refuse_other_content_types_with_415(gateway: ServerThread, fake: FakeUpstream,
                                                            content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/feedback"):
        response = httpx.post(gateway.url + path, content=json.dumps(CHAT), headers=headers, timeout=30)
        assert_envelope(response, 415, "unsupported_media_type", "content-type")
    assert fake.received == []


def test_json_with_a_charset_is_accepted(gateway: ServerThread, fake: FakeUpstream) -> None:
    response = httpx.post(gateway.url + "/v1/chat/completions", content=json.dumps(CHAT), timeout=30,
                          headers={"content-type": "Application/JSON; charset=utf-8"})
    assert response.status_code == 200


# --- the Host allowlist (DNS rebinding) ---

def test_loopback_gateway_answers_loopback_names_and_ips_only(gateway: ServerThread, fake: FakeUpstream) -> None:
    for host in (f"localhost:{gateway.port}", "localhost", f"127.0.0.1:{gateway.port}", f"[::1]:{gateway.port}"):
        assert httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={"host": host},
                          timeout=30).status_code == 200, host
    for host in (f"rebind.attacker.example:{gateway.port}", "localhost.attacker.example"):
        response = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT, headers={"host": host}, timeout=30)
        error = assert_envelope(response, 421, "host_not_allowed", "host")
        assert "HYBRID_GATEWAY_ALLOWED_HOSTS" in error["message"]
    assert len(fake.received) == 4
    metrics = httpx.get(gateway.url + "/metrics").text
    assert metric_sum(metrics, "gateway_refused_requests_total", reason="host") == 2


def test_allowed_hosts_are_configurable(start_gateway: GatewayFactory) -> None:
    from gateway.edge_settings import EdgeSettings, parse_hosts

    server = start_gateway(edge=EdgeSettings(allowed_hosts=parse_hosts("llm.example.com, *.corp.example")))
    status = {host: httpx.get(server.url + "/v1/models", headers={"host": host}).status_code
              for host in ("llm.example.com", "LLM.example.com.:443", "a.corp.example", "corp.example",
                           "localhost", "10.1.2.3:8080", "other.example")}
    assert status == {"llm.example.com": 200, "LLM.example.com.:443": 200, "a.corp.example": 200,
                      "corp.example": 421, "localhost": 421, "10.1.2.3:8080": 200, "other.example": 421}
    assert parse_hosts("*") is None and parse_hosts("") == parse_hosts(" , ")


# --- /metrics and /dashboard behind the keys ---

def test_metrics_and_dashboard_need_a_key_when_keys_are_on(keyed_gateway: ServerThread) -> None:
    for path in ("/metrics", "/dashboard", "/dashboard/dashboard.js"):
        refused = httpx.get(keyed_gateway.url + path)
        assert_envelope(refused, 401, "invalid_api_key")
        assert refused.headers["www-authenticate"].startswith('Basic realm="hybrid-gateway"')  # the browser asks
        assert httpx.get(keyed_gateway.url + path, headers=basic("wrong")).status_code == 401
        assert httpx.get(keyed_gateway.url + path, headers=basic(KEY)).status_code == 200
    scraped = httpx.get(keyed_gateway.url + "/metrics", headers={"authorization": f"Bearer {KEY}"})
    assert scraped.status_code == 200 and "# HELP gateway_requests_total" in scraped.text
    assert httpx.get(keyed_gateway.url + "/healthz").status_code == 200  # probes stay open
    assert httpx.get(keyed_gateway.url + "/readyz").status_code in (200, 503)


def test_basic_credentials_never_open_a_post(keyed_gateway: ServerThread, fake: FakeUpstream) -> None:
    response = httpx.post(keyed_gateway.url + "/v1/chat/completions", json=CHAT, headers=basic(KEY), timeout=30)
    assert_envelope(response, 401, "invalid_api_key")
    assert "www-authenticate" not in response.headers and fake.received == []


def test_monitoring_can_be_left_open_with_keys_on(start_gateway: GatewayFactory) -> None:
    from gateway.edge_settings import EdgeSettings

    server = start_gateway(api_key_digests=frozenset({digest_key(KEY)}), edge=EdgeSettings(monitoring_needs_key=False))
    assert httpx.get(server.url + "/metrics").status_code == 200
    assert httpx.get(server.url + "/dashboard").status_code == 200
    assert httpx.get(server.url + "/v1/models").status_code == 401


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    with chromium(tmp_path) as tools:
        yield tools


@pytest.mark.browser
def test_the_dashboard_works_in_a_browser_behind_keys(keyed_gateway: ServerThread, fake: FakeUpstream,
                                                      browser: DevTools) -> None:
    """The browser is challenged, the user gives the key as the password once, and every refresh is served."""
    for _ in range(3):
        assert httpx.post(keyed_gateway.url + "/v1/chat/completions", json=CHAT, timeout=30,
                          headers={"authorization": f"Bearer {KEY}"}).status_code == 200
    challenges: list[str] = []

    def give_key(params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        challenges.append(params["request"]["url"])
        return "Fetch.continueWithAuth", {"requestId": params["requestId"], "authChallengeResponse": {
            "response": "ProvideCredentials", "username": "operator", "password": KEY}}

    browser.answers["Fetch.authRequired"] = give_key
    browser.answers["Fetch.requestPaused"] = lambda params: ("Fetch.continueRequest",
                                                             {"requestId": params["requestId"]})
    browser.send("Fetch.enable", handleAuthRequests=True, patterns=[{"urlPattern": "*"}])
    browser.send("Page.navigate", url=keyed_gateway.url + "/dashboard")
    read = ("document.body && document.getElementById('total-requests') ? JSON.stringify({state: "
            "document.body.dataset.state, refreshes: Number(document.body.dataset.refreshes), requests: "
            "Number(document.getElementById('total-requests').dataset.value)}) : 'null'")
    shown = poll(lambda: (page := json.loads(browser.evaluate(read) or "null")) and page["refreshes"] >= 2 and page,
                 "two dashboard refreshes behind keys", timeout_s=30)
    metrics = httpx.get(keyed_gateway.url + "/metrics", headers={"authorization": f"Bearer {KEY}"}).text
    assert shown["state"] == "ready"
    assert shown["requests"] == metric_sum(metrics, "gateway_requests_total") == 3
    assert challenges and challenges[0].endswith("/dashboard")  # asked once, at the page
    assert browser.exceptions == []

