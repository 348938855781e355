"""Clients: connecting without blocking, and the specific errors a failed connect gives."""

import errno
import socket
import threading

from reactor import ConnectError, ConnectRefusedError, ConnectTimeoutError
from reactor.apps.echo import EchoProtocol

from .support.loops import advance, run_passes, run_until
from .support.peers import free_port
from .support.recorders import Recorder


def test_connect_refused_is_a_specific_error(loop):
    """Connecting where nothing listens calls on_error with ConnectRefusedError (errno set)."""
    errors = []
    connector = loop.connect_tcp(Recorder, "127.0.0.1", free_port(), on_error=errors.append)
    run_until(loop, lambda: errors)
    assert isinstance(errors[0], ConnectRefusedError) and isinstance(errors[0], ConnectionError)
    assert errors[0].errno == errno.ECONNREFUSED and "refused" in str(errors[0])
    assert connector.done() and connector.error is errors[0]


def test_connect_timeout_is_a_specific_error(fake_loop, clock):
    """A connect that never completes (backlog full) fails with ConnectTimeoutError on time."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        errors = []
        connector = fake_loop.connect_tcp(Recorder, "127.0.0.1", port, timeout=0.3,
                                          on_error=errors.append)
        run_passes(fake_loop, 10, 0.005)          # real time for the kernel: no SYN-ACK comes
        assert errors == [] and not connector.done()
        advance(fake_loop, clock, 0.299)
        assert errors == [] and not connector.done()
        advance(fake_loop, clock, 0.003)          # due; a wheel tick late at most
        assert len(errors) == 1 and isinstance(errors[0], ConnectTimeoutError), errors
        assert errors[0].errno == errno.ETIMEDOUT and "timed out" in str(errors[0])
        assert connector.done() and connector.error is errors[0]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_host_names_resolve_off_the_loop_thread(loop):
    """connect_tcp('localhost') resolves on a worker thread while the loop keeps running."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    client = Recorder()
    threads_seen = []
    original = socket.getaddrinfo

    def spying_getaddrinfo(*args, **kwargs):
        threads_seen.append(threading.current_thread().name)
        return original(*args, **kwargs)
    socket.getaddrinfo = spying_getaddrinfo
    try:
        loop.connect_tcp(lambda: client, "localhost", server.addresses[0][1], timeout=5)
        run_until(loop, lambda: client.transport is not None or client.events)
    finally:
        socket.getaddrinfo = original
    assert any(name.startswith("reactor-resolver") for name in threads_seen), threads_seen
    client.transport.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_cancelled_connect_calls_nothing(loop):
    """cancel() on a pending connect closes its socket; neither the protocol nor on_error runs."""
    made = []
    errors = []
    connector = loop.connect_tcp(lambda: made.append(1) or Recorder(), "127.0.0.1", free_port(),
                                 on_error=errors.append)
    connector.cancel()
    for _ in range(5):
        loop.run_once(0.01)
    assert made == [] and errors == [] and connector.done()


def test_connect_error_types_are_oserrors_with_errno():
    """The connect errors are OSError/ConnectionError subclasses, usable with errno checks."""
    assert issubclass(ConnectRefusedError, ConnectionRefusedError)
    assert issubclass(ConnectTimeoutError, TimeoutError)
    assert issubclass(ConnectError, OSError)
