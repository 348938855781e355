"""Shared fixtures: a loop per selector class (and the native epoll poller), and a fake clock (helpers: ``tests/support/``)."""

import selectors

import pytest

from reactor import FakeClock, Reactor
from reactor.poller import EpollPoller

from .support.processes import need_binary
from .support.redis import RedisServers


#: Every selector the platform has, through the portable seam (poller.SelectorPoller),
#: and on Linux the loop's own default: epoll called directly (poller.EpollPoller).
SELECTOR_CLASSES = [getattr(selectors, name) for name in
                    ("SelectSelector", "PollSelector", "EpollSelector",
                     "DevpollSelector", "KqueueSelector")
                    if hasattr(selectors, name)]
if hasattr(selectors, "EpollSelector"):
    SELECTOR_CLASSES.append(EpollPoller)


@pytest.fixture(params=SELECTOR_CLASSES, ids=lambda cls: cls.__name__)
def selector_class(request):
    """Each selector class the platform has, in turn."""
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
    """A fake clock at 1000.0 that moves only when the test advances it."""
    return FakeClock(1000.0)


@pytest.fixture
def fake_loop(clock, selector_class):
    """A loop whose time moves only when the test advances ``clock``."""
    reactor_loop = Reactor(selector=selector_class(), clock=clock)
    yield reactor_loop
    reactor_loop.close()


@pytest.fixture
def net():
    """A real-clock reactor on the default selector."""
    loop = Reactor()
    yield loop
    loop.close()


@pytest.fixture
def fake_net():
    """A reactor whose time moves only when the test moves ``fake_net.clock``."""
    clock = FakeClock(5000.0)
    loop = Reactor(clock=clock)
    loop.clock = clock
    yield loop
    loop.close()


@pytest.fixture
def redis(tmp_path):
    """Start redis-servers on demand (``redis.start()``); skip without one (fail in CI)."""
    servers = RedisServers(need_binary("redis-server", "redis-server"), tmp_path)
    yield servers
    servers.stop_all()
