"""A loop and fork(): the child cannot use its parent's loop, can close it, and can make its own.

Each test forks the pytest process itself; the child reports what it saw
as JSON through a pipe and always leaves with ``os._exit`` (never returning
into pytest). The parent checks the report, and that its own loop still
works afterwards: the child touched nothing the parent uses.
"""

import json
import os
import select
import signal
import socket
import time

import pytest

from reactor import Protocol, Reactor
from reactor.errors import LoopForkedError

from .support.loops import run_until

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork()")


def in_child(body, timeout=10.0):
    """Fork; run ``body()`` in the child; return (exit status, the JSON it returned)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the child
        code = 0
        try:
            os.close(reader)
            report = body()
        except BaseException as exc:                 # report it; never return into pytest
            report, code = {"crashed": "%s: %s" % (type(exc).__name__, exc)}, 1
        try:
            os.write(writer, json.dumps(report).encode())
        finally:
            os._exit(code)
    os.close(writer)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([reader], [], [], 0.1)
            if ready:
                chunk = os.read(reader, 65536)
                if not chunk:
                    break
                data += chunk
        else:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(reader)
    _, status = os.waitpid(pid, 0)
    return status, json.loads(data.decode() or "null")


def refused(call):
    """Return the LoopForkedError message ``call()`` raised, or what it did instead."""
    try:
        call()
    except LoopForkedError as exc:
        return str(exc)
    except Exception as exc:                         # the wrong error: show which
        return "raised %s: %s" % (type(exc).__name__, exc)
    return "no error"


class Echo(Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


def echo_once(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        return sock.recv(100)


def test_the_child_cannot_use_its_parents_loop(loop):
    """In the child, run/run_once/call_soon/call_later/add_reader raise LoopForkedError,
    and the message names both processes and the way out."""
    server = loop.listen_tcp(Echo, "127.0.0.1", 0)
    left, right = socket.socketpair()
    try:
        def child():
            return {name: refused(call) for name, call in [
                ("run", loop.run), ("run_once", loop.run_once),
                ("call_soon", lambda: loop.call_soon(print)),
                ("call_later", lambda: loop.call_later(1, print)),
                ("add_reader", lambda: loop.add_reader(left, print)),
                ("listen_tcp", lambda: loop.listen_tcp(Echo, "127.0.0.1", 0))]}
        status, report = in_child(child)
        assert status == 0, report
        parent = os.getpid()
        for name, message in report.items():
            assert message.startswith("%s(): this loop was created by process %d" % (name, parent)), \
                (name, message)
            assert "Call loop.close() here and create a new loop in the child" in message
        port = server.addresses[0][1]
        assert echo_once_on(loop, port, b"parent still serves") == b"parent still serves"
    finally:
        left.close()
        right.close()
        server.close()


def echo_once_on(loop, port, payload):
    """Echo ``payload`` through the parent's running loop (a client thread-free: raw socket)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.setblocking(False)
        sock.send(payload)
        received = []

        def got():
            try:
                received.append(sock.recv(100))
            except BlockingIOError:
                pass
            return received
        run_until(loop, got)
        return received[0]
    finally:
        sock.close()


def test_the_child_closes_the_inherited_loop_and_serves_on_its_own(loop):
    """Recovery: the child closes the inherited loop, makes its own and serves on it; the
    parent's registrations are untouched (its server still accepts and echoes afterwards)."""
    server = loop.listen_tcp(Echo, "127.0.0.1", 0)
    parent_port = server.addresses[0][1]
    try:
        def child():
            loop.close()                             # releases the child's copies only
            own = Reactor()
            try:
                own_server = own.listen_tcp(Echo, "127.0.0.1", 0)
                echoed = echo_once_on(own, own_server.addresses[0][1], b"child serves")
                own_server.close()
                return {"closed": loop.is_closed(), "echoed": echoed.decode()}
            finally:
                own.close()
        status, report = in_child(child)
        assert status == 0, report
        assert report == {"closed": True, "echoed": "child serves"}
        assert echo_once_on(loop, parent_port, b"parent") == b"parent"
        assert echo_once_on(loop, parent_port, b"again") == b"again"
    finally:
        server.close()


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs SIGUSR1")
def test_a_signal_to_the_child_neither_wakes_nor_runs_the_parents_handler():
    """The loop's signal handler is the parent's: in the child SIGUSR1 has its old default
    back (it terminates the child), and the parent's loop never hears it."""
    loop = Reactor()
    heard = []
    loop.add_signal_handler(signal.SIGUSR1, heard.append, "usr1")
    try:
        def child():
            os.kill(os.getpid(), signal.SIGUSR1)     # the default action ends us here
            time.sleep(2)
            return {"survived": True}
        status, report = in_child(child)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGUSR1, (status, report)
        loop.run_once(0.2)
        assert heard == []
        os.kill(os.getpid(), signal.SIGUSR1)         # the parent's own handler still works
        run_until(loop, lambda: heard)
        assert heard == ["usr1"]
    finally:
        loop.close()


def test_forking_inside_a_callback_leaves_the_child_free_to_run_a_loop():
    """Fork from a callback of a running loop (a supervisor does): in the child the loop no
    longer counts as running on this thread, so a new loop may run; returning into the
    parent's pass raises LoopForkedError instead of serving the parent's sockets."""
    loop = Reactor()
    reports = []

    def fork_now():
        def child():
            own = Reactor()
            fired = []
            own.call_later(0.01, fired.append, True)
            run_until(own, lambda: fired)
            own.close()
            return {"inherited_running": loop.is_running(), "own_loop_ran": fired == [True],
                    "run_again": refused(loop.run)}
        reports.append(in_child(child))
        loop.stop()
    loop.call_soon(fork_now)
    try:
        loop.run()
        (status, report), = reports
        assert status == 0, report
        assert report["inherited_running"] is False and report["own_loop_ran"] is True
        assert report["run_again"].startswith("run(): this loop was created by process")
    finally:
        loop.close()


def test_a_loop_closed_before_the_fork_stays_closed_in_the_child():
    """A loop already closed is left alone by the fork hook: using it says 'closed', not 'forked'."""
    loop = Reactor()
    loop.close()
    status, report = in_child(lambda: {"run": refused(loop.run)})
    assert status == 0
    assert report["run"].startswith("raised LoopClosedError")


def test_the_child_closes_an_inherited_server_without_unregistering_the_parents(loop):
    """The classic bug: a child's EPOLL_CTL_DEL on the shared epoll would take the parent's
    listener out of the parent's poller. Closing the inherited Server in the child closes the
    child's socket copies only; the parent goes on accepting."""
    server = loop.listen_tcp(Echo, "127.0.0.1", 0)
    port = server.addresses[0][1]
    try:
        def child():
            server.close()
            loop.close()
            return {"closed": not server.is_serving()}
        status, report = in_child(child)
        assert (status, report) == (0, {"closed": True})
        assert server.is_serving()
        assert echo_once_on(loop, port, b"still registered") == b"still registered"
    finally:
        server.close()
