"""Unbounded buffers: a server that streams to a slow consumer queues without end.

A non-blocking server cannot wait for a slow peer, so what the kernel will
not take yet goes into an outgoing buffer in the process. That is right
(see the partial-send lesson); the bug is the buffer having no limit. A
producer that does not look at it (a ticker, a log tail, a chat room,
a big download) appends faster than a slow or stalled client drains, and
the buffer, so the process's memory, grows for as long as the client stays
connected. A few such clients, or one that connects and never reads,
take the server down.

The fix is backpressure: when the queue passes a high-water mark the
transport calls the producer's ``pause_writing()``, and ``resume_writing()``
once it drains to the low mark, so a well-behaved producer stops and the
buffer stays between the marks. For producers that do not listen, the send
buffer's hard and soft caps (``Limits.send_buffer_hard_cap_bytes`` ...)
close a consumer that never reads.

The lesson: a client connects and never reads; for ``seconds`` the server
produces 8 MiB/s for it. Each side reports how much was produced, the
peak of its outgoing buffer, and how fast the buffer grew.
"""

import selectors
import socket
import time
from typing import Any, Dict, List

import reactor

from . import Outcome

TITLE = "unbounded buffer: a slow consumer grows the server's memory without end"
PREVENTED_BY = ("transports.py:SocketTransport._check_high_water",
                "slow_consumers.py:SendCaps._check_send_caps",
                "streams.py:StreamTransport._enqueue")
PROVED_BY = ("tests/test_streams.py::test_client_that_never_reads_cannot_grow_server_memory",
             "tests/test_streams.py::test_pause_and_resume_writing_follow_the_water_marks",
             "tests/test_protections.py::test_send_buffer_hard_cap_at_limit_minus_one_limit_and_plus_one")

CHUNK_BYTES = 16 * 1024
RATE_BYTES_PER_SECOND = 8 * 1024 * 1024
SAFETY_STOP_BYTES = 64 * 1024 * 1024   # the lesson stops the naive side here, whatever --seconds
SOCKET_BUFFER_BYTES = 64 * 1024        # small kernel buffers: the backlog stays in-process
BOUNDED_BYTES = 1024 * 1024            # a peak above this is the bug showing


def run(seconds: float) -> List[Outcome]:
    """Stream to a client that never reads, for ``seconds`` with each server; naive first."""
    return [_judge("naive", _naive_server, seconds), _judge("reactor", _reactor_server, seconds)]


def _due(started: float, now: float) -> int:
    """Bytes the producer should have produced by ``now``: a steady 8 MiB/s."""
    return int((now - started) * RATE_BYTES_PER_SECOND)


def _naive_server(seconds: float) -> Dict[str, int]:
    """A selectors loop that appends what it produces to a bytearray and sends what it can."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = _stalled_client(listener.getsockname())
    listener.settimeout(5)
    conn, _ = listener.accept()
    listener.close()
    _shrink(conn, socket.SO_SNDBUF)
    conn.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(conn, selectors.EVENT_WRITE)
    outgoing = bytearray()
    produced = peak = at_half = 0
    chunk = b"x" * CHUNK_BYTES
    started = time.monotonic()
    try:
        while time.monotonic() < started + seconds and len(outgoing) < SAFETY_STOP_BYTES:
            if not at_half and time.monotonic() >= started + seconds / 2:
                at_half = len(outgoing) or 1
            while produced < _due(started, time.monotonic()):
                outgoing += chunk              # WRONG: no limit, whoever is on the other end
                produced += CHUNK_BYTES
            peak = max(peak, len(outgoing))
            for _ in selector.select(0.002):
                try:
                    del outgoing[:conn.send(outgoing)]
                except BlockingIOError:
                    pass
    finally:
        selector.close()
        conn.close()
        client.close()
    return {"produced": produced, "skipped": 0, "peak": peak, "final": len(outgoing),
            "at_half": at_half, "pauses": 0, "elapsed": time.monotonic() - started}


class _Ticker(reactor.Protocol):
    """Produces 8 MiB/s on a 2 ms timer; while paused it skips its ticks, as a live feed would."""

    def __init__(self) -> None:
        self.paused = False
        self.due = self.produced = self.skipped = self.peak = self.pauses = 0
        self.started = 0.0
        self.chunk = b"x" * CHUNK_BYTES

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        _shrink(transport.get_extra_info("socket"), socket.SO_SNDBUF)
        self.started = transport.loop.time()
        transport.loop.call_every(0.002, self.tick)

    def tick(self) -> None:
        transport = self.transport
        due = _due(self.started, transport.loop.time())
        while self.due < due and not transport.is_closing():
            self.due += CHUNK_BYTES
            if self.paused:                    # right: paused means produce nothing
                self.skipped += CHUNK_BYTES
                continue
            transport.write(self.chunk)        # may call pause_writing() before it returns
            self.produced += CHUNK_BYTES
            self.peak = max(self.peak, transport.get_write_buffer_size())

    def pause_writing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_writing(self) -> None:
        self.paused = False


def _reactor_server(seconds: float) -> Dict[str, int]:
    loop = reactor.Reactor()
    ticker = _Ticker()
    server = loop.listen_tcp(lambda: ticker, "127.0.0.1", 0)
    client = _stalled_client(server.addresses[0][:2])
    started = time.monotonic()
    final = at_half = 0
    try:
        while time.monotonic() < started + seconds:
            loop.run_once(0.01)
            if not at_half and ticker.started and time.monotonic() >= started + seconds / 2:
                at_half = ticker.transport.get_write_buffer_size() or 1
        if ticker.started:
            final = ticker.transport.get_write_buffer_size()
            ticker.transport.abort()
            loop.run_once(0)
    finally:
        server.close()
        client.close()
        loop.close()
    return {"produced": ticker.produced, "skipped": ticker.skipped, "peak": ticker.peak,
            "final": final, "at_half": at_half, "pauses": ticker.pauses,
            "elapsed": time.monotonic() - started}


def _judge(side: str, server: Any, seconds: float) -> Outcome:
    result = server(seconds)
    peak = result["peak"]
    figures: Dict[str, object] = {
        "bytes produced": result["produced"],
        "peak bytes buffered in the process": peak,
        "bytes buffered at the end": result["final"],
        "growth over the second half, bytes per second": round(
            (result["final"] - result["at_half"]) / max(result["elapsed"] / 2, 1e-3)),
    }
    if side == "reactor":
        figures["pause_writing calls"] = result["pauses"]
        figures["bytes skipped while paused"] = result["skipped"]
    ok = 0 < peak <= BOUNDED_BYTES
    if ok:
        verdict = ("buffered at most {:,} bytes: pause_writing() at the high-water mark "
                   "stopped the producer".format(peak))
    elif peak:
        verdict = ("the outgoing buffer reached {:,} bytes and was still growing: nothing "
                   "told the producer the client was not reading".format(peak))
    else:
        verdict = "nothing was produced: the lesson did not run"
    return Outcome(side, figures, verdict, ok)


def _stalled_client(address: Any) -> socket.socket:
    """Connect a client that never reads, with a small receive buffer."""
    client = socket.socket()
    _shrink(client, socket.SO_RCVBUF)
    client.settimeout(5)
    client.connect(address)
    return client


def _shrink(sock: socket.socket, option: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER_BYTES)
