"""hybrid-gateway's HTTP edge: the OpenAI-compatible app, upstream clients, accounting and CLI.

litellm reads its price list from the network at import unless told not to;
the gateway never lets it, whichever module imports it first.
"""

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__all__: list[str] = []
