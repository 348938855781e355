"""Timer drift: a periodic tick re-armed from *now* slips a little further every period.

A server that sends a heartbeat every 10 ms, samples a sensor, or flushes
a log on a beat usually starts as "do the work, then sleep one interval"::

    next_deadline = time.monotonic() + interval     # WRONG: counted from now

Each period then lasts the interval *plus* the time the work took *plus*
how late the loop woke up. None of that is ever paid back, so the error
of the Nth tick against ``start + N * interval`` grows without bound: a
3 ms job on a 10 ms beat loses a quarter of its ticks, every second.

The fix is to count from the previous *deadline*, not from now. Reactor's
``loop.call_every`` re-arms at ``deadline + interval`` before it calls you
(``timers.py:Periodic._fire``), so a late tick does not move the next one;
if the loop falls behind by whole intervals it skips them and keeps the
phase. The error of every tick stays under one interval.

The lesson runs the same 10 ms tick with 3 ms of work per tick, first in
a plain ``selectors`` loop that re-arms from now, then with
``call_every``, in real time (drift is a real-time bug), and compares the
last tick's lateness against the ideal grid, and the ticks lost.
"""

import selectors
import socket
import time
from typing import List

from .. import Reactor
from . import Outcome

TITLE = "Timer drift: a periodic timer re-armed from now slips further every period"
PREVENTED_BY = ("timers.py:Periodic._fire", "loop.py:EventLoop.call_every")
PROVED_BY = ("tests/test_timers.py::test_call_every_keeps_its_deadlines_when_calls_run_late",
             "tests/test_timers.py::"
             "test_call_every_skips_the_calls_missed_while_the_loop_was_behind")

INTERVAL_SECONDS = 0.010
#: The work each tick does (a sleep stands in for it: it is wall time that matters).
WORK_SECONDS = 0.003
#: A side behaves if its last tick is within this many intervals of the ideal grid.
#: Reactor's stays within one; the naive loop is ~3 intervals late per 100 ms.
OK_DRIFT_INTERVALS = 3.0


def run(seconds: float) -> List[Outcome]:
    """Tick for ``seconds`` re-arming from now, then with ``call_every``; naive first."""
    return [_outcome("naive", _naive_ticks(seconds), seconds),
            _outcome("reactor", _reactor_ticks(seconds), seconds)]


def _naive_ticks(seconds: float) -> List[float]:
    """A ``selectors`` loop with one timer, re-armed from *now*: the bug. Returns tick times."""
    selector = selectors.DefaultSelector()
    quiet, other_end = socket.socketpair()        # a loop has sockets; these stay quiet
    selector.register(quiet, selectors.EVENT_READ)
    ticks = [time.monotonic()]                    # ticks[0] is the start of the grid
    end = ticks[0] + seconds
    next_deadline = ticks[0] + INTERVAL_SECONDS
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            selector.select(max(0.0, min(next_deadline, end) - now))
            now = time.monotonic()
            if now >= next_deadline:
                ticks.append(now)
                time.sleep(WORK_SECONDS)                           # the tick's work
                next_deadline = time.monotonic() + INTERVAL_SECONDS   # WRONG: from now
    finally:
        selector.close()
        quiet.close()
        other_end.close()
    return ticks


def _reactor_ticks(seconds: float) -> List[float]:
    """The same tick with ``loop.call_every``: re-armed from its deadline. Returns tick times."""
    loop = Reactor()
    ticks = [loop.time()]

    def tick() -> None:
        ticks.append(loop.time())
        time.sleep(WORK_SECONDS)                  # the same work

    try:
        loop.call_every(INTERVAL_SECONDS, tick)
        loop.call_later(seconds, loop.stop)
        loop.run(stop_on_signals=False)
    finally:
        loop.close()
    return ticks


def _outcome(side: str, ticks: List[float], seconds: float) -> Outcome:
    """Compare tick N with ``start + N * interval``: how far behind the grid it fell."""
    start, run_ticks = ticks[0], len(ticks) - 1
    expected = int(seconds / INTERVAL_SECONDS)
    # Reactor's ticks are each up to one wheel tick (1 ms) plus the select()
    # wake-up late, but that lateness is not carried into the next one.
    drift = (ticks[-1] - (start + run_ticks * INTERVAL_SECONDS)) if run_ticks else seconds
    worst = max((t - (start + n * INTERVAL_SECONDS) for n, t in enumerate(ticks) if n), default=0.0)
    lost_per_second = max(0, expected - run_ticks) / seconds
    ok = drift < OK_DRIFT_INTERVALS * INTERVAL_SECONDS and run_ticks >= expected * 0.8
    figures = {
        "ticks expected (%d ms apart)" % round(INTERVAL_SECONDS * 1000): expected,
        "ticks run": run_ticks,
        "ticks lost per second": round(lost_per_second, 1),
        "last tick behind start + N*interval (ms)": round(drift * 1000, 1),
        "worst tick behind the grid (ms)": round(worst * 1000, 1),
    }
    if ok:
        verdict = ("ran %d of %d ticks, the last %.1f ms off the grid: each re-armed from its "
                   "deadline, so lateness never added up" % (run_ticks, expected, drift * 1000))
    else:
        verdict = ("ran %d of %d ticks and the last was %.0f ms behind the grid: each tick "
                   "re-armed from now, so every period's work and lateness added up"
                   % (run_ticks, expected, drift * 1000))
    return Outcome(side, figures, verdict, ok)
