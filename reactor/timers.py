"""Callback handles, the timer-backend interface, and the heap reference backend.

A *handle* is what ``call_soon`` returns: a callback, its arguments and a
``cancel()``. A *timer* is a handle with a deadline. Timers live in a *timer
backend*, a small object the loop owns and drives with one question per pass::

    backend.schedule(when, callback, args) -> Timer     O(log n) heap, O(1) wheel
    backend.cancel(timer)                                O(1) both (heap: lazy)
    backend.reschedule(timer, when)                      the idle-timeout pattern
    backend.next_deadline() -> float | None              bounds select()'s timeout
    backend.expire(now, ready)                           append due timers to ready
    len(backend)                                         live timers

Backends are handed ``now``: ``expire`` and ``next_deadline`` never read a
clock, which is why timer tests never sleep. Two backends ship:

=====================  ==========================  ==============================
backend                strengths                   costs
=====================  ==========================  ==============================
:class:`HeapTimers`    exact, tiny, the textbook   O(log n) schedule; cancelled
(this module)          (asyncio, Twisted, libev)   entries linger until popped
``TimerWheel``         O(1) schedule/cancel/reset  fires up to one tick late;
(``reactor.wheel``)    memory freed on cancel      more code
=====================  ==========================  ==============================

The heap is kept as the simple reference twin of the wheel: the model-based
tests run both against a sorted list, and the benchmarks run both inside the
same loop.

Ordering contract (both backends): a timer never fires before its deadline;
timers fire in (deadline, scheduling order); ``reschedule`` counts as a new
scheduling for that order. A deadline at or before ``now`` (``call_later(0)``,
a past ``call_at``) fires at the next ``expire``, even if the clock has not
moved since.

The one clock a backend touches: the loop sets ``backend.clock`` to its own
clock function, and two callers read it, ``Timer.reset(delay)`` and
:class:`Periodic` (``loop.call_every``), since both need *now + delay* and
hold no reference to the loop. A backend used without a loop has
:func:`no_clock`, which raises.

Discussion: ``reset`` could take ``now`` as an argument instead, keeping the
rule "handed ``now``, never reads a clock" without exception. But then every
caller (a transport resetting its idle timer on each message) would first
have to fetch the loop's time, and a timer could not be reset by code that
does not hold the loop. Lending the clock keeps ``timer.reset(30.0)`` a
one-liner and costs no testability: the function lent *is* the loop's clock,
so under a ``FakeClock`` timers still move only when the test advances it.
(``clock.py`` lists this exception together with the guard's.)
"""

import heapq
import itertools
import math
from typing import Any, Callable, List, Optional, Tuple

from .errors import InvalidDelayError, NotCallableError, ReactorError, TimerCancelledError

_INF = math.inf
#: HeapTimers rebuilds its heap once stale entries outnumber live ones, but
#: never for fewer stale entries than this: a small heap is not worth it.
HEAP_COMPACT_MIN_STALE = 64


class Handle:
    """A callback queued to run once; ``cancel()`` stops it if it has not run yet."""

    __slots__ = ("_callback", "_args")

    def __init__(self, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self._callback = callback
        self._args = args

    def cancel(self) -> None:
        """Drop the callback so it never runs; safe to call more than once."""
        self._callback = None
        self._args = None

    def cancelled(self) -> bool:
        """Tell whether ``cancel()`` was called."""
        return self._callback is None

    def __repr__(self) -> str:
        state = "cancelled" if self._callback is None else callback_name(self._callback)
        return "<%s %s>" % (type(self).__name__, state)


class Timer(Handle):
    """A handle with a deadline, owned by one timer backend.

    ``_queue`` is that backend, which ``cancel`` and ``reset`` call, and
    ``_seq`` the backend's scheduling number, which orders timers with equal
    deadlines. Two more slots belong to the backend alone and mean different
    things in each:

    ``_pos``
        Where the timer sits, or None when it is not scheduled (fired or
        cancelled). In :class:`HeapTimers`, the heap entry
        ``(when, seq, timer)`` itself: an entry is live only while its
        timer's ``_pos`` is that very tuple. In ``TimerWheel``, an int: the
        index of its slot in the wheel's flat slot list, or a negative
        marker for the overflow or the due collection.
    ``_tick``
        Wheel only: the deadline rounded up to a whole tick. The heap never
        sets it.

    The backend sets ``_pos`` (and the wheel ``_tick``) right after
    construction, so ``__init__`` leaves them alone: it runs once per
    ``call_later``.
    """

    __slots__ = ("_when", "_seq", "_queue", "_pos", "_tick")

    def __init__(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...],
                 queue: Any, seq: int) -> None:
        self._callback = callback
        self._args = args
        self._when = when
        self._seq = seq
        self._queue = queue

    def when(self) -> float:
        """Return the deadline, in the loop clock's seconds."""
        return self._when

    def cancel(self) -> None:
        """Unschedule the timer and drop its callback at once, so it holds no memory."""
        if self._callback is not None:
            self._queue.cancel(self)

    def reset(self, delay: float) -> None:
        """Move the deadline to now + ``delay`` seconds, reusing this handle.

        This is the idle-timeout pattern (Twisted's ``DelayedCall.reset``):
        one reset per received message, O(1) on the wheel, no allocation. A
        timer that already fired is armed again. Raises
        :class:`TimerCancelledError` after ``cancel()``.
        """
        # Hot path: once per received message in an idle-timeout server.
        if self._callback is None:
            raise TimerCancelledError("cannot reset a cancelled timer; schedule a new one")
        if not 0.0 <= delay < _INF:
            check_delay(delay)
        queue = self._queue
        queue.reschedule(self, queue.clock() + delay)   # the loop's clock, lent to the backend

    def __repr__(self) -> str:
        state = "cancelled" if self._callback is None else callback_name(self._callback)
        return "<Timer when=%.6f %s>" % (self._when, state)


class Periodic:
    """A call repeated every ``interval`` seconds (``loop.call_every``); ``cancel()`` stops it.

    One timer of the backend, re-armed at *previous deadline + interval*
    before each call, so the schedule never drifts (re-arming at "now +
    interval" would add each call's lateness to all later ones) and an
    exception in the callback cannot stop it. When the loop falls behind by
    whole intervals, the missed calls are skipped, keeping the phase. It
    reads the time from the backend's ``clock`` when it fires, the clock
    the loop lent the backend for ``Timer.reset``.

    The Periodic is itself its timer's callback (``__call__`` is ``_fire``):
    the loop's error log and debug mode's slow-callback log then name it by
    its repr, which names the user's callback, rather than by a method that
    every Periodic shares.
    """

    __slots__ = ("_timers", "_interval", "_callback", "_args", "_deadline", "_timer")

    def __init__(self, timers: Any, now: float, interval: float,
                 callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        self._timers = timers
        self._interval = interval
        self._callback: Optional[Callable[..., Any]] = callback
        self._args = args
        self._deadline = now + interval
        self._timer = timers.schedule(self._deadline, self, ())

    def when(self) -> float:
        """Return the next deadline, in loop time."""
        return self._deadline

    def cancel(self) -> None:
        """Stop the calls; safe to call more than once, and from the callback itself."""
        self._callback = None
        self._timer.cancel()

    def cancelled(self) -> bool:
        """Tell whether ``cancel()`` was called."""
        return self._callback is None

    def _fire(self) -> None:
        """Re-arm at the next deadline, then make the call; the timer calls this, not you."""
        callback = self._callback
        if callback is None:
            return
        interval = self._interval
        deadline = self._deadline + interval
        now = self._timers.clock()
        if deadline <= now:                  # fell behind: skip whole intervals, keep the phase
            deadline += interval * ((now - deadline) // interval + 1)
        self._deadline = deadline
        self._timers.reschedule(self._timer, deadline)
        callback(*self._args)

    __call__ = _fire

    def __repr__(self) -> str:
        state = "cancelled" if self._callback is None else callback_name(self._callback)
        return "<Periodic every %.6g s %s>" % (self._interval, state)


class HeapTimers:
    """A binary heap of ``(deadline, seq, timer)`` entries with lazy deletion.

    Cancel and reschedule leave the old entry in the heap and mark it stale
    (the timer's ``_pos`` no longer points at it); ``expire`` skips stale
    entries as they surface. When stale entries outnumber live ones the heap
    is rebuilt, so memory stays within 2x of the live timers. The callback is
    dropped at cancel time, so a stale entry holds only the small handle.
    """

    def __init__(self) -> None:
        self._heap: List[Tuple[float, int, Timer]] = []
        self._stale = 0
        self._next_seq = itertools.count().__next__
        #: The loop's own clock function, lent by the loop for ``Timer.reset``
        #: and ``Periodic``; the heap itself never calls it.
        self.clock: Callable[[], float] = no_clock

    def __len__(self) -> int:
        return len(self._heap) - self._stale

    def schedule(self, when: float, callback: Callable[..., Any], args: Tuple[Any, ...]) -> Timer:
        """Add a timer firing at ``when``; O(log n)."""
        seq = self._next_seq()
        timer = Timer(when, callback, args, self, seq)
        entry = (when, seq, timer)
        timer._pos = entry
        heapq.heappush(self._heap, entry)
        return timer

    def cancel(self, timer: Timer) -> None:
        """Unschedule ``timer``; its heap entry goes stale and is skipped later."""
        if timer._pos is not None:
            timer._pos = None
            self._stale += 1
            if self._stale > HEAP_COMPACT_MIN_STALE and self._stale * 2 > len(self._heap):
                self._compact()
        timer._callback = None
        timer._args = None

    def reschedule(self, timer: Timer, when: float) -> None:
        """Move ``timer`` to ``when`` by pushing a fresh entry; the old one goes stale."""
        if timer._pos is not None:
            self._stale += 1
        seq = self._next_seq()
        timer._when = when
        timer._seq = seq
        entry = (when, seq, timer)
        timer._pos = entry
        heapq.heappush(self._heap, entry)
        if self._stale > HEAP_COMPACT_MIN_STALE and self._stale * 2 > len(self._heap):
            self._compact()

    def next_deadline(self) -> Optional[float]:
        """Return the earliest live deadline, or None when no timer is live."""
        heap = self._heap
        while heap and heap[0][2]._pos is not heap[0]:
            heapq.heappop(heap)
            self._stale -= 1
        return heap[0][0] if heap else None

    def expire(self, now: float, ready: Any) -> None:
        """Append every live timer with deadline <= ``now`` to ``ready``, in order."""
        # Hot path: runs once per loop pass; the common case is one comparison.
        heap = self._heap
        heappop = heapq.heappop
        while heap and heap[0][0] <= now:
            entry = heappop(heap)
            timer = entry[2]
            if timer._pos is entry:
                timer._pos = None
                ready.append(timer)
            else:
                self._stale -= 1

    def _compact(self) -> None:
        """Drop stale entries and re-heapify: O(n), amortised over as many cancels."""
        self._heap = [entry for entry in self._heap if entry[2]._pos is entry]
        heapq.heapify(self._heap)
        self._stale = 0


def check_delay(delay: Any) -> None:
    """Raise :class:`InvalidDelayError` unless ``delay`` is a finite number >= 0."""
    check_number(delay, "delay")
    if not 0.0 <= delay < _INF:
        raise InvalidDelayError(
            "delay must be a finite number of seconds >= 0, got %r" % (delay,))


def check_deadline(when: Any) -> None:
    """Raise :class:`InvalidDelayError` unless ``when`` is a finite number."""
    check_number(when, "deadline")
    if not -_INF < when < _INF:
        raise InvalidDelayError("deadline must be a finite time in seconds, got %r" % (when,))


def check_interval(interval: Any) -> None:
    """Raise :class:`InvalidDelayError` unless ``interval`` is a finite number > 0."""
    check_number(interval, "interval")
    if not 0.0 < interval < _INF:
        raise InvalidDelayError("interval must be a finite number of seconds > 0, got %r"
                                % (interval,))


def check_number(value: Any, what: str) -> None:
    """Raise :class:`InvalidDelayError` unless ``value`` is an int or a float (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidDelayError("%s must be a number of seconds, got %s %r"
                                % (what, type(value).__name__, value))


def check_callable(callback: Any) -> None:
    """Raise :class:`NotCallableError` unless ``callback`` can be called."""
    if not callable(callback):
        raise NotCallableError(
            "callback must be callable, got %s %r" % (type(callback).__name__, callback))


def no_clock() -> float:
    """Stand in for the clock of a backend not attached to a loop: raise ReactorError."""
    raise ReactorError("this timer backend is not attached to a loop, so it has no 'now' "
                       "for reset() or call_every")


def callback_name(callback: Any) -> str:
    """Name a callback for logs: ``module.qualname`` when it has one, else its repr."""
    target = getattr(callback, "__func__", callback)
    name = getattr(target, "__qualname__", None)
    if name is None:
        return repr(callback)
    module = getattr(target, "__module__", None)
    return "%s.%s" % (module, name) if module else name
