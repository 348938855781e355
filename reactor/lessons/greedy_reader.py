"""The greedy reader: draining one busy socket to the bottom starves every other one.

Non-blocking sockets invite this handler::

    while True:                       # read until the socket is empty
        data = sock.recv(65536)       # ... which, with a fast sender, is never
        handle(data)

It looks efficient: one ``select()`` per burst. But a peer that sends
faster than the handler consumes keeps the socket from ever being empty,
and the loop never gets back to ``select()``. Every other connection (a
ping, a health check, a login) waits for the flood to stop.

Reactor reads a bounded amount per readiness event, however much is
waiting: one ``recv`` of ``read_chunk_bytes`` (64 KiB), more only while
they come back full, up to ``max_read_per_event_bytes`` (256 KiB), then on
to the next ready connection (``streams.py:StreamTransport.on_readable``).
The rest stays in the kernel, where TCP flow control slows the sender, and
is read on the next pass. Each pass dispatches every ready connection
once, and callbacks queued during a pass wait for the next one
(``loop.py:EventLoop._run_ready``), so no connection and no callback that
re-queues itself can hold the loop. A flood then costs the others one
256 KiB read per pass, not the whole flood.

In the lesson a thread floods the server with 16-byte lines, 1 MiB per
write, while three clients ping it every 5 ms. Both servers run the same
line handler, one small Python step per line: enough to make the server
slower than the sender, which is all the bug needs (on loopback a sender
that does no work per line easily outpaces one that does).
"""

import selectors
import socket
import threading
import time
from typing import List

from .. import Protocol, Reactor
from . import Outcome
from .slow_callback import CLIENT_TIMEOUT_SECONDS, RoundTrips, close_server

TITLE = "The greedy reader: draining one busy socket to the bottom starves the others"
PREVENTED_BY = ("streams.py:StreamTransport.on_readable", "loop.py:EventLoop._run_ready")
PROVED_BY = ("tests/test_streams.py::test_reads_per_event_are_bounded",
             "tests/test_loop.py::test_callbacks_queued_during_a_pass_wait_for_the_next",
             "tests/test_loop.py::test_call_soon_runs_in_fifo_order")

READ_CHUNK_BYTES = 64 * 1024
FLOOD_WRITE_BYTES = 1024 * 1024
FLOOD_LINE = b"x" * 15 + b"\n"
#: A side behaves if no ping waited longer than this.
OK_MAX_WAIT_SECONDS = 0.1


def run(seconds: float) -> List[Outcome]:
    """Serve a flood and three pingers, draining greedily, then with reactor; naive first."""
    return [_naive(seconds), _reactor(seconds)]


def handle(data: bytes, reply) -> int:
    """The application, the same on both sides: look at each line, answer pings; return bytes.

    (It drops a line split across two reads; a real server keeps the tail,
    as ``reactor.framing`` does. Here only the flood's lines are ever split.)
    """
    for line in data.split(b"\n"):
        if line == b"ping":
            reply(b"ping\n")
    return len(data)


def _naive(seconds: float) -> Outcome:
    """A ``selectors`` server whose handler reads each socket until it is empty: the bug."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    port = listener.getsockname()[1]
    flood, pings = _Flooder(port), RoundTrips(port, b"ping\n", clients=3)
    stopper = threading.Timer(seconds, flood.stop)    # the flood ends on time, stuck loop or not
    stopper.start()
    received = 0
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
                while True:                               # WRONG: drain until EAGAIN
                    try:
                        data = conn.recv(READ_CHUNK_BYTES)
                    except (BlockingIOError, ConnectionError):
                        break
                    if not data:
                        selector.unregister(conn)
                        conn.close()
                        break
                    received += handle(data, conn.sendall)
    finally:
        stopper.cancel()
        flood.stop()
        pings.stop()
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return _outcome("naive", pings, received, flood.sent)


class _Checker(Protocol):
    """The same application on reactor: ``data_received`` gets one bounded read at a time."""

    received = 0

    def data_received(self, data: bytes) -> None:
        _Checker.received += handle(data, self.transport.write)


def _reactor(seconds: float) -> Outcome:
    """Reactor's server: a bounded read per event, then the next ready connection."""
    _Checker.received = 0
    loop = Reactor()
    try:
        server = loop.listen_tcp(_Checker, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        flood, pings = _Flooder(port), RoundTrips(port, b"ping\n", clients=3)
        loop.call_later(seconds, loop.stop)
        try:
            loop.run(stop_on_signals=False)
        finally:
            flood.stop()
            pings.stop()
            close_server(loop, server)
    finally:
        loop.close()
    return _outcome("reactor", pings, _Checker.received, flood.sent)


class _Flooder:
    """A thread that writes 1 MiB at a time as fast as the server lets it, until ``stop()``."""

    def __init__(self, port: int) -> None:
        self.sent = 0
        self._stopping = threading.Event()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT_SECONDS)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        chunk = FLOOD_LINE * (FLOOD_WRITE_BYTES // len(FLOOD_LINE))
        while not self._stopping.is_set():
            try:
                self._sock.sendall(chunk)          # the kernel copies it without the GIL
            except OSError:
                return
            self.sent += len(chunk)

    def stop(self) -> None:
        """Stop flooding (a blocked ``sendall`` is woken by the shutdown); idempotent."""
        self._stopping.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._thread.join(CLIENT_TIMEOUT_SECONDS)
        self._sock.close()


def _outcome(side: str, pings: RoundTrips, received: int, flooded: int) -> Outcome:
    figures = pings.figures("pings")
    figures["flood MiB read by the server"] = round(received / 2 ** 20, 1)
    figures["flood MiB sent"] = round(flooded / 2 ** 20, 1)
    longest = figures["pings longest wait (ms)"] / 1000.0
    ok = longest < OK_MAX_WAIT_SECONDS and len(pings.latencies) > 0
    verdict = ("while one client flooded %.0f MiB, the pingers got %d answers and waited "
               "up to %.0f ms" % (received / 2 ** 20, len(pings.latencies), longest * 1000))
    return Outcome(side, figures, verdict, ok)
