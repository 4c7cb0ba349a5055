"""HTTP endpoints, one module per resource.

Endpoints are plain Starlette routes taking a ``Request``: the hot path skips
FastAPI's per-request dependency solving and response serialisation, which it
does not use. ``gateway.api.openapi`` describes every route for the OpenAPI
document (a route it does not describe fails the document's build), with the
models of ``gateway.api.schemas``.
"""

from starlette.routing import Route

from gateway.api import (
    chat,
    dashboard,
    economics,
    embeddings,
    experiments,
    health,
    knowledge,
    models,
    routing,
)

routes: list[Route] = [*chat.routes, *embeddings.routes, *models.routes, *experiments.routes, *economics.routes,
                       *health.routes, *knowledge.routes, *dashboard.routes, *routing.routes]

__all__ = ["routes"]
