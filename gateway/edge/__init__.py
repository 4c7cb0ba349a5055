"""The HTTP edge below the app: what uvicorn and the ASGI stack enforce before a handler runs.

- ``http_protocol``: uvicorn's httptools protocol with header and arrival-time limits.
- ``guard``: the one ASGI middleware (Host allowlist, per-process concurrency limit).
- ``loopback``: an ASGI app served on a loopback port in a background thread (evaluation, tests).
"""

__all__ = ["guard", "http_protocol", "loopback"]
