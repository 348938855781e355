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
``call_every``, in real time (drift is a real-time bug). Each tick is
compared with the point of the ideal grid ``start + N * interval`` it
stands for: the naive loop takes its Nth tick for the Nth period; reactor's
knows its deadline (``Periodic.when()``), and a period it had to skip,
the loop being too far behind, counts as a tick lost, not as drift.
"""

import selectors
import socket
import time
from typing import List, Tuple

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
#: A side behaves if its last tick is within this many intervals of its grid point.
#: Reactor's stays within one; the naive loop falls ~2.4 intervals further behind
#: every 100 ms (3 ms of work and ~0.1 ms of wake-up per 13.1 ms period).
OK_DRIFT_INTERVALS = 3.0

Ticks = List[Tuple[float, int]]        # (when a tick ran, the grid point it stands for)


def run(seconds: float) -> List[Outcome]:
    """Tick for ``seconds`` re-arming from now, then with ``call_every``; naive first."""
    return [_outcome("naive", *_naive_ticks(seconds), seconds),
            _outcome("reactor", *_reactor_ticks(seconds), seconds)]


def _naive_ticks(seconds: float) -> Tuple[float, Ticks]:
    """A ``selectors`` loop with one timer, re-armed from *now*: the bug. Returns start, ticks."""
    selector = selectors.DefaultSelector()
    quiet, other_end = socket.socketpair()        # a loop has sockets; these stay quiet
    selector.register(quiet, selectors.EVENT_READ)
    ticks: Ticks = []
    start = time.monotonic()
    end = start + seconds
    next_deadline = start + INTERVAL_SECONDS
    try:
        while True:
            now = time.monotonic()
            if now >= end:
                break
            selector.select(max(0.0, min(next_deadline, end) - now))
            now = time.monotonic()
            if now >= next_deadline:
                ticks.append((now, len(ticks) + 1))    # it takes this for period N
                time.sleep(WORK_SECONDS)                             # the tick's work
                next_deadline = time.monotonic() + INTERVAL_SECONDS  # WRONG: from now
    finally:
        selector.close()
        quiet.close()
        other_end.close()
    return start, ticks


def _reactor_ticks(seconds: float) -> Tuple[float, Ticks]:
    """The same tick with ``loop.call_every``: re-armed from its deadline. Returns start, ticks."""
    loop = Reactor()
    ticks: Ticks = []
    start = loop.time()

    def tick() -> None:
        # Re-armed before this call: the deadline this tick stands for is one interval back.
        deadline = periodic.when() - INTERVAL_SECONDS
        ticks.append((loop.time(), round((deadline - start) / INTERVAL_SECONDS)))
        time.sleep(WORK_SECONDS)                  # the same work

    try:
        periodic = loop.call_every(INTERVAL_SECONDS, tick)
        loop.call_later(seconds, loop.stop)
        loop.run(stop_on_signals=False)
    finally:
        loop.close()
    return start, ticks


def _outcome(side: str, start: float, ticks: Ticks, seconds: float) -> Outcome:
    """Compare each tick with the grid point it stands for: how far behind it fell."""
    expected = int(seconds / INTERVAL_SECONDS)
    behind = [when - (start + period * INTERVAL_SECONDS) for when, period in ticks]
    drift = behind[-1] if behind else seconds
    lost_per_second = max(0, expected - len(ticks)) / seconds
    ok = drift < OK_DRIFT_INTERVALS * INTERVAL_SECONDS
    figures = {
        "ticks expected (%d ms apart)" % round(INTERVAL_SECONDS * 1000): expected,
        "ticks run": len(ticks),
        "ticks lost per second": round(lost_per_second, 1),
        "last tick behind its grid point (ms)": round(drift * 1000, 1),
        "worst tick behind its grid point (ms)": round(max(behind, default=0.0) * 1000, 1),
    }
    if ok:
        verdict = ("ran %d of %d ticks, the last %.1f ms off the grid: each re-armed from its "
                   "deadline, so lateness never added up" % (len(ticks), expected, drift * 1000))
    else:
        verdict = ("ran %d of %d ticks and the last was %.0f ms behind the grid: each tick "
                   "re-armed from now, so every period's work and lateness added up"
                   % (len(ticks), expected, drift * 1000))
    return Outcome(side, figures, verdict, ok)
