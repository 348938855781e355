"""The classic reactor bugs as runnable lessons: ``python -m reactor lesson NAME``.

Every event loop written by hand meets the same dozen bugs. Reading about
them is not the same as watching one happen, so each lesson here runs two
programs side by side on loopback for a few seconds: the *naive* one, a
plain ``selectors`` loop (or a plain blocking call) written the way the bug
is usually written, and *reactor*'s, which uses the library. Then it prints
what each did, measured: CPU seconds, bytes delivered, latency, fds held.
The numbers are the lesson; docs/CLASSIC-BUGS.md tells the story of each.

A lesson is one module in this package. Its contract:

* the module docstring tells the bug: what goes wrong, why, and the fix;
* ``TITLE``: one line, the bug's name;
* ``PREVENTED_BY``: ``file:function`` names in ``reactor/`` where the fix lives;
* ``PROVED_BY``: pytest ids of the regression tests that would fail without it;
* ``run(seconds) -> List[Outcome]``: run both sides for about ``seconds``
  each, on loopback only, closing every socket, thread and process it
  started, and return one ``Outcome`` per side (naive first).

The lessons sit at the top of the layer table (with the apps): they may use
anything in ``reactor/``, and nothing below imports them. The naive halves
are deliberately wrong, in one way each, and must not be copied.
"""

import importlib
from typing import Dict, List, NamedTuple, Optional, TextIO

#: Lesson name -> module in this package. Names are what ``python -m reactor lesson`` takes.
LESSONS: Dict[str, str] = {
    "emfile-spin": "emfile_spin",
    "partial-send": "partial_send",
    "half-close": "half_close",
    "tls-close-hang": "tls_close",
    "timer-drift": "timer_drift",
    "slow-callback": "slow_callback",
    "lost-wakeup": "lost_wakeup",
    "fd-reuse": "fd_reuse",
    "greedy-reader": "greedy_reader",
    "unbounded-buffer": "unbounded_buffer",
    "blocking-dns": "blocking_dns",
}


class Outcome(NamedTuple):
    """What one side of a lesson did: its label, what was measured, and a verdict.

    ``figures`` maps a short description to a value ("CPU seconds": 2.91);
    ``verdict`` is one sentence a student can check against the figures.
    ``ok`` is True when that side behaved (the naive side is expected not to).
    """

    side: str
    figures: Dict[str, object]
    verdict: str
    ok: bool


def names() -> List[str]:
    """Return the lesson names in the order docs/CLASSIC-BUGS.md tells them."""
    return list(LESSONS)


def load(name: str):
    """Import the lesson module called ``name``; KeyError naming the lessons if there is none."""
    try:
        module = LESSONS[name]
    except KeyError:
        raise KeyError("no lesson %r; the lessons are: %s" % (name, ", ".join(LESSONS))) from None
    return importlib.import_module("." + module, __name__)


def run(name: str, seconds: float, out: TextIO) -> List[Outcome]:
    """Run lesson ``name`` for about ``seconds`` per side, print what happened to ``out``."""
    lesson = load(name)
    out.write("lesson %s: %s (about %.1f s per side)\n\n" % (name, lesson.TITLE, seconds))
    out.flush()
    outcomes = lesson.run(seconds)
    width = max(len(outcome.side) for outcome in outcomes)
    for outcome in outcomes:
        out.write("  %-*s  %s\n" % (width, outcome.side, outcome.verdict))
        for label, value in outcome.figures.items():
            out.write("  %-*s    %s: %s\n" % (width, "", label, _figure(value)))
    out.write("\n  prevented by: %s\n" % ", ".join("reactor/" + ref for ref in lesson.PREVENTED_BY))
    out.write("  proved by:    %s\n" % ", ".join(lesson.PROVED_BY))
    out.write("  the story:    docs/CLASSIC-BUGS.md#%s\n" % name)
    return outcomes


def describe(name: Optional[str] = None) -> str:
    """One line per lesson (name and title), for ``lesson --list``."""
    return "".join("%-18s %s\n" % (lesson, load(lesson).TITLE)
                   for lesson in ([name] if name else LESSONS))


def _figure(value: object) -> str:
    if isinstance(value, float):
        return "%.3g" % value if abs(value) < 1000 else "{:,.0f}".format(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return "{:,}".format(value)
    return str(value)
