"""Entry point for ``python -m reactor``; see ``reactor/cli.py``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
