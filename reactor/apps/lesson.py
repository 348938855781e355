"""``python -m reactor lesson NAME``: run one classic reactor bug, naive beside reactor.

See ``reactor/lessons/`` for what a lesson is and docs/CLASSIC-BUGS.md for
the story of each. ``--list`` names them; ``all`` runs every lesson in turn.
"""

import argparse
import sys
from typing import Any

from .. import lessons

SUMMARY = "run a classic reactor bug, the naive loop beside reactor's, measured"


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the lesson options to ``parser``."""
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="the lesson to run, or 'all' (see --list)")
    parser.add_argument("--list", action="store_true", help="name every lesson and stop")
    parser.add_argument("--seconds", type=float, default=3.0, metavar="S",
                        help="how long each side runs (default 3; 0.5 to 30)")


def run(args: Any) -> int:
    """Run the lesson(s); exit 0 when each side behaved as the lesson says it would."""
    if args.list or not args.name:
        sys.stdout.write(lessons.describe())
        return 0 if args.list else 2
    if not 0.5 <= args.seconds <= 30:
        raise SystemExit("--seconds must be between 0.5 and 30")
    chosen = lessons.names() if args.name == "all" else [args.name]
    if args.name not in lessons.LESSONS and args.name != "all":
        raise SystemExit("no lesson %r; the lessons are: %s"
                         % (args.name, ", ".join(lessons.names())))
    surprised = []
    for name in chosen:
        outcomes = lessons.run(name, args.seconds, sys.stdout)
        sys.stdout.write("\n")
        sys.stdout.flush()
        # The naive side is expected to misbehave and reactor's to behave;
        # anything else is worth a non-zero exit (a slow machine, or a bug).
        if outcomes[0].ok or not all(outcome.ok for outcome in outcomes[1:]):
            surprised.append(name)
    if surprised:
        sys.stderr.write("lesson(s) that did not show the bug as expected: %s\n"
                         % ", ".join(surprised))
        return 1
    return 0
