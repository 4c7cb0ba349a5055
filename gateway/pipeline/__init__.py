"""The request path, in the order a chat completion meets it.

1. ``intake``: key, size, JSON, schema and forbidden fields, before anything is routed.
2. ``decision``: the route resolved once (``resolve_model``) and the arm decided (``decide_arm``).
3. ``experiments``: the request's experiment variant (and its outcome afterwards).
4. ``arm_choice``: the route's classifier picks the arm and holds its share; ``score_sharing``
   lets replicas share the classifier's live score estimate off the request path.
5. ``plan``: the upstream calls that may serve the request (the decided arm, its fallbacks).
6. ``grounding``: retrieval from the knowledge layer, rendered into each plan's own messages.
7. ``attempts``: retries, circuit breakers and the fallback chain, returning one outcome value.
8. ``streaming``: the SSE relay that finishes a stream's ``Completion`` on its way to the client.
9. ``shadow``: mirrored calls to a candidate target, off the client's path.

The API handlers (``gateway.api``) drive these steps; they call down into ``gateway.upstream`` and
hand each finished request (``gateway.accounting.Completion``) to the ledger. Nothing here imports
the API or the CLI.
The package hands on its modules (heavy ones load only when used), not a flat list of names.
"""

__all__ = ["arm_choice", "attempts", "decision", "experiments", "grounding", "intake", "plan", "score_sharing", "shadow",
           "streaming"]
