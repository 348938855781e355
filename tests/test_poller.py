"""The poller (reactor/poller.py): epoll called directly, and any selector behind the same face.

The loop's dispatch reads ``(fd, events)`` pairs and a dict of watchers; these
tests pin what both pollers promise, above all the ``selectors`` semantics
that ``watchers.py`` relies on (KeyError, closed socket objects, a failed
modify forgets the fd), and what epoll reports for a hang-up.
"""

import select
import selectors
import socket

import pytest

from reactor import DatagramProtocol, Reactor
from reactor.poller import (IN, OUT, READABLE, WRITABLE, EpollPoller, SelectorPoller,
                            make_poller)

from .support.loops import run_until

needs_epoll = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux-only")


@pytest.fixture(params=["selector", "epoll"])
def poller(request):
    if request.param == "epoll" and not hasattr(select, "epoll"):
        pytest.skip("epoll is Linux-only")
    made = EpollPoller() if request.param == "epoll" else SelectorPoller(
        selectors.DefaultSelector())
    yield made
    made.close()


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


# -- choosing ---------------------------------------------------------------------------


@needs_epoll
def test_the_loop_uses_epoll_directly_only_when_it_chooses():
    """No selector given: EpollPoller. A selector given: that selector, even an epoll one;
    an EpollPoller given: used as it is."""
    assert isinstance(make_poller(), EpollPoller)
    given = selectors.EpollSelector()
    wrapped = make_poller(given)
    assert isinstance(wrapped, SelectorPoller) and wrapped.selector is given
    own = EpollPoller()
    assert make_poller(own) is own
    for made in (wrapped, own):
        made.close()


# -- the registration calls (selectors' semantics) ----------------------------------------


def test_register_modify_unregister_keep_watchers_in_step(poller, pair):
    a, _ = pair
    key = poller.register(a, selectors.EVENT_READ, "reader")
    assert (key.fd, key.events, key.data) == (a.fileno(), selectors.EVENT_READ, "reader")
    assert poller.watchers == {a.fileno(): "reader"}
    assert poller.get_key(a) is poller.get_map()[a.fileno()]
    poller.modify(a.fileno(), selectors.EVENT_READ | selectors.EVENT_WRITE, "both")
    assert poller.watchers == {a.fileno(): "both"}
    assert poller.get_key(a).events == selectors.EVENT_READ | selectors.EVENT_WRITE
    assert poller.unregister(a.fileno()).data == "both"
    assert poller.watchers == {} and len(poller.get_map()) == 0


def test_registration_errors_are_those_of_selectors(poller, pair):
    a, _ = pair
    poller.register(a, selectors.EVENT_READ, "x")
    with pytest.raises(KeyError):
        poller.register(a, selectors.EVENT_READ, "again")
    with pytest.raises(KeyError):
        poller.unregister(9999)
    with pytest.raises(KeyError):
        poller.modify(9999, selectors.EVENT_READ, "x")
    with pytest.raises(ValueError):
        poller.register(object(), selectors.EVENT_READ, "x")


def test_a_socket_closed_while_registered_can_still_be_found_and_unregistered(poller):
    """Its fileno() is -1 now; like selectors, the poller finds the object among its keys."""
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.register(a, selectors.EVENT_READ, "x")
    a.close()
    b.close()
    assert poller.get_key(a).fd == fd
    poller.unregister(a)
    assert fd not in poller.watchers


def test_a_failed_modify_forgets_the_fd(poller):
    """epoll/poll: modify() of an fd closed behind the poller's back raises OSError (or, for
    select, nothing); either way the watchers dict never names an fd the selector forgot."""
    a, b = socket.socketpair()
    fd = a.fileno()
    poller.register(fd, selectors.EVENT_READ, "x")
    a.close()
    b.close()
    try:
        poller.modify(fd, selectors.EVENT_WRITE, "y")
    except OSError:
        pass
    assert set(poller.watchers) == set(poller.get_map())


# -- waiting ------------------------------------------------------------------------------


def test_wait_reports_readable_and_writable_as_epoll_bits(poller, pair):
    a, b = pair
    poller.register(a, selectors.EVENT_READ, "reader")
    poller.register(b, selectors.EVENT_WRITE, "writer")
    assert poller.wait(0) == [(b.fileno(), OUT)]
    b.send(b"x")
    ready = dict(poller.wait(0.5))
    assert ready == {a.fileno(): IN, b.fileno(): OUT}


def test_wait_honours_its_timeout(poller, pair):
    a, _ = pair
    poller.register(a, selectors.EVENT_READ, "reader")
    assert poller.wait(0.01) == []
    assert poller.wait(0) == []


@needs_epoll
def test_a_hang_up_counts_as_readable_and_writable():
    """The peer closed: epoll says IN|HUP (with RDHUP when asked); the loop calls both
    on_readable and on_writable, as selectors would map it, and each watcher ignores the
    direction it is not watching."""
    poller = EpollPoller()
    a, b = socket.socketpair()
    try:
        poller.register(a, selectors.EVENT_READ, "reader")
        b.close()
        [(fd, bits)] = poller.wait(0.5)
        assert fd == a.fileno() and bits & READABLE
        a.shutdown(socket.SHUT_WR)
        [(fd, bits)] = poller.wait(0.5)
        assert bits & WRITABLE and bits & READABLE    # HUP: both directions are done
        assert poller.select(0) == [(poller.get_key(a), selectors.EVENT_READ)]
    finally:
        a.close()
        poller.close()


# -- in the loop --------------------------------------------------------------------------


def test_a_watcher_unwatched_earlier_in_the_pass_is_not_called(selector_class):
    """Two readers ready in one pass; the first removes the second: it must not run."""
    loop = Reactor(selector=selector_class())
    first, first_peer = socket.socketpair()
    second, second_peer = socket.socketpair()
    calls = []
    try:
        def on_first():
            calls.append("first")
            first.recv(10)
            loop.remove_reader(second)

        def on_second():
            calls.append("second")
            second.recv(10)
            loop.remove_reader(first)

        loop.add_reader(first, on_first)
        loop.add_reader(second, on_second)
        first_peer.send(b"1")
        second_peer.send(b"2")
        run_until(loop, lambda: calls)
        loop.run_once(0.05)
        assert calls in (["first"], ["second"])
    finally:
        for sock in (first, first_peer, second, second_peer):
            sock.close()
        loop.close()


def test_a_paused_datagram_transport_ignores_a_readable_call(loop):
    """An error event on a paused socket reports it readable: on_readable must not deliver."""
    received = []

    class Sink(DatagramProtocol):
        def datagram_received(self, data, addr):
            received.append(data)

    transport = loop.listen_udp(Sink, "127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        transport.pause_reading()
        sender.sendto(b"held", transport.get_extra_info("sockname"))
        transport.on_readable()                   # what the loop does on an error event
        assert received == []
        transport.resume_reading()
        run_until(loop, lambda: received)
        assert received == [b"held"]
    finally:
        sender.close()
        transport.close()
        loop.run_once(0)
