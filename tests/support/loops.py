"""Driving a loop from a test: run passes until something holds, or move a fake clock.

Real sockets need real passes (the kernel moves the bytes), so ``run_until``
is bounded by real seconds; it never moves a ``FakeClock``, so timeouts
measured by one stay exactly where the test put them. ``advance`` is the
only way fake time moves.
"""

import time

#: The longest one pass waits for I/O while ``run_until`` polls its predicate.
PASS_WAIT_SECONDS = 0.01


def run_until(loop, predicate, timeout=5.0):
    """Run loop passes until ``predicate()`` is true; fail after ``timeout`` real seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within %.1f s" % timeout)
        loop.run_once(PASS_WAIT_SECONDS)


def run_passes(loop, passes, max_wait_seconds=0.0):
    """Run ``passes`` loop passes, each waiting at most ``max_wait_seconds`` for I/O."""
    for _ in range(passes):
        loop.run_once(max_wait_seconds)


def advance(loop, clock, seconds, passes=5):
    """Move the fake ``clock`` by ``seconds`` and let ``loop`` run what became due."""
    clock.advance(seconds)
    run_passes(loop, passes)
