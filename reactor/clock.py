"""Clocks: where `reactor` gets the time, and a fake one for tests.

The loop owns the clock: it asks it for the time, and what runs below it
(timer backends' ``expire``, rate limiters) is handed ``now`` as an
argument. That seam is what lets the whole framework be tested without
sleeping: give the loop a :class:`FakeClock`, advance it by hand, and every
timer behaves as if that much time had passed. (Twisted's ``task.Clock`` is
the model.)

Two places read the loop's clock function themselves, by design:

* the timer backend: the loop lends it its clock as ``backend.clock``, for
  ``Timer.reset(delay)`` and ``call_every``'s ``Periodic``, which need
  *now + delay* (see ``timers.py``);
* the protections' ``Guard``, which keeps ``loop._clock`` and calls it on
  each read and write it meters (see ``protect/guard.py``).

Discussion: both could be handed ``now`` instead. A timer would then need a
reference to the loop to be reset (or every caller would fetch the time
first), and each guarded read would pay a call to ``loop.time()``, one frame
more on the hot path. Neither exception weakens testing: what they call is
the loop's own clock function, so under a ``FakeClock`` they see exactly the
time the loop sees, and still nothing sleeps.

A clock is any zero-argument callable returning seconds as a float that
never goes backwards. The default is :func:`time.monotonic`, never
:func:`time.time`: wall-clock time jumps when an administrator or NTP sets the
date, and a timeout measured against it would fire early or never.
"""

import math
import time

#: The default clock: seconds from an arbitrary origin, never going back.
monotonic = time.monotonic


class FakeClock:
    """A clock that moves only when told to; inject it with ``Reactor(clock=...)``.

    ``FakeClock()`` starts at 0.0. Calling the instance returns the current
    fake time, so it has the same shape as :func:`time.monotonic`.
    """

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move time forward by ``seconds`` (>= 0) and return the new time.

        Raises ``ValueError`` for negative or non-finite steps, since a
        monotonic clock cannot go back and a NaN time would poison every
        comparison made against it.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(
                "FakeClock.advance() needs a finite number of seconds >= 0, got %r" % (seconds,))
        self._now += seconds
        return self._now

    def set(self, now: float) -> None:
        """Jump to absolute time ``now``; it must not be earlier than the current time."""
        if not math.isfinite(now) or now < self._now:
            raise ValueError(
                "FakeClock.set(%r): time must be finite and not earlier than %r" % (now, self._now))
        self._now = float(now)

    def __repr__(self) -> str:
        return "FakeClock(%r)" % (self._now,)
