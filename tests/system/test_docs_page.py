"""/docs renders the OpenAPI document in a real browser from the gateway's own assets, with no CDN."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.support.browser import chromium
from tests.support.polling import poll
from tests.support.servers import ServerThread


def test_the_docs_page_loads_only_its_own_assets(gateway: ServerThread) -> None:
    page = httpx.get(f"{gateway.url}/docs")
    assert page.status_code == 200
    linked = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert linked and all(url.startswith("/") for url in linked), linked
    for url in linked:
        asset = httpx.get(gateway.url + url)
        assert asset.status_code == 200 and asset.content, url


def test_unknown_docs_asset_is_a_404_envelope(gateway: ServerThread) -> None:
    response = httpx.get(f"{gateway.url}/docs/assets/../../etc/passwd")
    assert response.status_code == 404
    missing = httpx.get(f"{gateway.url}/docs/assets/nope.js")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.browser
def test_swagger_ui_renders_every_operation(gateway: ServerThread, tmp_path: Path) -> None:
    operations = sum(len(methods) for methods in httpx.get(f"{gateway.url}/openapi.json").json()["paths"].values())
    with chromium(tmp_path) as browser:
        browser.send("Page.navigate", url=f"{gateway.url}/docs")
        rendered = poll(lambda: browser.evaluate("document.querySelectorAll('.opblock').length") or None,
                        "Swagger UI's operation blocks", timeout_s=30)
        assert rendered == operations
        assert browser.evaluate("document.querySelector('.errors-wrapper') === null")
