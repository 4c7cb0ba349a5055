"""hybrid-gateway's HTTP side, in packages that import down the request path (docs/architecture.md):

``cli`` -> ``app`` -> ``api`` -> ``pipeline`` -> ``upstream`` and ``accounting`` (read by ``economics``);
``edge`` guards the app below the handlers; ``evaluation``, ``dashboard`` and ``demo_upstream`` stand
beside it. The modules at this level (errors, protocol, settings, metrics, state) serve them all.

litellm reads its price list from the network at import unless told not to;
the gateway never lets it, whichever module imports it first.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__all__: list[str] = []
