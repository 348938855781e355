"""Blocking DNS: resolving a host name on the loop thread stalls every connection.

``socket.getaddrinfo`` is a blocking call with no timeout of your own: it
asks the system resolver, which may ask a DNS server across the world and
wait for it, for milliseconds or (a lost packet, a dead server) for
seconds. A server that connects out to a back end *by name* from inside a
callback, as ``socket.create_connection(("db.internal", 5432))`` does,
freezes its loop for that long on every connect: every other client
waits for somebody else's DNS.

Reactor never resolves a name on the loop thread. ``connect_tcp`` first
tries the host as a numeric address (``AI_NUMERICHOST``, which never
blocks); a name goes to a small pool of resolver threads, and the answer
comes back through ``call_soon_threadsafe`` (``network.py:Reactor._resolve_in_thread``,
``client.py:Connector.start``). The loop serves everyone else meanwhile.

The lesson may not touch the network, so it stands a slow resolver in for
DNS: while it runs, ``socket.getaddrinfo`` answers the name
``backend.lesson.test`` (the ``.test`` domain is reserved, RFC 6761) with
127.0.0.1 after 300 ms, and passes every other lookup through unchanged;
the real function is put back when the lesson ends. One client asks the
server to connect to the back end by that name (and again 0.1 s after
each answer) while three clients ping it.
"""

import contextlib
import selectors
import socket
import time
from typing import Iterator, List

from .. import Protocol, Reactor
from . import Outcome
from .slow_callback import RoundTrips, close_server

TITLE = "Blocking DNS: resolving a name on the loop thread stalls every connection"
PREVENTED_BY = ("network.py:Reactor._resolve_in_thread", "client.py:Connector.start",
                "client.py:Connector.resolved")
PROVED_BY = ("tests/test_clients.py::test_host_names_resolve_off_the_loop_thread",)

SLOW_NAME = "backend.lesson.test"
RESOLVE_SECONDS = 0.3
#: A side behaves if no ping waited longer than this (a lookup takes 0.3 s).
OK_MAX_WAIT_SECONDS = RESOLVE_SECONDS / 3


def run(seconds: float) -> List[Outcome]:
    """Connect out by name inline, then with ``connect_tcp``; naive first."""
    backend = socket.create_server(("127.0.0.1", 0), backlog=256)   # its backlog completes connects
    try:
        with slow_resolver():
            return [_naive(seconds, backend.getsockname()[1]),
                    _reactor(seconds, backend.getsockname()[1])]
    finally:
        backend.close()


@contextlib.contextmanager
def slow_resolver() -> Iterator[None]:
    """Make ``socket.getaddrinfo`` take 300 ms to resolve ``SLOW_NAME``, inside the block only."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # socket's signature
        if host != SLOW_NAME:
            return real_getaddrinfo(host, port, family, type, proto, flags)
        if flags & socket.AI_NUMERICHOST:      # as the real one: a name is not a number
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        time.sleep(RESOLVE_SECONDS)             # a DNS server that takes 300 ms to answer
        return real_getaddrinfo("127.0.0.1", port, family, type, proto, flags)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo


def _naive(seconds: float, backend_port: int) -> Outcome:
    """A ``selectors`` server that connects to the back end by name, inline: the bug."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    port = listener.getsockname()[1]
    pings = RoundTrips(port, b"ping\n", clients=3)
    fetches = RoundTrips(port, b"fetch\n", clients=1, pause_seconds=0.1)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for key, _ in selector.select(0.05):
                conn = key.fileobj
                if conn is listener:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                data = conn.recv(4096)
                if not data:
                    selector.unregister(conn)
                    conn.close()
                elif data.startswith(b"fetch"):
                    # WRONG: getaddrinfo blocks the whole loop until the name resolves.
                    backend = socket.create_connection((SLOW_NAME, backend_port), timeout=5)
                    backend.close()
                    conn.sendall(b"connected\n")
                else:
                    conn.sendall(data)
    finally:
        pings.stop()
        fetches.stop()
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return _outcome("naive", pings, fetches)


class _Frontend(Protocol):
    """Answers pings, and connects to the back end by name on ``fetch``."""

    pending = 0                                 # connects under way, across connections

    def __init__(self, backend_port: int) -> None:
        self.backend_port = backend_port

    def data_received(self, data: bytes) -> None:
        if not data.startswith(b"fetch"):
            self.transport.write(data)
            return
        _Frontend.pending += 1
        self.transport.loop.connect_tcp(lambda: _Backend(self.transport), SLOW_NAME,
                                        self.backend_port, on_error=_Backend.failed)


class _Backend(Protocol):
    """The connection to the back end: once made, tell the client and hang up."""

    def __init__(self, client) -> None:
        self.client = client

    def connection_made(self, transport) -> None:
        transport.close()
        _Frontend.pending -= 1
        if not self.client.is_closing():
            self.client.write(b"connected\n")

    @staticmethod
    def failed(exc: BaseException) -> None:
        _Frontend.pending -= 1


def _reactor(seconds: float, backend_port: int) -> Outcome:
    """Reactor's server: ``connect_tcp`` resolves the name on a resolver thread."""
    _Frontend.pending = 0
    loop = Reactor()
    try:
        server = loop.listen_tcp(lambda: _Frontend(backend_port), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pings = RoundTrips(port, b"ping\n", clients=3)
        fetches = RoundTrips(port, b"fetch\n", clients=1, pause_seconds=0.1)
        loop.call_later(seconds, loop.stop)
        try:
            loop.run(stop_on_signals=False)
        finally:
            pings.stop()
            fetches.stop()
            # Let a lookup still under way finish, so no resolver thread outlives the lesson.
            give_up = time.monotonic() + 5 * RESOLVE_SECONDS
            while _Frontend.pending > 0 and time.monotonic() < give_up:
                loop.run_once(0.05)
            close_server(loop, server)
    finally:
        loop.close()
    return _outcome("reactor", pings, fetches)


def _outcome(side: str, pings: RoundTrips, fetches: RoundTrips) -> Outcome:
    figures = pings.figures("pings")
    figures["back-end connects by name"] = len(fetches.latencies)
    longest = figures["pings longest wait (ms)"] / 1000.0
    ok = longest < OK_MAX_WAIT_SECONDS and len(pings.latencies) > 0 and len(fetches.latencies) > 0
    verdict = ("while the server connected to its back end by name (%d times, each lookup "
               "%.0f ms), a ping waited up to %.0f ms"
               % (len(fetches.latencies), RESOLVE_SECONDS * 1000, longest * 1000))
    return Outcome(side, figures, verdict, ok)
