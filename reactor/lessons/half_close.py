"""Half-close: the peer's EOF ends its sending, not the conversation.

TCP has two directions and each is closed on its own. A client that has
sent its whole request may say so with ``shutdown(SHUT_WR)`` (``nc -N``,
HTTP/1.0-style uploads, ``printf ... | nc``, any "send everything, then
read the answer" tool) and then wait for the reply. The server's ``recv()``
returns ``b''``: *the client will send nothing more*. It does not mean
*the client is gone*. A server that treats it so and closes at once throws
away every byte of reply it still had queued, and the answer it would have
written after seeing the whole request never leaves. The client sees a
clean EOF and a truncated reply, with no error anywhere.

The fix: on EOF, finish the work, write the rest of the reply, then close
(which sends the queued bytes first) or ``write_eof()``. In reactor a
protocol's ``eof_received()`` returns True to keep the write side open,
and ``close()`` flushes before closing.

The lesson: for ``seconds``, clients with small receive buffers connect
one after another, send a 256 KiB request, shut down their sending side
and read the reply to the end. The server echoes the request in upper case
as it arrives, then ends with a summary line once the request is complete.
Each side reports how many replies were complete and how many bytes were lost.
"""

import selectors
import socket
import threading
import time
from typing import Any, Dict, List

import reactor

from . import Outcome

TITLE = "half-close: closing on the peer's EOF loses the reply"
PREVENTED_BY = ("streams.py:StreamTransport._peer_eof", "streams.py:StreamTransport.write_eof",
                "streams.py:StreamTransport._close_after_flush")
PROVED_BY = ("tests/test_streams.py::test_half_close_echo_returns_everything_then_eof",
             "tests/test_streams.py::test_eof_received_true_keeps_our_side_open")

REQUEST = b"please shout this back at me\n" * 9000          # ~256 KiB
SMALL_BUFFER_BYTES = 32 * 1024
MAX_CLIENTS = 2000
CLIENT_EVERY_SECONDS = 0.01           # a client every 10 ms: a steady trickle, not a load test


def run(seconds: float) -> List[Outcome]:
    """Serve half-closing clients for ``seconds`` with each server; naive first."""
    return [_judge("naive", _naive_server, seconds), _judge("reactor", _reactor_server, seconds)]


def _summary(request_bytes: int) -> bytes:
    return b"-- %d bytes shouted back\n" % request_bytes


EXPECTED = REQUEST.upper() + _summary(len(REQUEST))


def _naive_server(listener: socket.socket, stop: threading.Event) -> None:
    """A selectors loop with a correct send buffer, and the half-close bug."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    outgoing: Dict[socket.socket, bytearray] = {}
    received: Dict[socket.socket, int] = {}
    try:
        while not stop.is_set():
            for key, events in selector.select(0.05):
                sock = key.fileobj
                if sock is listener:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    _shrink(conn, socket.SO_SNDBUF)
                    outgoing[conn], received[conn] = bytearray(), 0
                    selector.register(conn, selectors.EVENT_READ)
                    continue
                if events & selectors.EVENT_WRITE:
                    try:
                        del outgoing[sock][:sock.send(outgoing[sock])]
                    except BlockingIOError:
                        pass
                if events & selectors.EVENT_READ:
                    data = sock.recv(65536)
                    if not data:
                        # WRONG: b'' means "the client sent everything", not "the client
                        # is gone". The queued reply and the summary are thrown away.
                        selector.unregister(sock)
                        sock.close()
                        del outgoing[sock], received[sock]
                        continue
                    received[sock] += len(data)
                    outgoing[sock] += data.upper()
                # Watch for writability only while bytes wait (else select spins).
                wanted = selectors.EVENT_READ | (selectors.EVENT_WRITE if outgoing[sock] else 0)
                if wanted != key.events:
                    selector.modify(sock, wanted)
    finally:
        for sock in outgoing:
            sock.close()
        selector.close()


class _Shouter(reactor.Protocol):
    """Shouts each chunk back as it arrives; at the request's end, a summary line."""

    def __init__(self) -> None:
        self.received = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        _shrink(transport.get_extra_info("socket"), socket.SO_SNDBUF)

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.transport.write(data.upper())

    def eof_received(self) -> bool:
        # Right: the request is complete, so answer it; close() sends what is
        # queued first. Returning True keeps our sending side open meanwhile.
        self.transport.write(_summary(self.received))
        self.transport.close()
        return True


def _reactor_server(listener: socket.socket, stop: threading.Event) -> None:
    loop = reactor.Reactor()
    server = loop.listen_tcp(_Shouter, sockets=[listener])
    try:
        while not stop.is_set():
            loop.run_once(0.05)
    finally:
        for transport in server.connections():
            transport.abort()
        server.close()
        loop.run_once(0)
        loop.close()


def _judge(side: str, server: Any, seconds: float) -> Outcome:
    listener = socket.create_server(("127.0.0.1", 0))
    address = listener.getsockname()
    stop = threading.Event()
    thread = threading.Thread(target=server, args=(listener, stop), daemon=True)
    thread.start()
    clients = complete = lost = 0
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and clients < MAX_CLIENTS:
            reply = _half_closing_client(address)
            clients += 1
            complete += reply == EXPECTED
            lost += len(EXPECTED) - len(reply)
            time.sleep(CLIENT_EVERY_SECONDS)
    finally:
        stop.set()
        thread.join(10)
        listener.close()
    figures: Dict[str, object] = {"clients": clients, "complete replies": complete,
                                  "reply bytes expected": clients * len(EXPECTED),
                                  "reply bytes lost": lost}
    ok = clients > 0 and complete == clients
    if ok:
        verdict = "{:,} of {:,} clients got their whole reply after their EOF".format(
            complete, clients)
    else:
        verdict = ("{:,} of {:,} replies were cut short, {:,} bytes lost: the server closed on "
                   "the client's EOF".format(clients - complete, clients, lost))
    return Outcome(side, figures, verdict, ok)


def _half_closing_client(address: Any) -> bytes:
    """Send the request, shut our sending side, read the reply until EOF (``nc -N``)."""
    with socket.socket() as sock:
        _shrink(sock, socket.SO_RCVBUF)
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except OSError:                        # a reset, or the 5 s timeout
            pass
        return bytes(reply)


def _shrink(sock: Any, option: int) -> None:
    """Shrink a socket buffer, so a reply waits in the server's queue, not the kernel's."""
    sock.setsockopt(socket.SOL_SOCKET, option, SMALL_BUFFER_BYTES)
