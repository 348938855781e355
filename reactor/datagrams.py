"""Datagram transports: UDP (IPv4, IPv6) and Unix datagram sockets.

A datagram is delivered whole or not at all, and for live data a late
datagram is worth less than a lost one. So this transport never blocks and
never lets a queue grow without bound::

    select -> on_readable -> recvfrom_into(shared buffer), up to
              Limits.datagrams_per_event times
           -> source port screened? (one set lookup) -> protocol.datagram_received
    sendto(data, addr) -> socket.sendto() at once
                       -> kernel buffer full: a bounded queue, flushed by on_writable
                       -> queue past Limits.datagram_queue_bytes: dropped and counted

The receive buffer holds 65,536 bytes, more than the largest UDP payload
(65,507 bytes over IPv4, 65,527 over IPv6), so nothing is truncated
silently; Unix datagram sockets read into a buffer as large as their
receive buffer, which bounds the largest datagram they can be sent.
Datagrams larger than the socket can send raise
:class:`~reactor.errors.DatagramTooLargeError` at ``sendto``.

**Reflection loops** (CVE-1999-0103, the echo/chargen loop). Nobody checks
a UDP source address, so one datagram spoofed "from" a server's own address
makes an echo answer itself for ever, and one "from" another echo service
starts a ping-pong between the two. A *listening* UDP socket therefore drops,
and counts, datagrams it must never answer (``ReflectionFilter``), from:

* this host *and* our own port: it is us, or our twin on another local
  address (``stats()['dropped_reflected']``);
* a port below 1024 (unless ``Limits.datagram_allow_low_source_ports``) or
  one of ``Limits.datagram_blocked_source_ports`` (echo, chargen, DNS, NTP,
  SSDP, memcached): services, not clients (``dropped_source_port``).

The hot path pays one set lookup: the set holds the blocked ports and our
own, and only a datagram from our own port asks whether its host is this
one (a cached bind() probe). Each kind of drop is logged once per episode
(again only after ``abuse_log_interval_seconds`` without one). Connected
sockets are not screened: the kernel gives them only their peer's
datagrams, and a DNS or NTP client hears from port 53 or 123 by design.
Unix datagram sockets have no ports. A listening socket that is also a
client of such a service must allow its port. Per-source rates and
allow/deny lists live in the protections wing (``protect/datagram_guard.py``).

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

from .addresses import format_address
from .buffers import thread_read_buffer
from .errors import DatagramTooLargeError, TransportClosedError
from .loop import EVENT_READ, EVENT_WRITE
from .policy import DEFAULT_LIMITS, Limits
from .reflection import DROP_REASONS, DropLog, ReflectionFilter
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
    address must be None (or the peer's). ``counters`` is a dict to count
    in, shared with a layer above (the datagram guard counts its drops
    there too), so that one ``stats()`` tells all.
    """

    __slots__ = ("_queue", "_queued_bytes", "_peer", "_read_view", "_per_event", "_queue_limit",
                 "_max_payload", "_counters", "_unix_path", "_screened_ports", "_reflection",
                 "_drop_log")

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any,
                 peer: Any = None, limits: Limits = DEFAULT_LIMITS,
                 unix_path: Optional[str] = None,
                 counters: Optional[Dict[str, int]] = None) -> None:
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
        self._counters: Dict[str, int] = counters if counters is not None else {}
        self._counters.update(received=0, sent=0, dropped=0, dropped_bytes=0, errors=0,
                              callback_errors=0, dropped_reflected=0, dropped_source_port=0)
        # The socket file this transport bound, removed on close if still ours.
        self._unix_path = (unix_path, inode(unix_path)) if unix_path else None
        # Only a listening IP socket is screened (see the module docstring).
        self._reflection: Optional[ReflectionFilter] = None
        self._screened_ports: Optional[frozenset] = None
        if peer is None and sock.family in MAX_UDP_PAYLOAD:
            self._reflection = ReflectionFilter(sock.getsockname(), limits)
            self._screened_ports = self._reflection.screened_ports
        self._drop_log = DropLog(limits.abuse_log_interval_seconds)

    # -- the loop's calls ------------------------------------------------------

    def on_readable(self) -> None:
        """Deliver up to ``datagrams_per_event`` datagrams, each whole."""
        # Hot path: once per readable datagram socket per pass. Per datagram:
        # one recvfrom_into, one set lookup of the source port, one call up.
        # A protocol exception propagates to the loop (callback_failed); the
        # datagrams not yet read stay in the kernel for the next pass. The
        # interest test covers closed and paused (an error on a paused socket
        # reports it readable too; see poller.py), also by the protocol.
        view = self._read_view
        recvfrom_into = self._sock.recvfrom_into
        counters = self._counters
        screened_ports = self._screened_ports
        for _ in range(self._per_event):
            if not self._interest & EVENT_READ:
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
            if (screened_ports is not None and address[1] in screened_ports
                    and self._screened_out(address)):
                continue
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
        """Return the counters and ``queued_bytes``: ``received`` (every datagram read),
        ``dropped_reflected`` / ``dropped_source_port`` (refused, see above), ``dropped`` /
        ``dropped_bytes`` (ours, not sent: queue full), ``sent``, ``errors``,
        ``callback_errors``, and a datagram guard's (``dropped_filter`` ...)."""
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

    def _screened_out(self, address: Any) -> bool:
        """Drop (count, log per episode) a datagram the reflection filter refuses; tell if so."""
        reason = self._reflection.refuses(address)        # type: ignore[union-attr]
        if reason is None:
            return False
        self._counters[reason] += 1
        if self._drop_log.starts_episode(reason, self._loop.time()):
            logger.warning("dropping datagrams from %s %s: %s; counting them in stats() as %s "
                           "(logged again after %g s without one)", format_address(address),
                           self._describe_peer(), DROP_REASONS[reason], reason,
                           self._drop_log.quiet_seconds)
        return True

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
        events = EVENT_READ if self._state is _OPEN and not self._read_holds else 0
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
