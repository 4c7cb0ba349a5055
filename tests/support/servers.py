"""Run real ASGI apps on loopback ports in background threads, for tests (shared with ``gateway eval``)."""

from gateway.edge.loopback import ServerThread

__all__ = ["ServerThread"]
