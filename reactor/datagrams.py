"""Datagram transports: UDP (IPv4, IPv6) and Unix datagram sockets.

A datagram is delivered whole or not at all, and for live data a late
datagram is worth less than a lost one. So this transport never blocks and
never lets a queue grow without bound::

    select -> on_readable -> recvfrom_into(shared buffer), up to
              Limits.datagrams_per_event times -> protocol.datagram_received
    sendto(data, addr) -> socket.sendto() at once
                       -> kernel buffer full: a bounded queue, flushed by on_writable
                       -> queue past Limits.datagram_queue_bytes: dropped and counted

The receive buffer holds 65,536 bytes, more than the largest UDP payload
(65,507 bytes over IPv4, 65,527 over IPv6), so nothing is truncated
silently; Unix datagram sockets read into a buffer as large as their
receive buffer, which bounds the largest datagram they can be sent.
Datagrams larger than the socket can send raise
:class:`~reactor.errors.DatagramTooLargeError` at ``sendto``.

Errors the network reports about *earlier* datagrams (ICMP port
unreachable becomes ``ECONNREFUSED`` on a connected socket) go to
``protocol.error_received(exc)``; the socket stays open.

Flow control is the stream transports': queued bytes above the high-water
mark call ``pause_writing()``, and below the low-water mark
``resume_writing()``.

A protocol callback that raises (``datagram_received`` with a bug) is
logged and counted (``stats()['callback_errors']``) like any other, but a
*listening* socket stays open: it serves every peer, and one peer's
datagram must not end the service for the rest (asyncio and Twisted keep
it open too). A connected socket, which has one peer, is closed and its
``connection_lost`` gets the exception.
"""

import collections
import errno
import logging
import socket
from typing import Any, Deque, Dict, Optional, Tuple

from .buffers import thread_read_buffer
from .errors import DatagramTooLargeError, TransportClosedError
from .loop import EVENT_READ, EVENT_WRITE
from .policy import DEFAULT_LIMITS, Limits
from .sockets import inode, unlink_if_ours
from .transports import _CLOSED, _CLOSING, _OPEN, SocketTransport

logger = logging.getLogger("reactor")

#: Largest payloads a UDP datagram can carry (no IPv6 jumbograms).
MAX_UDP_PAYLOAD = {socket.AF_INET: 65507, socket.AF_INET6: 65527}
UDP_READ_BYTES = 65536

class DatagramTransport(SocketTransport):
    """The transport for one datagram socket, bound and optionally connected.

    Made by ``Reactor.listen_udp``, ``connect_udp``, ``listen_unix_datagram``
    and ``connect_unix_datagram``. On a connected socket ``sendto``'s
    address must be None (or the peer's).
    """

    __slots__ = ("_queue", "_queued_bytes", "_peer", "_read_view", "_per_event", "_queue_limit",
                 "_max_payload", "_counters", "_unix_path")

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any,
                 peer: Any = None, limits: Limits = DEFAULT_LIMITS,
                 unix_path: Optional[str] = None) -> None:
        super().__init__(loop, sock, protocol, None, limits)
        self._queue: Deque[Tuple[bytes, Any]] = collections.deque()
        self._queued_bytes = 0
        self._peer = peer
        self._per_event = limits.datagrams_per_event
        self._queue_limit = limits.datagram_queue_bytes
        self._max_payload = MAX_UDP_PAYLOAD.get(sock.family)
        read_size = UDP_READ_BYTES
        if sock.family == getattr(socket, "AF_UNIX", None):
            read_size = max(read_size, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        self._read_view = thread_read_buffer(read_size)
        self._counters: Dict[str, int] = {"received": 0, "sent": 0, "dropped": 0,
                                          "dropped_bytes": 0, "errors": 0,
                                          "callback_errors": 0}
        # The socket file this transport bound, removed on close if still ours.
        self._unix_path = (unix_path, inode(unix_path)) if unix_path else None

    # -- the loop's calls ------------------------------------------------------

    def on_readable(self) -> None:
        """Deliver up to ``datagrams_per_event`` datagrams, each whole."""
        # Hot path: once per readable datagram socket per pass.
        # A protocol exception propagates to the loop (callback_failed); the
        # datagrams not yet read stay in the kernel for the next pass.
        view = self._read_view
        recvfrom_into = self._sock.recvfrom_into
        counters = self._counters
        for _ in range(self._per_event):
            if self._state is not _OPEN:
                break
            try:
                size, address = recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                counters["errors"] += 1
                self._protocol.error_received(exc)
                continue
            counters["received"] += 1
            self._protocol.datagram_received(view[:size].tobytes(), address)

    def on_writable(self) -> None:
        """Send queued datagrams until the kernel pushes back."""
        if self._state is _CLOSED:
            return
        queue = self._queue
        sock = self._sock
        while queue:
            data, address = queue[0]
            try:
                if address is None:
                    sock.send(data)
                else:
                    sock.sendto(data, address)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._counters["errors"] += 1
                self._protocol.error_received(exc)     # this datagram is lost; go on
            else:
                self._counters["sent"] += 1
            queue.popleft()
            self._queued_bytes -= len(data)
        if self._writing_paused:
            self._check_low_water(self._queued_bytes)
        self._update_interest()
        if self._state is _CLOSING and not queue:
            self._close_now(None)

    # -- the DatagramTransport API -----------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send one datagram to ``addr`` (None on a connected socket); never blocks.

        Raises :class:`DatagramTooLargeError` for a datagram the socket cannot
        send whole, ``ValueError`` for an address on a connected socket, and
        :class:`TransportClosedError` after ``close()``. When the kernel
        buffer is full the datagram is queued; when the queue is over
        ``Limits.datagram_queue_bytes`` it is dropped and counted.
        """
        if self._state is not _OPEN:
            raise TransportClosedError("sendto() after close() or abort()")
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        if self._max_payload is not None and size > self._max_payload:
            raise DatagramTooLargeError("datagram of %d bytes exceeds the %d-byte maximum "
                                        "of this socket" % (size, self._max_payload))
        if self._peer is not None:
            if addr is not None and addr != self._peer:
                raise ValueError("this transport is connected to %r; sendto() takes no "
                                 "other address (got %r)" % (self._peer, addr))
            addr = None
        elif addr is None:
            raise ValueError("sendto() needs an address on an unconnected socket")
        if not self._queue:
            try:
                if addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
                self._counters["sent"] += 1
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if exc.errno == errno.EMSGSIZE:
                    raise DatagramTooLargeError("datagram of %d bytes is too large for this "
                                                "socket: %s" % (size, exc.strerror)) from None
                self._counters["errors"] += 1
                self._protocol.error_received(exc)
                return
        self._enqueue(data, addr)

    def close(self) -> None:
        """Stop receiving, send what is queued, then close; idempotent."""
        if self._state is not _OPEN:
            return
        if not self._queue:
            self._close_now(None)
            return
        self._state = _CLOSING
        self._update_interest()

    def abort(self) -> None:
        """Close at once, dropping queued datagrams."""
        self._queue.clear()
        self._queued_bytes = 0
        self._close_now(None)

    def get_write_buffer_size(self) -> int:
        """Return the bytes of datagrams queued for the socket."""
        return self._queued_bytes

    def stats(self) -> Dict[str, int]:
        """Return counters: datagrams received, sent, dropped (and their bytes), errors."""
        return dict(self._counters, queued_bytes=self._queued_bytes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return ``sockname``, ``peername``, ``socket``, a ``stats()`` counter or ``default``."""
        if name == "peername":
            return self._peer if self._peer is not None else default
        if name in self._counters:
            return self._counters[name]
        return super().get_extra_info(name, default)

    def __repr__(self) -> str:
        return "<DatagramTransport fd=%d %s queued=%d>" % (
            self._fd, self._state.value, self._queued_bytes)

    # -- internals --------------------------------------------------------------

    def _enqueue(self, data: bytes, addr: Any) -> None:
        """The one way datagrams enter the queue: bound, write interest, flow control."""
        size = len(data)
        if self._queued_bytes + size > self._queue_limit:
            counters = self._counters
            if not counters["dropped"]:
                logger.warning("%r: send queue full (%d bytes); dropping datagrams "
                               "(counted in stats())", self, self._queue_limit)
            counters["dropped"] += 1
            counters["dropped_bytes"] += size
            return
        was_empty = not self._queue
        self._queue.append((data, addr))
        self._queued_bytes += size
        if was_empty:
            self._update_interest()
        self._check_high_water()

    def _update_interest(self) -> None:
        events = EVENT_READ if self._state is _OPEN else 0
        if self._queue and self._state is not _CLOSED:
            events |= EVENT_WRITE
        self._set_interest(events)

    def _end_after_failure(self, exc: BaseException) -> None:
        """Count a protocol failure; close only a connected socket (see the module docstring)."""
        self._counters["callback_errors"] += 1
        if self._peer is not None:
            self._queue.clear()
            self._queued_bytes = 0
            self._close_now(exc)

    def _close_now(self, exc: Optional[BaseException]) -> None:
        if self._state is _CLOSED:
            return
        self._close_socket(exc)
        if self._unix_path is not None:
            unlink_if_ours(*self._unix_path)
