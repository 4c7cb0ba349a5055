"""HTTP endpoints, one module per resource.

Endpoints are plain Starlette routes taking a ``Request``: the hot path skips
FastAPI's per-request dependency solving and response serialisation, which it
does not use.
"""

from starlette.routing import Route

from gateway.api import chat, dashboard, economics, embeddings, experiments, health, knowledge, models, routing

routes: list[Route] = [*chat.routes, *embeddings.routes, *models.routes, *experiments.routes, *economics.routes,
                       *health.routes, *knowledge.routes, *dashboard.routes, *routing.routes]

__all__ = ["routes"]
