"""``python -m gateway.cli``: the console script without the installed entry point."""

import sys

from gateway.cli.main import main

sys.exit(main())
