"""Partial sends: ``send()`` on a non-blocking socket may take only part of the data.

A blocking ``send()`` waits until the kernel has room; a non-blocking one
takes what fits in the socket's send buffer *now* and returns how many
bytes that was. Code that ignores the return value (``sock.send(data)``
where ``sock.sendall(data)`` was meant) silently drops the rest, and
nothing fails: the connection stays up, the peer just receives a stream
with holes. It shows only under load, when the reader is slower than the
writer and the buffers are full, which is why it survives testing.

The fix is a send buffer: keep what ``send()`` did not take, send it when
the selector says the socket is writable again, and queue later writes
behind it so nothing is reordered. reactor's ``transport.write`` does
exactly that, and tells the producer to pause when the queue passes the
high-water mark (``pause_writing``), so the buffer stays bounded too.

The lesson: for ``seconds``, a producer writes 64 KiB blocks to a reader
that drains slowly, both with small socket buffers. Each side reports
what the application wrote, what the reader received, and whether the
two streams' checksums match.
"""

import selectors
import socket
import threading
import time
import zlib
from typing import Any, Dict, List

import reactor

from . import Outcome

TITLE = "partial send: ignoring send()'s return value loses bytes"
PREVENTED_BY = ("streams.py:StreamTransport.write", "buffers.py:immutable_tail",
                "buffers.py:SendBuffer.advance")
PROVED_BY = ("tests/test_streams.py::test_partial_sends_lose_and_reorder_nothing",
             "tests/test_streams.py::test_mutable_buffers_are_copied_when_queued")

BLOCK_BYTES = 64 * 1024
SOCKET_BUFFER_BYTES = 32 * 1024        # small kernel buffers: partial sends come at once
READ_BYTES = 16 * 1024                 # the slow reader: 16 KiB a millisecond at most


def run(seconds: float) -> List[Outcome]:
    """Stream blocks for ``seconds`` with each sender to a slow reader; naive first."""
    return [_judge("naive", _naive_sender, seconds), _judge("reactor", _reactor_sender, seconds)]


def _block(number: int) -> bytes:
    """Block ``number`` of the stream: its number repeated, so holes change the checksum."""
    return (b"%08d" % number) * (BLOCK_BYTES // 8)


def _naive_sender(sock: socket.socket, seconds: float) -> Dict[str, int]:
    """A plain selectors loop writing one block each time the socket is writable."""
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_WRITE)
    written = taken = number = 0
    checksum = 0
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            for _ in selector.select(0.05):
                block = _block(number)
                taken += sock.send(block)      # WRONG: what send() did not take is lost
                written += len(block)          # ... yet the program believes it went out
                checksum = zlib.crc32(block, checksum)
                number += 1
    finally:
        selector.close()
        sock.close()
    return {"written": written, "taken": taken, "checksum": checksum}


class _Producer(reactor.Protocol):
    """Writes blocks while the transport is not paused, until the deadline; then closes."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = 0.0
        self.paused = False
        self.pauses = self.written = self.taken = self.number = self.checksum = 0
        self.lost = False

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        _shrink_buffers(transport.get_extra_info("socket"))
        self.deadline = transport.loop.time() + self.seconds
        transport.loop.call_soon(self.produce)

    def produce(self) -> None:
        while not self.paused and not self.transport.is_closing():
            if self.transport.loop.time() >= self.deadline:
                self.transport.close()         # flushes the queue, then closes
                return
            block = _block(self.number)
            self.transport.write(block)        # right: queued if the kernel is full
            self.written += len(block)
            self.checksum = zlib.crc32(block, self.checksum)
            self.number += 1

    def pause_writing(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_writing(self) -> None:
        self.paused = False
        self.transport.loop.call_soon(self.produce)

    def connection_lost(self, exc: Any) -> None:
        self.lost = True
        self.taken = self.transport.bytes_sent    # what the kernel accepted, counted by send()


def _reactor_sender(address: Any, seconds: float) -> Dict[str, int]:
    loop = reactor.Reactor()
    producer = _Producer(seconds)
    try:
        loop.connect_tcp(lambda: producer, address[0], address[1], timeout=5)
        give_up = time.monotonic() + seconds + 10
        while not producer.lost and time.monotonic() < give_up:
            loop.run_once(0.05)
    finally:
        loop.close()
    return {"written": producer.written, "taken": producer.taken, "pauses": producer.pauses,
            "checksum": producer.checksum}


def _judge(side: str, sender: Any, seconds: float) -> Outcome:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_BYTES)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    received: Dict[str, int] = {}
    reader = threading.Thread(target=_slow_reader, args=(listener, received), daemon=True)
    reader.start()
    try:
        if side == "naive":
            sock = socket.create_connection(listener.getsockname(), timeout=5)
            _shrink_buffers(sock)
            sent = sender(sock, seconds)
        else:
            sent = sender(listener.getsockname(), seconds)
        reader.join(seconds + 10)
    finally:
        listener.close()
    got = received.get("bytes", 0)
    lost = sent["written"] - got
    figures: Dict[str, object] = {"bytes the program wrote": sent["written"],
                                  "bytes send() took": sent["taken"], "bytes received": got,
                                  "bytes lost": lost,
                                  "checksums match": sent["checksum"] == received.get("checksum")}
    if side == "reactor":
        figures["pause_writing calls"] = sent["pauses"]
    ok = lost == 0 and figures["checksums match"] is True and got > 0
    if ok:
        verdict = "all %s bytes arrived in order: what send() did not take was queued" % (
            "{:,}".format(got))
    else:
        verdict = "lost {:,} of {:,} bytes: send() took part and the rest was dropped".format(
            lost, sent["written"])
    return Outcome(side, figures, verdict, ok)


def _slow_reader(listener: socket.socket, received: Dict[str, int]) -> None:
    """Accept one connection and read it to the end, slowly, counting and checksumming."""
    total = checksum = 0
    try:
        conn, _ = listener.accept()
    except OSError:
        return
    with conn:
        conn.settimeout(10)
        try:
            while True:
                data = conn.recv(READ_BYTES)
                if not data:
                    break
                total += len(data)
                checksum = zlib.crc32(data, checksum)
                time.sleep(0.001)
        except OSError:
            pass
    received.update(bytes=total, checksum=checksum)


def _shrink_buffers(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_BYTES)
