"""GET /docs: Swagger UI for ``/openapi.json``, served from the gateway itself.

FastAPI's own page loads Swagger UI's script and style sheet from a CDN, so it
is blank wherever the browser cannot reach the internet (air-gapped clusters,
this project's CI). The assets ship in the ``fastapi-offline`` wheel (Swagger UI
5, which renders OpenAPI 3.1) and are read once, on first use, then kept.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.errors import NotFound, error_response

_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
_PREFIX = "/docs/assets"


@cache
def _asset(name: str) -> bytes:
    return files("fastapi_offline").joinpath("static", name).read_bytes()


async def page(request: Request) -> Response:
    return get_swagger_ui_html(openapi_url="/openapi.json", title="hybrid-gateway API",
                               swagger_js_url=f"{_PREFIX}/swagger-ui-bundle.js",
                               swagger_css_url=f"{_PREFIX}/swagger-ui.css",
                               swagger_favicon_url=f"{_PREFIX}/favicon.png")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    media_type = _ASSETS.get(name)
    if media_type is None:
        return error_response(NotFound(f"No such documentation asset: {name}"))
    return Response(_asset(name), media_type=media_type, headers={"cache-control": "public, max-age=86400"})


endpoints = [Route("/docs", page, methods=["GET"]), Route(f"{_PREFIX}/{{name}}", asset, methods=["GET"])]
