"""Stream transports: one connected TCP or Unix socket between the loop and a Protocol.

The transport owns the socket and the send buffer; the protocol owns the
meaning of the bytes. The loop calls ``on_readable`` / ``on_writable``
directly (the transport is its fd's watcher), and those call the
protocol. The byte path, both ways::

    wait -> on_readable -> recv(64 KiB) -> protocol.data_received(bytes)
    protocol -> write(data) -> socket.send() at once      (nothing queued: no buffer)
                            -> SendBuffer + write interest (the rest)
            wait -> on_writable -> sendmsg(chunks) -> advance -> drop write interest

Receiving is ``recv(Limits.read_chunk_bytes)``: CPython allocates that
many bytes, the kernel fills what arrived, and the object is shrunk in place,
so the protocol gets the very object read. (``recv_into`` a shared buffer
plus a copy was slower at every size: 0.26 µs a read at 64 B, 1.3 µs at 64
KiB. Above glibc's mmap threshold, 128 KiB, every read would mmap: keep
``read_chunk_bytes`` at 64 KiB or below.) An event reads at most
``Limits.max_read_per_event_bytes``, so a connection that never stops sending
cannot starve the others, and a short read ends the event early (the socket
is most likely drained: no extra ``recv`` just to hear EAGAIN).

Flow control, both ways: our sending pauses and resumes the protocol at the
water marks (``transports.py``); ``pause_reading()`` drops read interest,
so the kernel's receive buffer fills and TCP tells the peer to slow down.

Slow consumers, whose send buffer grows because they do not read, are
closed by the caps of ``slow_consumers.py``.

Half-close: ``write_eof()`` shuts our sending side once the buffer drains,
and the peer's EOF calls ``eof_received()``. Once *both* directions are
shut, nothing can move any more, so the transport closes itself and
``connection_lost(None)`` follows (asyncio leaves such a transport open
until ``close()``; there is nothing left to use it for).

The life cycle, ``connection_lost`` exactly once (None for a clean close,
else the error) and the failure policy are shared with datagram transports
(``transports.py``).
"""

import errno
import functools
import logging
import os
import socket
from typing import Any, Dict, Iterable, Optional

from .buffers import SendBuffer, immutable_tail
from .errors import InputBudgetError, TransportClosedError
from .loop import EVENT_READ, EVENT_WRITE
from .policy import DEFAULT_LIMITS, Limits
from .slow_consumers import SendCaps
from .sockets import peer_has_closed
from .transports import _CLOSED, _CLOSING, _OPEN, SocketTransport, TransportState

logger = logging.getLogger("reactor")

__all__ = ["StreamTransport", "TransportState", "CONNECTION_ERRNOS"]

#: Errors that mean "the peer or the network ended this connection"; they
#: are logged at debug level, since on a public server they are routine.
CONNECTION_ERRNOS = frozenset(
    getattr(errno, name) for name in
    ("ECONNRESET", "EPIPE", "ETIMEDOUT", "ECONNABORTED", "ENOTCONN", "ESHUTDOWN",
     "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "ECONNREFUSED")
    if hasattr(errno, name))

_HAS_SENDMSG = hasattr(socket.socket, "sendmsg")
_INF = float("inf")
_READ = EVENT_READ
#: How long ``close_with_error`` waits for queued bytes to drain before it
#: aborts: a peer that stops reading must not hold a closing connection open.
CLOSE_LINGER_SECONDS = 5.0


class StreamTransport(SendCaps, SocketTransport):
    """The transport for one connected stream socket (TCP or Unix).

    Created by servers and clients, not by applications. ``owner`` (a
    server, or None) is told ``connection_closed(transport)`` when the
    socket closes, ``callback_failed(transport, exc)`` when the protocol
    raised, and ``report_closing(transport, exc)`` when something closes it
    for a reason. ``bytes_received`` and ``bytes_sent`` count what crossed
    the socket.
    """

    __slots__ = ("_send_buffer", "_eof_pending", "_eof_sent", "_eof_received",
                 "_closed_locally", "_peername", "_read_chunk",
                 "_max_read_per_event", "bytes_received", "bytes_sent",
                 "_hard_cap", "_soft_cap", "_soft_cap_seconds", "_soft_cap_timer",
                 "_over_soft_cap_since", "_lost_error", "_limits", "_writable_waiter")

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any,
                 peername: Any = None, owner: Any = None,
                 limits: Limits = DEFAULT_LIMITS,
                 extra: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(loop, sock, protocol, owner, limits)
        self._send_buffer: Optional[SendBuffer] = None   # exists only while bytes wait
        self._eof_pending = False
        self._eof_sent = False
        self._eof_received = False
        self._closed_locally = False
        self._peername = peername
        self._read_chunk = limits.read_chunk_bytes
        self._max_read_per_event = limits.max_read_per_event_bytes
        self._extra = extra
        self.bytes_received = 0
        self.bytes_sent = 0
        hard_cap, soft_cap = limits.send_buffer_hard_cap_bytes, limits.send_buffer_soft_cap_bytes
        self._hard_cap = hard_cap if hard_cap is not None else _INF
        self._soft_cap = soft_cap if soft_cap is not None else _INF
        self._soft_cap_seconds = limits.send_buffer_soft_cap_seconds
        self._soft_cap_timer: Any = None
        self._over_soft_cap_since: Optional[float] = None
        self._lost_error: Optional[BaseException] = None
        self._limits = limits
        self._writable_waiter: Any = None       # wait_writable's callback

    # -- the loop's calls (hot path) ------------------------------------------

    def on_readable(self) -> None:
        """Read what the socket has into the protocol: one recv, more only while they fill the buffer."""
        # Hot path: once per readable connection per pass. The common case is
        # one short read: one recv, one protocol call.
        # The interest test covers closed, paused and EOF alike; it also
        # refuses a read that an earlier callback of this same pass paused
        # (select() reported us before that callback ran).
        if not self._interest & _READ:
            return
        chunk = self._read_chunk
        budget = self._max_read_per_event
        while True:
            try:
                data = self._sock.recv(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fatal_error(exc)
                return
            received = len(data)
            if not received:
                self._peer_eof()
                return
            self.bytes_received += received
            self._protocol.data_received(data)
            # A short read means the socket is most likely drained: skip the
            # recv that would only say EAGAIN. A full one may have more, up to
            # the per-event budget, unless the protocol paused or closed us.
            if received < chunk:
                return
            budget -= received
            if budget <= 0 or not self._interest & _READ:
                return

    def on_writable(self) -> None:
        """Send queued bytes; when the buffer empties, drop write interest and finish what waited."""
        # Hot path: once per pass for each connection with bytes queued.
        buffer = self._send_buffer
        if self._state is _CLOSED or buffer is None:
            if self._writable_waiter is not None:
                self._wake_writable_waiter()
            return
        chunks = buffer.peek()
        try:
            if len(chunks) == 1 or not _HAS_SENDMSG:
                sent = self._sock.send(chunks[0])
            else:
                sent = self._sock.sendmsg(chunks)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fatal_error(exc)
            return
        buffer.advance(sent)
        self.bytes_sent += sent
        if self._over_soft_cap_since is not None and buffer.nbytes <= self._soft_cap:
            self._over_soft_cap_since = None
        if self._writing_paused:
            self._check_low_water(buffer.nbytes)       # may write more, or close us
            if self._state is _CLOSED:
                return
        if buffer.nbytes:
            return
        self._send_buffer = None
        self._update_interest()
        if self._state is _CLOSING:
            self._close_now(None)
        elif self._eof_pending and not self._eof_sent:
            self._shutdown_write()
        elif self._writable_waiter is not None:
            self._wake_writable_waiter()

    # -- the Transport API ------------------------------------------------------

    def write(self, data: Any) -> None:
        """Send ``data`` (bytes-like) in order after everything written before.

        Tries the socket at once when nothing is queued; what the kernel does
        not take is queued without copying (``bytes``) or copied once
        (mutable buffers, so later changes by the caller cannot leak in).
        ``pause_writing()`` may be called on the protocol before this returns.
        Raises :class:`TransportClosedError` after ``close()``, ``abort()``
        or ``write_eof()``; after the *peer* or an error ended the
        connection, data is dropped silently (``connection_lost`` is coming).
        """
        # Hot path: every response. Common case: one send() that takes it all.
        if self._state is not _OPEN or self._eof_pending:
            self._refuse_write(data)
            return
        if not data:
            return
        if self._send_buffer is None:
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                self._fatal_error(exc)
                return
            self.bytes_sent += sent
            if sent == len(data):
                return
        else:
            sent = 0
        chunk = immutable_tail(data, sent)
        if chunk:
            self._enqueue(chunk)

    def writelines(self, chunks: Iterable[Any]) -> None:
        """Write several chunks as one (joined once, then one send attempt)."""
        self.write(b"".join(chunks))

    def write_eof(self) -> None:
        """Half-close: after the queued bytes drain, shut down our sending side.

        The peer reads EOF; we can still receive. Idempotent. Further
        ``write()`` calls raise :class:`TransportClosedError`. If the peer
        has already half-closed too, the transport then closes itself.
        """
        if self._state is not _OPEN or self._eof_pending:
            return
        self._eof_pending = True
        if self._send_buffer is None:
            self._shutdown_write()

    def can_write_eof(self) -> bool:
        """Tell whether ``write_eof()`` is supported (always, for streams)."""
        return True

    def wait_writable(self, callback: Any) -> None:
        """Call ``callback()`` once, on a later pass, when nothing is queued and the socket is writable.

        For a producer that writes around the send buffer, as ``os.sendfile``
        does (``http/server.py``): it sends what the kernel takes, then waits
        here. One waiter at a time (a new one replaces the old); none is
        called once the transport is closing.
        """
        if self._state is _OPEN:
            self._writable_waiter = callback
            self._update_interest()

    def sendfile(self, file: Any, offset: int, count: int) -> int:
        """Send up to ``count`` bytes of ``file`` from ``offset`` with ``os.sendfile``.

        For a producer between ``wait_writable`` calls, with nothing queued.
        Returns what the kernel took (0 at the end of the file); raises as
        ``os.sendfile`` does, ``BlockingIOError`` when the socket is full.
        """
        sent = os.sendfile(self._fd, file.fileno(), offset, count)
        self.bytes_sent += sent
        return sent

    def _wake_writable_waiter(self) -> None:
        callback, self._writable_waiter = self._writable_waiter, None
        self._update_interest()
        if self._state is _OPEN:
            callback()

    def close(self) -> None:
        """Stop reading, send what is queued, then close; idempotent."""
        self._closed_locally = True              # from now on, write() raises
        if self._state is _OPEN:
            self._close_after_flush()

    def abort(self) -> None:
        """Close at once, dropping anything queued; ``connection_lost(None)`` follows."""
        self._closed_locally = True
        if self._state is _CLOSED:
            return
        self._send_buffer = None
        self._close_now(None)

    def close_with_error(self, exc: BaseException, flush: bool = True) -> None:
        """Close because of ``exc`` (a bad frame, a timeout): report it, then close.

        The owner (a server) counts and logs ``exc`` under ``exc.reason``;
        without one it is logged here. ``connection_lost`` receives ``exc``.
        With ``flush``, queued bytes (a last error message) are sent first,
        for at most ``CLOSE_LINGER_SECONDS``; without, they are dropped. Later
        ``write()`` calls are ignored rather than refused: the protocol did
        not close the connection, so it should not have to expect this.
        """
        if self._state is _CLOSED or self._lost_error is not None:
            return
        self._lost_error = exc
        if self._owner is not None:
            self._owner.report_closing(self, exc)
        else:
            logger.warning("closing connection %s: %s", self._describe_peer(), exc)
        if self._send_buffer is None or not flush:
            self._send_buffer = None
            self._close_now(None)
            return
        self._state = _CLOSING
        self._update_interest()
        self._loop.call_later(CLOSE_LINGER_SECONDS, self._linger_expired)

    def is_reading(self) -> bool:
        """Tell whether the transport is reading (open, not paused or held, no EOF yet)."""
        return self._state is _OPEN and not self._read_holds and not self._eof_received

    def peer_has_closed(self) -> bool:
        """Tell, without reading, whether the peer has closed or reset the connection.

        For a connection that is not reading (a rate limit holds it): with
        no read interest the loop never sees the peer's FIN or RST.
        """
        if self._state is not _OPEN or self._eof_received:
            return self._state is _CLOSED
        return peer_has_closed(self._sock)

    def get_write_buffer_size(self) -> int:
        """Return the number of bytes queued and not yet taken by the kernel."""
        return 0 if self._send_buffer is None else self._send_buffer.nbytes

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return ``peername``, ``sockname``, ``socket`` or another named detail, else ``default``."""
        if name == "peername":
            if self._peername is None and self._state is not _CLOSED:
                try:
                    self._peername = self._sock.getpeername()
                except OSError:
                    return default
            return self._peername if self._peername is not None else default
        if name in ("sockname", "socket"):
            return super().get_extra_info(name, default)
        if name == "limits":
            return self._limits
        if name == "input_budget":                # report_held(part, bytes), or None
            budget = getattr(self._owner, "input_budget", None)
            return None if budget is None else functools.partial(budget.update, self)
        if self._extra is not None:
            return self._extra.get(name, default)
        return default

    def __repr__(self) -> str:
        return "<StreamTransport fd=%d %s peer=%r buffered=%d>" % (
            self._fd, self._state.value, self._peername, self.get_write_buffer_size())

    # -- internals --------------------------------------------------------------

    def _enqueue(self, chunk: Any) -> None:
        """The one way bytes enter the send buffer: size, write interest, flow control."""
        buffer = self._send_buffer
        if buffer is None:
            buffer = self._send_buffer = SendBuffer()
            buffer.append(chunk)
            self._update_interest()
        else:
            buffer.append(chunk)
        self._check_high_water()                  # may call the protocol, which may close us
        if ((buffer.nbytes > self._soft_cap or buffer.nbytes > self._hard_cap)
                and self._state is not _CLOSED):
            self._check_send_caps(buffer.nbytes)

    def input_budget_exceeded(self, held_bytes: int, max_bytes: int) -> None:
        """The server's input budget is spent and this connection holds the most: close it."""
        self.close_with_error(InputBudgetError(
            "%d bytes of input held (a partial frame, or input over a rate) when the server's "
            "held input passed its budget of %d bytes" % (held_bytes, max_bytes)), flush=False)

    def _linger_expired(self) -> None:
        if self._state is not _CLOSED:
            self._send_buffer = None
            self._close_now(None)

    def _update_interest(self) -> None:
        """Make the selector registration match what the transport wants now."""
        events = 0
        if self._state is _OPEN and not self._read_holds and not self._eof_received:
            events = EVENT_READ
        if ((self._send_buffer is not None or self._writable_waiter is not None)
                and self._state is not _CLOSED):
            events |= EVENT_WRITE
        self._set_interest(events)

    def _close_after_flush(self) -> None:
        """Close once the send buffer drains (at once if it is empty)."""
        if self._send_buffer is None:
            self._close_now(None)
            return
        self._state = _CLOSING
        self._update_interest()

    def _peer_eof(self) -> None:
        """The peer half-closed: ask the protocol whether to keep our side open.

        An exception from ``eof_received`` propagates to the loop, which
        hands it to ``callback_failed``.
        """
        self._eof_received = True
        self._update_interest()
        keep_open = self._protocol.eof_received()
        if self._state is not _OPEN:
            return
        if self._eof_sent or not keep_open:
            self._close_after_flush()        # the peer ended it: later writes are dropped

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._fatal_error(exc)
            return
        self._eof_sent = True
        if self._eof_received:
            self._close_after_flush()

    def _refuse_write(self, data: Any) -> None:
        if self._eof_pending:
            raise TransportClosedError("write() after write_eof(): the sending side is shut")
        if self._closed_locally:
            raise TransportClosedError("write() after close() or abort() on this transport")
        # The peer, an error or a protection ended the connection;
        # connection_lost is queued, so the data is dropped quietly.

    def _fatal_error(self, exc: OSError) -> None:
        """End the connection because of ``exc``; routine network errors log at debug."""
        if exc.errno in CONNECTION_ERRNOS:
            logger.debug("%r: connection ended: %s", self, exc)
        else:
            logger.error("%r: socket error, closing: %s", self, exc)
        self._send_buffer = None
        self._close_now(exc)

    def _end_after_failure(self, exc: BaseException) -> None:
        """A protocol callback raised: abort, and let ``connection_lost`` carry ``exc``."""
        if self._lost_error is None:
            self._lost_error = exc
        self._send_buffer = None
        self._close_now(None)

    def _close_now(self, exc: Optional[BaseException]) -> None:
        """Close the socket at once and queue ``connection_lost``; runs once."""
        if self._state is _CLOSED:
            return
        if self._soft_cap_timer is not None:
            self._soft_cap_timer.cancel()
        self._close_socket(exc or self._lost_error)
