"""Fd reuse: a socket closed behind the loop's back leaves a stale registration.

A selector knows sockets by their file descriptor *number*. Close a socket
without unregistering it first (a helper that "just closes" a connection, a
library that owns the socket, an error path) and the selector still holds a
key for that number, while the kernel has forgotten the socket: epoll drops
a closed fd from its set silently. The kernel hands out the lowest free
number, so the very next connection gets the same one. Now
``register()`` says ``KeyError: ... is already registered``; code that
shrugs that off ("it is registered already, fine") has a key pointing at
the old, closed socket and a kernel that watches nothing: the new client is
accepted and never served. (With select the loop gets EBADF instead, with
poll a closed fd reported ready forever; the same bug in three costumes.)

The fix is to recognise a stale key: a socket object's ``fileno()`` is -1
once closed, so at that ``KeyError`` reactor drops the old key, tells the
old transport its socket was closed behind its back (that connection ends
with ``BadFileDescriptorError``), and registers the new socket.

The lesson: a client connects, the server closes that connection's socket
directly, a second client connects (getting the same fd number) and sends
a request every 20 ms for ``seconds``. Each side reports the requests
answered and what became of the stale registration.
"""

import contextlib
import selectors
import socket
import time
from typing import Any, Dict, List, Optional

import reactor

from . import Outcome

TITLE = "fd reuse: a socket closed behind the loop's back, its number reused"
PREVENTED_BY = ("watchers.py:Watchers.watch", "watchers.py:Watchers.drop_stale",
                "watchers.py:Watchers.drop_closed", "watchers.py:is_stale")
PROVED_BY = ("tests/test_loop_safety.py::test_fd_closed_behind_the_loops_back_is_dropped",
             "tests/test_loop_safety.py::test_a_transport_whose_socket_is_closed_behind_its_back_ends")

REQUEST_EVERY_SECONDS = 0.02


def run(seconds: float) -> List[Outcome]:
    """Close a served socket behind the loop's back, then serve its successor; naive first."""
    return [_judge("naive", _NaiveServer(), seconds), _judge("reactor", _ReactorServer(), seconds)]


class _NaiveServer:
    """A selectors echo server; ``close_behind_back`` is the bug, register's except the trap."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.setblocking(False)
        self.address = self.listener.getsockname()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.connections: List[socket.socket] = []
        self.key_errors = 0

    def run_once(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            if key.fileobj is self.listener:
                conn, _ = self.listener.accept()
                conn.setblocking(False)
                self.connections.append(conn)
                try:
                    self.selector.register(conn, selectors.EVENT_READ)
                except KeyError:
                    # WRONG: "already registered" means a stale key for a closed
                    # socket, which the kernel no longer watches. modify() with the
                    # same events changes nothing: the new socket is never watched.
                    self.key_errors += 1
                    self.selector.modify(conn, selectors.EVENT_READ)
                continue
            data = key.fileobj.recv(4096)
            if data:
                key.fileobj.send(data)
            else:
                self.selector.unregister(key.fileobj)
                key.fileobj.close()

    def close_behind_back(self, index: int) -> None:
        self.connections[index].close()       # WRONG: still registered with the selector

    def fd(self, index: int) -> int:
        return self.connections[index].fileno() if index < len(self.connections) else -1

    def fate_of_first(self) -> Dict[str, object]:
        stale = sum(1 for key in self.selector.get_map().values() if key.fileobj.fileno() == -1)
        return {"register() KeyErrors": self.key_errors, "stale selector keys": stale}

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.selector.close()
        self.listener.close()


class _Echo(reactor.Protocol):
    def __init__(self) -> None:
        self.lost: Optional[str] = None

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def connection_lost(self, exc: Any) -> None:
        self.lost = type(exc).__name__ if exc is not None else "a clean close"


class _ReactorServer:
    def __init__(self) -> None:
        self.loop = reactor.Reactor()
        self.protocols: List[_Echo] = []
        self.server = self.loop.listen_tcp(lambda: self.protocols.append(_Echo()) or
                                           self.protocols[-1], "127.0.0.1", 0)
        self.address = self.server.addresses[0][:2]
        self.connections = self.protocols

    def run_once(self, timeout: float) -> None:
        self.loop.run_once(timeout)

    def close_behind_back(self, index: int) -> None:
        # The same bug, made in reactor: the app closes the raw socket itself.
        self.protocols[index].transport.get_extra_info("socket").close()

    def fd(self, index: int) -> int:
        if index >= len(self.protocols):
            return -1
        return self.protocols[index].transport.get_extra_info("socket").fileno()

    def fate_of_first(self) -> Dict[str, object]:
        return {"first connection ended with": self.protocols[0].lost or "still open"}

    def close(self) -> None:
        for protocol in self.protocols:
            protocol.transport.abort()
        self.server.close()
        self.loop.run_once(0)
        self.loop.close()


def _judge(side: str, server: Any, seconds: float) -> Outcome:
    first = socket.create_connection(server.address, timeout=5)
    second = socket.socket()                   # take a number now, so that the server's
    sent = answered = 0                        # next accepted socket reuses the freed one
    try:
        _run_until(server, lambda: len(server.connections) == 1)
        stolen_fd = server.fd(0)
        server.close_behind_back(0)
        second.settimeout(5)
        second.connect(server.address)
        _run_until(server, lambda: len(server.connections) == 2)
        reused = server.fd(1) == stolen_fd
        second.setblocking(False)
        received = bytearray()

        def all_answered() -> bool:
            with contextlib.suppress(BlockingIOError):
                received.extend(second.recv(65536))
            return received.count(b"\n") == sent
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            second.sendall(b"request %d\n" % sent)
            sent += 1
            _run_until(server, lambda: False, REQUEST_EVERY_SECONDS)
            all_answered()
        _run_until(server, all_answered, 0.5)     # the last answers, if they come at all
        answered = received.count(b"\n")
        fate = server.fate_of_first()
    finally:
        first.close()
        second.close()
        server.close()
    figures: Dict[str, object] = {"fd number reused": "yes (fd %d)" % stolen_fd if reused
                                  else "no", "requests sent by the new client": sent,
                                  "requests answered": answered}
    figures.update(fate)
    ok = sent > 0 and answered == sent
    if ok:
        verdict = ("the new connection on fd %d got all %d answers: the stale key was "
                   "dropped and its transport ended" % (stolen_fd, answered))
    else:
        verdict = ("the new connection on fd %d got %d answers to %d requests: the selector "
                   "still holds the old socket's key" % (stolen_fd, answered, sent))
    return Outcome(side, figures, verdict, ok)


def _run_until(server: Any, done: Any, seconds: float = 2.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        server.run_once(0.005)
