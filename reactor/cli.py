"""The command line: ``python -m reactor SUBCOMMAND [options]``.

Each server subcommand parses its options, builds a loop, listens, logs one
line ``listening on HOST:PORT`` and runs until SIGINT or SIGTERM, then closes
everything and exits 0. The subcommands themselves live in ``reactor/apps``;
this module only wires argument parsing, logging and the loop together.

A server that cannot start says why in one line on stderr and exits 1::

    python -m reactor chat: error: --max-backlog must be a whole number of bytes >= 1, got -5

That line comes from an option the subcommand refused (``SystemExit`` with
a message), an argument the library refused (``ReactorError``, or the
``ValueError`` of a bad ``Limits``), or the system (``OSError``: address in
use, a certificate file missing). A traceback is kept for bugs.
"""

import argparse
import logging
import sys
from typing import List, Optional

from . import __version__
from .apps import SUBCOMMANDS
from .errors import ReactorError


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one sub-parser per app."""
    parser = argparse.ArgumentParser(
        prog="python -m reactor",
        description="Event-driven socket servers on one thread (stdlib only).")
    parser.add_argument("--version", action="version", version="reactor " + __version__)
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="logging threshold (default INFO)")
    parser.add_argument("--debug", action="store_true",
                        help="loop debug mode: log callbacks slower than 100 ms")
    commands = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    commands.required = True
    for name, (summary, configure, _) in SUBCOMMANDS.items():
        configure(commands.add_parser(name, help=summary, description=summary))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run one subcommand; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # With --workers, several processes write here: each line names its pid.
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s" + ("[%(process)d]" if getattr(
                            args, "workers", None) else "") + " %(levelname)s %(message)s")
    run = SUBCOMMANDS[args.command][2]
    try:
        return run(args) or 0
    except SystemExit as exc:
        if not isinstance(exc.code, str):             # sys.exit(status): pass it on
            raise
        message = exc.code
    except (OSError, ReactorError, ValueError) as exc:
        # Only starting up can raise here: once the loop runs, it catches what
        # each callback raises. So these are arguments or the system, not bugs.
        message = str(exc)
    print("%s %s: error: %s" % (parser.prog, args.command, message), file=sys.stderr)
    return 1
