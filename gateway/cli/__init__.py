"""Every command line of ``hybrid-gateway``: one module per subcommand, over the packages they drive.

- ``main``: the console script (``build_parser``, ``main``); heavy modules load inside each subcommand.
- ``serve``: checks settings and policies, starts the demo upstream when wanted, runs uvicorn.
- ``breakeven``, ``experiments``, ``evaluate``: the economics, experiment-report and evaluation subcommands.
- ``arguments``: argument types the subcommands share.

Nothing imports this package but the console script and tests: it sits on top of the gateway.
"""

from gateway.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
