"""Shared fixtures: a loop per selector class, a fake clock, fd accounting."""

import os
import selectors

import pytest

from reactor import FakeClock, Reactor

SELECTOR_CLASSES = [getattr(selectors, name) for name in
                    ("SelectSelector", "PollSelector", "EpollSelector",
                     "DevpollSelector", "KqueueSelector")
                    if hasattr(selectors, name)]


@pytest.fixture(params=SELECTOR_CLASSES, ids=lambda cls: cls.__name__)
def selector_class(request):
    return request.param


@pytest.fixture
def loop(selector_class):
    """A real-clock loop on each selector class the platform has."""
    reactor_loop = Reactor(selector=selector_class())
    yield reactor_loop
    if reactor_loop.is_running():
        reactor_loop.stop()
    reactor_loop.close()


@pytest.fixture
def clock():
    return FakeClock(1000.0)


@pytest.fixture
def fake_loop(clock, selector_class):
    """A loop whose time moves only when the test advances ``clock``."""
    reactor_loop = Reactor(selector=selector_class(), clock=clock)
    yield reactor_loop
    reactor_loop.close()


def open_fds():
    """Return the set of this process's open fds (Linux /proc), or None elsewhere."""
    if not os.path.isdir("/proc/self/fd"):
        return None
    return set(os.listdir("/proc/self/fd"))


def run_until(loop, predicate, timeout=5.0):
    """Run loop passes until ``predicate()`` is true; fail after ``timeout`` real seconds."""
    import time
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached within %.1f s" % timeout)
        loop.run_once(0.05)


