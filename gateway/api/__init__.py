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
    responses,
    routing,
)

endpoints: list[Route] = [*chat.endpoints, *responses.endpoints, *embeddings.endpoints, *models.endpoints,
                          *experiments.endpoints, *economics.endpoints, *health.endpoints, *knowledge.endpoints,
                          *dashboard.endpoints, *routing.endpoints]
"""Every served path (Starlette ``Route``s: "route" alone means a policy route in this project)."""

hot_endpoints: list[Route] = [*chat.endpoints, *responses.endpoints, *embeddings.endpoints]
"""The OpenAI traffic's endpoints, served past the framework's middleware stack (``gateway.edge.hot_routes``)."""

__all__ = ["endpoints", "hot_endpoints"]
