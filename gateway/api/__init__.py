"""HTTP endpoints, one module per resource, collected into one router."""

from fastapi import APIRouter

from gateway.api import chat, embeddings, health, models

router = APIRouter()
for module in (chat, embeddings, models, health):
    router.include_router(module.router)

__all__ = ["router"]
