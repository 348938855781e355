"""Loop safety: one loop per thread, thread checks in debug mode, Ctrl-C, slow callbacks, dead fds."""

import logging
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import reactor
from reactor import (LoopRunningError, NoRunningLoopError, Protocol, WrongThreadError)

from .support.loops import run_until
from .support.processes import ROOT, run_in_thread



def test_a_second_loop_cannot_run_inside_a_running_loops_callback(loop):
    """run() of another loop from a callback raises LoopRunningError (it would freeze the first)."""
    other = reactor.Reactor()
    errors = []

    def nested():
        for run in (other.run, other.run_once):
            try:
                run()
            except LoopRunningError as exc:
                errors.append(str(exc))
        loop.stop()
    try:
        loop.call_soon(nested)
        loop.run(stop_on_signals=False)
        assert len(errors) == 2 and all("another loop" in e for e in errors)
        other.run_once()                      # once the first loop returned, the second runs
    finally:
        other.close()


def test_loops_on_different_threads_run_side_by_side(loop):
    """The rule is per thread: a loop on another thread runs while this one does."""
    ran = []

    def worker():
        other = reactor.Reactor()
        other.call_soon(ran.append, "other")
        other.run_once()
        other.close()

    def start():
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(5)
        loop.stop()
    loop.call_soon(start)
    loop.run(stop_on_signals=False)
    assert ran == ["other"]


def test_get_running_loop_inside_and_outside_callbacks(loop):
    """get_running_loop() returns the loop from a callback and raises outside one."""
    seen = []
    loop.call_soon(lambda: seen.append(reactor.get_running_loop()))
    loop.run_once()
    assert seen == [loop]
    with pytest.raises(NoRunningLoopError, match="no reactor loop is running on this thread"):
        reactor.get_running_loop()


def test_a_protocol_reaches_its_loop_through_its_transport(loop):
    """transport.loop is the loop, on both ends of a connection."""
    seen = []

    class Probe(Protocol):
        def connection_made(self, transport):
            seen.append(transport.loop)
    server = loop.listen_tcp(Probe, "127.0.0.1", 0)
    loop.connect_tcp(Probe, "127.0.0.1", server.addresses[0][1])
    try:
        run_until(loop, lambda: len(seen) == 2)
        assert seen == [loop, loop]
    finally:
        server.close()


def call_from_thread(function):
    """Run ``function`` on another thread; return the exception it raised (or None)."""
    thread, result = run_in_thread(function)
    thread.join(5)
    assert not thread.is_alive()
    return result.get("error")


@pytest.mark.parametrize("call", ["call_soon", "call_later", "call_at", "add_reader",
                                  "remove_reader", "listen_tcp", "connect_tcp"])
def test_debug_mode_refuses_calls_from_another_thread(selector_class, call):
    """In debug mode a non-threadsafe call from a foreign thread raises WrongThreadError,
    whose message points to call_soon_threadsafe."""
    loop = reactor.Reactor(selector=selector_class(), debug=True)
    spare_a, spare_b = socket.socketpair()
    calls = {
        "call_soon": lambda: loop.call_soon(print),
        "call_later": lambda: loop.call_later(1, print),
        "call_at": lambda: loop.call_at(loop.time() + 1, print),
        "add_reader": lambda: loop.add_reader(spare_a, print),
        "remove_reader": lambda: loop.remove_reader(spare_a),
        "listen_tcp": lambda: loop.listen_tcp(Protocol, "127.0.0.1", 0),
        "connect_tcp": lambda: loop.connect_tcp(Protocol, "127.0.0.1", 9),
    }
    outcome = []
    loop.call_soon(lambda: outcome.append(call_from_thread(calls[call])))
    try:
        loop.run_once()
        assert isinstance(outcome[0], WrongThreadError)
        assert "%s() called from a thread other than" % call in str(outcome[0])
        assert "call_soon_threadsafe" in str(outcome[0])
        threadsafe = []
        loop.call_soon(lambda: threadsafe.append(call_from_thread(
            lambda: loop.call_soon_threadsafe(print))))
        loop.run_once()
        assert threadsafe == [None]
    finally:
        loop.close()
        spare_a.close()
        spare_b.close()


def test_without_debug_mode_calls_are_not_checked(loop):
    """Outside debug mode the check costs nothing and is not made (the documented trade-off)."""
    outcome = []
    loop.call_soon(lambda: outcome.append(call_from_thread(lambda: loop.call_soon(print))))
    loop.run_once()
    assert outcome == [None]


SIGINT_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[1])
    import reactor
    loop = reactor.Reactor()
    def stuck():
        print("stuck", flush=True)
        time.sleep(30)                 # a callback that blocks the loop
    if sys.argv[2] == "stuck":
        loop.call_soon(stuck)
    else:
        loop.call_soon(lambda: print("idle", flush=True))
    try:
        loop.run()
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(3)
    print("stopped cleanly", flush=True)
""")


def run_and_interrupt(mode, interrupts):
    process = subprocess.Popen([sys.executable, "-c", SIGINT_SCRIPT, ROOT, mode],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == mode
        time.sleep(0.2)
        started = time.monotonic()
        for _ in range(interrupts):
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
        out, err = process.communicate(timeout=10)
        return process.returncode, out, time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_a_second_ctrl_c_interrupts_a_callback_that_blocks_the_loop():
    """Ctrl-C twice while a callback blocks: KeyboardInterrupt escapes run() at once,
    rather than after the 30 s the callback would take."""
    code, out, elapsed = run_and_interrupt("stuck", 2)
    assert code == 3 and "KeyboardInterrupt" in out
    assert elapsed < 5


def test_one_ctrl_c_stops_an_idle_loop_cleanly():
    """Ctrl-C once while the loop is responsive stops run() cleanly (no KeyboardInterrupt)."""
    code, out, _ = run_and_interrupt("idle", 1)
    assert code == 0 and "stopped cleanly" in out


class Slow(Protocol):
    def data_received(self, data):
        time.sleep(0.15)


def test_slow_callback_warning_names_the_users_method(selector_class, caplog):
    """Debug mode names Slow.data_received, not the transport's on_readable, when it blocks."""
    loop = reactor.Reactor(selector=selector_class(), debug=True)
    server = loop.listen_tcp(Slow, "127.0.0.1", 0)
    client = socket.create_connection(server.addresses[0][:2], timeout=5)
    try:
        with caplog.at_level(logging.WARNING, logger="reactor"):
            run_until(loop, lambda: len(server) == 1)
            client.sendall(b"x")
            run_until(loop, lambda: "slow callback" in caplog.text)
        assert "slow callback Slow.data_received (via StreamTransport.on_readable)" in caplog.text
    finally:
        client.close()
        server.close()
        loop.close()


def test_fd_closed_behind_the_loops_back_is_dropped(selector_class, caplog):
    """An fd closed while registered is dropped with a log line on every selector: the loop
    does not spin on it, and a new socket that reuses its number works normally."""
    loop = reactor.Reactor(selector=selector_class())
    a, b = socket.socketpair()
    fd = a.fileno()
    old_calls, new_calls = [], []
    replacements = []
    try:
        with caplog.at_level(logging.ERROR, logger="reactor"):
            loop.add_reader(a, lambda: old_calls.append(1))
            a.close()
            before = loop.stats()["iterations"]
            started = time.monotonic()
            while time.monotonic() - started < 0.2:
                loop.run_once(0.05)
            assert loop.stats()["iterations"] - before < 20      # no spin (poll: POLLNVAL)
            # The kernel hands out the lowest free number: the next socket reuses fd.
            while True:
                c, d = socket.socketpair()
                replacements.append((c, d))
                if c.fileno() == fd:
                    break
                assert len(replacements) < 50
            loop.add_reader(c, lambda: new_calls.append(c.recv(10)))
            d.send(b"new")
            run_until(loop, lambda: new_calls)
        assert new_calls == [b"new"] and old_calls == []
        assert "fd %d was closed while the loop watched it" % fd in caplog.text
    finally:
        b.close()
        for c, d in replacements:
            c.close()
            d.close()
        loop.close()


class Keeps(Protocol):
    def __init__(self):
        self.lost = "open"
        self.received = b""

    def data_received(self, data):
        self.received += data

    def connection_lost(self, exc):
        self.lost = exc


def test_a_transport_whose_socket_is_closed_behind_its_back_ends(selector_class, caplog):
    """Closing a transport's socket from outside ends that connection with an error on every
    selector (epoll and kqueue forget the fd silently, so there it ends when the number is
    reused), and the next connection, reusing the fd number, is served normally."""
    loop = reactor.Reactor(selector=selector_class())
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Keeps()) or protocols[-1],
                             "127.0.0.1", 0)
    port = server.addresses[0][1]
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    second = None
    try:
        with caplog.at_level(logging.ERROR, logger="reactor"):
            run_until(loop, lambda: protocols)
            second = socket.socket()             # take a number now, so the accepted socket
            second.settimeout(5)                 # of the next connection reuses the freed one
            stolen = protocols[0].transport.get_extra_info("socket")
            fd = stolen.fileno()
            stolen.close()                       # behind the transport's back
            first.sendall(b"ping")
            for _ in range(5):
                loop.run_once(0.01)
            second.connect(("127.0.0.1", port))
            run_until(loop, lambda: len(protocols) == 2)
            assert protocols[1].transport.get_extra_info("socket").fileno() == fd
            second.sendall(b"fresh")
            run_until(loop, lambda: protocols[1].received == b"fresh")
            run_until(loop, lambda: protocols[0].lost != "open")
        assert protocols[0].lost is not None
        assert protocols[1].lost == "open"
    finally:
        first.close()
        if second is not None:
            second.close()
        server.close()
        loop.close()


def test_slow_callback_names_spell_the_watcher_methods_as_they_are():
    """A write event is named after on_writable, the method that exists, not 'on_writeable'."""
    from reactor.debug import watcher_callback_name
    from reactor.protocols import Protocol

    class Resumer(Protocol):
        pass

    class Transport:
        def get_protocol(self):
            return Resumer()

    assert watcher_callback_name(Transport(), "write").endswith(
        "Resumer.resume_writing (via Transport.on_writable)")
    assert watcher_callback_name(Transport(), "read").endswith("(via Transport.on_readable)")
