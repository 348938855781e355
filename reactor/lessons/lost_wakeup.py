"""The lost wake-up: work handed to a sleeping loop waits until something else wakes it.

A loop sleeps in ``select()`` until one of *its file descriptors* is ready
or its timeout passes. Another thread (a worker finishing a job, a
database driver's callback thread) that hands the loop work by appending
to a queue has changed nothing the kernel can see::

    jobs.append(job)                  # the loop is asleep in select() ...
    # ... and stays asleep until an unrelated socket or timer wakes it

So the job waits for whatever comes next: a client's bytes, the next
housekeeping timer, or forever. Checking the queue just before ``select()``
does not help either: the job can arrive between the check and the call.
(A signal handler that only sets a flag has the same race.)

The fix is to make the hand-off visible to ``select()``: the *self-pipe
trick*. The loop watches one end of a socketpair; whoever hands over work
writes a byte to the other end, and ``select()`` returns. Reactor's
``loop.call_soon_threadsafe`` appends the callback and then writes one
wake-up byte (``wakeup.py:Wakeup.wake``), coalesced so a busy producer
cannot fill the pipe; signals write their number into the same pipe
through ``signal.set_wakeup_fd`` (``wakeup.py:Wakeup.add_signal_handler``),
so the race after the check cannot lose them either.

In the lesson a thread hands the loop a job every 5-25 ms. The naive loop
appends to a deque and otherwise sleeps until its 250 ms housekeeping
timer; reactor's loop sleeps until its only timer, the end of the run.
The figure is the delay from hand-off to the job running.
"""

import collections
import random
import selectors
import socket
import threading
import time
from typing import Callable, List

from .. import Reactor
from . import Outcome

TITLE = "The lost wake-up: work handed to a sleeping loop waits for an unrelated event"
PREVENTED_BY = ("loop.py:EventLoop.call_soon_threadsafe", "wakeup.py:Wakeup.wake",
                "wakeup.py:Wakeup.add_signal_handler")
PROVED_BY = ("tests/test_loop.py::test_call_soon_threadsafe_wakes_the_loop_with_one_byte",
             "tests/test_loop.py::test_signal_handler_runs_as_a_loop_callback")

HOUSEKEEPING_SECONDS = 0.25
#: A side behaves if the median hand-off waited less than this (0.5 ms is usual).
OK_MEDIAN_SECONDS = 0.02
SEED = 19


def run(seconds: float) -> List[Outcome]:
    """Hand a sleeping loop jobs from a thread, naive then reactor; naive first."""
    return [_naive(seconds), _reactor(seconds)]


def _naive(seconds: float) -> Outcome:
    """A ``selectors`` loop fed through a deque nobody tells it about: the bug."""
    jobs: collections.deque = collections.deque()
    delays: List[float] = []
    selector = selectors.DefaultSelector()
    quiet, other_end = socket.socketpair()       # a loop has sockets; these stay quiet
    selector.register(quiet, selectors.EVENT_READ)
    producer = _Producer(jobs.append)              # WRONG: appends, and nothing wakes the loop
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            selector.select(min(HOUSEKEEPING_SECONDS, max(0.0, deadline - time.monotonic())))
            while jobs:                            # runs only when select() returned anyway
                delays.append(time.perf_counter() - jobs.popleft())
    finally:
        producer.stop()
        selector.close()
        quiet.close()
        other_end.close()
    return _outcome("naive", delays, list(jobs), producer.handed)


def _reactor(seconds: float) -> Outcome:
    """Reactor's loop, fed through ``call_soon_threadsafe``: one byte wakes it."""
    delays: List[float] = []
    loop = Reactor()
    producer = None
    try:
        loop.call_later(seconds, loop.stop)
        producer = _Producer(lambda handed_at: loop.call_soon_threadsafe(
            lambda: delays.append(time.perf_counter() - handed_at)))
        loop.run(stop_on_signals=False)
    finally:
        if producer is not None:
            producer.stop()
        loop.close()                               # drops jobs handed over after the stop
    return _outcome("reactor", delays, [], producer.handed)


class _Producer:
    """A thread handing over one job (its hand-off time) every 5-25 ms until ``stop()``."""

    def __init__(self, hand_over: Callable[[float], object]) -> None:
        self.handed = 0
        self._hand_over = hand_over
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pauses = random.Random(SEED)
        while not self._stopping.wait(pauses.uniform(0.005, 0.025)):
            try:
                self._hand_over(time.perf_counter())
            except RuntimeError:                   # the loop closed meanwhile
                return
            self.handed += 1

    def stop(self) -> None:
        """Stop handing over jobs and wait for the thread."""
        self._stopping.set()
        self._thread.join(5.0)


def _outcome(side: str, delays: List[float], left: List[float], handed: int) -> Outcome:
    """Summarise the delays; ``left`` holds the hand-off times of jobs never run."""
    now = time.perf_counter()
    waits = sorted(delays)
    median = waits[len(waits) // 2] if waits else float("inf")
    longest = max(waits + [now - handed_at for handed_at in left], default=0.0)
    figures = {"jobs handed over": handed,
               "jobs run": len(delays),
               "median hand-off to run (ms)": round(median * 1000, 3),
               "longest wait (ms)": round(longest * 1000, 1)}
    ok = median < OK_MEDIAN_SECONDS and longest < HOUSEKEEPING_SECONDS / 2
    verdict = ("a job handed over from another thread waited %.3g ms (median, longest %.3g ms) "
               "before it ran%s" % (median * 1000, longest * 1000,
                                    "" if ok else ": until something else woke the loop"))
    return Outcome(side, figures, verdict, ok)
