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
"""

import collections
import errno
import logging
import socket
from typing import Any, Deque, Dict, Optional, Tuple

from .buffers import thread_read_buffer
from .errors import DatagramTooLargeError, TransportClosedError
from .loop import EVENT_READ, EVENT_WRITE
from .policy import DEFAULT_LIMITS, Limits, water_marks
from .streams import TransportState
from .unix import inode, unlink_if_ours

logger = logging.getLogger("reactor")

#: Largest payloads a UDP datagram can carry (no IPv6 jumbograms).
MAX_UDP_PAYLOAD = {socket.AF_INET: 65507, socket.AF_INET6: 65527}
UDP_READ_BYTES = 65536

_OPEN = TransportState.OPEN
_CLOSING = TransportState.CLOSING
_CLOSED = TransportState.CLOSED


class DatagramTransport:
    """The transport for one datagram socket, bound and optionally connected.

    Made by ``Reactor.listen_udp``, ``connect_udp``, ``listen_unix_datagram``
    and ``connect_unix_datagram``. On a connected socket ``sendto``'s
    address must be None (or the peer's).
    """

    __slots__ = ("_loop", "_sock", "_fd", "_protocol", "_state", "_events", "_queue",
                 "_queued_bytes", "_high_water", "_low_water", "_writing_paused",
                 "_peer", "_read_view", "_per_event", "_queue_limit", "_max_payload",
                 "_counters", "_unix_path", "__weakref__")

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any,
                 peer: Any = None, limits: Limits = DEFAULT_LIMITS,
                 unix_path: Optional[str] = None) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._state = _OPEN
        self._events = 0
        self._queue: Deque[Tuple[bytes, Any]] = collections.deque()
        self._queued_bytes = 0
        self._high_water = limits.high_water_bytes
        self._low_water = limits.low_water_bytes
        self._writing_paused = False
        self._peer = peer
        self._per_event = limits.datagrams_per_event
        self._queue_limit = limits.datagram_queue_bytes
        self._max_payload = MAX_UDP_PAYLOAD.get(sock.family)
        read_size = UDP_READ_BYTES
        if sock.family == getattr(socket, "AF_UNIX", None):
            read_size = max(read_size, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        self._read_view = thread_read_buffer(read_size)
        self._counters: Dict[str, int] = {"received": 0, "sent": 0, "dropped": 0,
                                          "dropped_bytes": 0, "errors": 0}
        # The socket file this transport bound, removed on close if still ours.
        self._unix_path = (unix_path, inode(unix_path)) if unix_path else None

    def start(self) -> None:
        """Call ``connection_made`` and start receiving."""
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._loop._report(exc, self._protocol.connection_made, "connection_made")
            self.abort()
            return
        self._update_interest()

    # -- the loop's calls ------------------------------------------------------

    def on_readable(self) -> None:
        """Deliver up to ``datagrams_per_event`` datagrams, each whole."""
        # Hot path: once per readable datagram socket per pass.
        view = self._read_view
        recvfrom_into = self._sock.recvfrom_into
        protocol = self._protocol
        received = 0
        for _ in range(self._per_event):
            if self._state is not _OPEN:
                break
            try:
                size, address = recvfrom_into(view)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._counters["errors"] += 1
                protocol.error_received(exc)
                continue
            received += 1
            protocol.datagram_received(view[:size].tobytes(), address)
        self._counters["received"] += received

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
        if self._writing_paused and self._queued_bytes <= self._low_water:
            self._writing_paused = False
            self._protocol.resume_writing()
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

    def is_closing(self) -> bool:
        """Tell whether the transport is closing or closed."""
        return self._state is not _OPEN

    def get_write_buffer_size(self) -> int:
        """Return the bytes of datagrams queued for the socket."""
        return self._queued_bytes

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        """Set the water marks (as for streams); raises ValueError unless 0 <= low <= high."""
        self._high_water, self._low_water = water_marks(high, low)

    def get_protocol(self) -> Any:
        """Return the protocol this transport calls."""
        return self._protocol

    def stats(self) -> Dict[str, int]:
        """Return counters: datagrams received, sent, dropped (and their bytes), errors."""
        return dict(self._counters, queued_bytes=self._queued_bytes)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return ``sockname``, ``peername``, ``socket``, ``dropped`` or ``default``."""
        if name == "sockname":
            try:
                return self._sock.getsockname()
            except OSError:
                return default
        if name == "peername":
            return self._peer if self._peer is not None else default
        if name == "socket":
            return self._sock
        if name in self._counters:
            return self._counters[name]
        return default

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
        if not self._writing_paused and self._queued_bytes > self._high_water:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _update_interest(self) -> None:
        events = EVENT_READ if self._state is _OPEN else 0
        if self._queue and self._state is not _CLOSED:
            events |= EVENT_WRITE
        if events != self._events:
            if self._events:
                self._loop._rewatch(self._fd, events, self)
            else:
                self._loop._watch(self._fd, events, self)
            self._events = events

    def _close_now(self, exc: Optional[BaseException]) -> None:
        if self._state is _CLOSED:
            return
        self._state = _CLOSED
        if self._events:
            self._loop._rewatch(self._fd, 0, self)
            self._events = 0
        self._sock.close()
        if self._unix_path is not None:
            unlink_if_ours(*self._unix_path)
        self._loop.call_soon(self._protocol.connection_lost, exc)


def bind_datagram(family: int, address: Any, reuse_port: bool = False) -> socket.socket:
    """Create a non-blocking datagram socket bound to ``address``."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            if not hasattr(socket, "SO_REUSEPORT"):
                raise ValueError("reuse_port is not supported on this platform")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if address is not None:
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, "cannot bind datagram socket to %s: %s"
                              % (address, exc.strerror)) from None
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
