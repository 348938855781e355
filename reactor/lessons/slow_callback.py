"""A slow callback: one request that blocks the loop for 200 ms freezes every connection.

An event loop runs one callback at a time. While a handler computes a
report, calls a blocking library or sleeps, no other socket is read and
no timer fires: every client waits for the slowest request of anyone's.
The naive echo server here answers ``slow`` by working 200 ms inline, and
the clients that only ping it see their round trips jump from a fraction
of a millisecond to the whole 200 ms.

Reactor cannot make your code fast; it helps in two ways. Debug mode
(``Reactor(debug=True)`` or ``REACTOR_DEBUG=1``) times every callback and
logs a slow one by *your* method's name (``debug.py:call_timed``), so you
find it. And the fix is to move the work off the loop thread: run it on a
worker thread and hand the result back with ``loop.call_soon_threadsafe``,
the one loop method other threads may call. That is how reactor's own
blocking call, ``getaddrinfo``, is made (``network.py:Reactor._resolve_in_thread``).

A thread helps work that waits (a sleep, a blocking library call: they
release the GIL, as the lesson's stand-in ``time.sleep`` does). Work that
computes in Python holds the GIL and needs a process instead
(``concurrent.futures.ProcessPoolExecutor``), or to be cut into short
steps the loop interleaves with ``call_soon``.
"""

import concurrent.futures
import logging
import selectors
import socket
import threading
import time
from typing import Dict, List

from .. import Protocol, Reactor
from . import Outcome

TITLE = "A slow callback: one blocking request freezes every other connection"
PREVENTED_BY = ("debug.py:call_timed", "debug.py:watcher_callback_name",
                "loop.py:EventLoop.call_soon_threadsafe", "network.py:Reactor._resolve_in_thread")
PROVED_BY = ("tests/test_loop_safety.py::test_slow_callback_warning_names_the_users_method",
             "tests/test_loop.py::test_debug_mode_logs_slow_callbacks_and_counts",
             "tests/test_clients.py::test_host_names_resolve_off_the_loop_thread")

SLOW_SECONDS = 0.2
#: A side behaves if no ping waited longer than this (the slow request takes 0.2 s).
OK_MAX_WAIT_SECONDS = SLOW_SECONDS / 2
CLIENT_TIMEOUT_SECONDS = 30.0


def run(seconds: float) -> List[Outcome]:
    """Serve pings and slow requests inline, then with the work on a thread; naive first."""
    return [_naive(seconds), _reactor(seconds)]


def slow_computation() -> bytes:
    """The 200 ms request: a sleep stands in for a blocking call (a disk, a library, a lock)."""
    time.sleep(SLOW_SECONDS)
    return b"done\n"


def _naive(seconds: float) -> Outcome:
    """A ``selectors`` echo server that does the slow request inline: the bug."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    pings, slows = _clients(listener.getsockname()[1])
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for key, _ in selector.select(0.05):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj
                data = conn.recv(4096)
                if not data:
                    selector.unregister(conn)
                    conn.close()
                elif data.startswith(b"slow"):
                    conn.sendall(slow_computation())    # WRONG: blocks the loop for 200 ms
                else:
                    conn.sendall(data)
    finally:
        pings.stop()
        slows.stop()
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()
    return _outcome("naive", pings, slows, None)


class _InlineEcho(Protocol):
    """The naive server's handler, ported to reactor unchanged: still slow, now named."""

    def data_received(self, data: bytes) -> None:
        self.transport.write(slow_computation() if data.startswith(b"slow") else data)


class _OffloadingEcho(Protocol):
    """The fix: the slow request runs on a worker thread; the loop only hands it out."""

    def __init__(self, workers: concurrent.futures.ThreadPoolExecutor) -> None:
        self.workers = workers

    def data_received(self, data: bytes) -> None:
        if data.startswith(b"slow"):
            self.workers.submit(self._compute, self.transport.loop)
        else:
            self.transport.write(data)

    def _compute(self, loop: Reactor) -> None:
        """On the worker thread: touch nothing of the loop's but ``call_soon_threadsafe``."""
        loop.call_soon_threadsafe(self._reply, slow_computation())

    def _reply(self, result: bytes) -> None:
        """Back on the loop thread: the connection may have closed meanwhile."""
        if not self.transport.is_closing():
            self.transport.write(result)


def _reactor(seconds: float) -> Outcome:
    """Find the slow callback with debug mode, then serve with the work on a thread."""
    warning = _diagnose()
    workers = concurrent.futures.ThreadPoolExecutor(max_workers=2)
    loop = Reactor()
    try:
        server = loop.listen_tcp(lambda: _OffloadingEcho(workers), "127.0.0.1", 0)
        pings, slows = _clients(server.sockets[0].getsockname()[1])
        loop.call_later(seconds, loop.stop)
        try:
            loop.run(stop_on_signals=False)
        finally:
            pings.stop()
            slows.stop()
            workers.shutdown(wait=True)        # a slow request may still be under way
            close_server(loop, server)
    finally:
        workers.shutdown(wait=True)
        loop.close()
    return _outcome("reactor", pings, slows, warning)


def _diagnose() -> str:
    """Run the inline handler once in debug mode; return the warning it logs."""
    captured: List[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: captured.append(record.getMessage())  # type: ignore
    logger = logging.getLogger("reactor")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False   # shown as a figure instead
    loop = Reactor(debug=True, slow_callback_seconds=SLOW_SECONDS / 2)
    client = None
    try:
        server = loop.listen_tcp(_InlineEcho, "127.0.0.1", 0)
        client = socket.create_connection(server.sockets[0].getsockname(), timeout=5)
        client.sendall(b"slow\n")
        deadline = time.monotonic() + 5 * SLOW_SECONDS + 1.0
        while not captured and time.monotonic() < deadline:
            loop.run_once(0.05)
        close_server(loop, server)
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        if client is not None:
            client.close()
        loop.close()
    return captured[0] if captured else "(none logged)"


def close_server(loop: Reactor, server) -> None:
    """Stop listening, abort the open connections and let the loop close their sockets."""
    server.close()
    for transport in server.connections():
        transport.abort()
    loop.run_once(0.0)                         # connection_lost runs; the sockets are closed


class RoundTrips:
    """Client threads that each send ``message`` and time the reply, until ``stop()``.

    The load of the latency lessons (this one, greedy-reader, blocking-dns).
    ``latencies`` holds the answered round trips in seconds; ``unanswered``
    how long each request still waiting at ``stop()`` had waited by then.
    """

    def __init__(self, port: int, message: bytes, clients: int = 1,
                 pause_seconds: float = 0.005) -> None:
        self.latencies: List[float] = []
        self.unanswered: List[float] = []
        self._stopping = threading.Event()
        self._socks = [socket.create_connection(("127.0.0.1", port),
                                                timeout=CLIENT_TIMEOUT_SECONDS)
                       for _ in range(clients)]
        self._threads = [threading.Thread(target=self._run, args=(sock, message, pause_seconds),
                                          daemon=True) for sock in self._socks]
        for thread in self._threads:
            thread.start()

    def _run(self, sock: socket.socket, message: bytes, pause_seconds: float) -> None:
        while not self._stopping.is_set():
            sent = time.perf_counter()
            reply = b""
            try:
                sock.sendall(message)
                while not reply.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            except OSError:
                pass
            waited = time.perf_counter() - sent
            if not reply.endswith(b"\n"):            # stopped (or the server went away)
                self.unanswered.append(waited)
                return
            self.latencies.append(waited)
            self._stopping.wait(pause_seconds)

    def stop(self) -> None:
        """Stop the clients; one blocked waiting for a reply is woken by the shutdown."""
        self._stopping.set()
        for sock in self._socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self._threads:
            thread.join(CLIENT_TIMEOUT_SECONDS)
        for sock in self._socks:
            sock.close()

    def figures(self, what: str) -> Dict[str, object]:
        """Answered count, median and longest wait in ms (an unanswered wait counts too)."""
        waits = sorted(self.latencies)
        longest = max(waits + self.unanswered, default=0.0)
        median = waits[len(waits) // 2] if waits else longest
        return {"%s answered" % what: len(waits),
                "%s median round trip (ms)" % what: round(median * 1000, 2),
                "%s longest wait (ms)" % what: round(longest * 1000, 1)}


def _clients(port: int):
    """Three clients pinging every 5 ms, one asking for the slow request every 0.1 s."""
    return RoundTrips(port, b"ping\n", clients=3), RoundTrips(port, b"slow\n", pause_seconds=0.1)


def _outcome(side: str, pings: RoundTrips, slows: RoundTrips, warning) -> Outcome:
    figures = pings.figures("pings")
    figures["slow requests answered"] = len(slows.latencies)
    longest = figures["pings longest wait (ms)"] / 1000.0
    if warning is not None:
        figures["debug mode said, inline"] = warning
    ok = (longest < OK_MAX_WAIT_SECONDS and len(pings.latencies) > 0
          and len(slows.latencies) > 0 and (warning is None or "data_received" in warning))
    how = "on a worker thread" if warning is not None else "inline"
    verdict = ("with the %d ms request %s, a ping waited up to %.0f ms (median %.2f ms)"
               % (SLOW_SECONDS * 1000, how, longest * 1000,
                  figures["pings median round trip (ms)"]))
    return Outcome(side, figures, verdict, ok)
