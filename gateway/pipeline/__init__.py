"""The request path, in the order a chat completion meets it.

1. ``intake``: key, size, JSON, schema and forbidden fields, before anything is routed.
2. ``experiments``: the request's experiment variant (and its outcome afterwards).
3. ``plan``: the route resolved and the upstream calls that may serve the request (arm, fallbacks).
4. ``arm_choice``: the route's classifier picks the arm and holds its share; ``score_sharing``
   lets replicas share the classifier's live score estimate off the request path.
5. ``grounding``: retrieval from the knowledge layer, rendered into each plan's own messages.
6. ``attempts``: retries, circuit breakers and the fallback chain over the upstream calls.
7. ``streaming``: the SSE relay that accounts a stream on its way to the client.
8. ``shadow``: mirrored calls to a candidate target, off the client's path.

The API handlers (``gateway.api``) drive these steps; they call down into ``gateway.upstream``
and hand finished records to ``gateway.accounting``. Nothing here imports the API or the CLI.
The package hands on its modules (heavy ones load only when used), not a flat list of names.
"""

__all__ = ["arm_choice", "attempts", "experiments", "grounding", "intake", "plan", "score_sharing", "shadow",
           "streaming"]
