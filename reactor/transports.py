"""What every socket transport shares: a life cycle, a selector registration, one failure policy.

A *transport* owns one socket and stands between the loop and a protocol.
Stream transports (``streams.py``: TCP, Unix) and datagram transports
(``datagrams.py``: UDP, Unix datagrams) differ in how they move bytes, and
share everything else, which lives here (asyncio's ``_SelectorTransport``
plays the same part):

* the state (``TransportState``) and ``is_closing``;
* why reading is held (``pause_reading`` for the app, ``hold_reading`` for
  layers: bits of one mask, each released on its own);
* the water marks of our sending side: above the high mark queued,
  ``pause_writing()``; drained to the low mark, ``resume_writing()``
  (``_check_high_water`` / ``_check_low_water``, once each per change);
* the selector registration: the transport is the key's data, watched for
  exactly the events it wants now (``_set_interest``), so the loop calls
  ``on_readable`` / ``on_writable`` on it with nothing in between;
* ``start``: ``connection_made``, then reading;
* the failure policy, written once (``callback_failed``): an exception
  escaping a protocol callback is logged with the peer's address, counted by
  the owner (a server), and ends the connection, so ``connection_lost``
  receives it. The loop calls ``callback_failed`` when an ``on_readable`` /
  ``on_writable`` raises; ``start`` and the flow-control calls route their
  own failures here; a layer that defers work to a later pass wraps it in
  ``run_protected``;
* ``connection_lost`` exactly once, through ``call_soon``, after which the
  protocol is replaced by a stand-in that ignores late calls.

``SocketTransport`` derives from ``asyncio.BaseTransport`` (whose only
state is the ``_extra`` slot): code that checks for an asyncio transport
accepts ours, and ``reactor.aio`` can hand them to asyncio protocols as
``asyncio.Transport``/``DatagramTransport`` subclasses without a wrapper
(two slotted bases can only be combined when one extends the other).

Lifecycle::

    OPEN --close()--> CLOSING --send buffer drained--> CLOSED
    OPEN/CLOSING --abort() | socket error | callback error--> CLOSED
"""

import asyncio
import enum
import logging
import socket
import types
from typing import Any, Optional, Tuple

from .addresses import format_address
from .loop import EVENT_READ
from .policy import DEFAULT_LIMITS, Limits, water_marks
from .protocols import LOST_PROTOCOL, PAUSED_BY_APP, innermost_protocol

logger = logging.getLogger("reactor")


class TransportState(enum.Enum):
    """Where a socket transport is in its life."""

    OPEN = "open"
    CLOSING = "closing"      # close() called: flushing what is queued, not reading
    CLOSED = "closed"        # socket closed; connection_lost delivered or queued


#: Module aliases: ``self._state is _OPEN`` is a global load and an identity
#: test, cheaper than an enum attribute lookup on the hot path.
_OPEN = TransportState.OPEN
_CLOSING = TransportState.CLOSING
_CLOSED = TransportState.CLOSED


class SocketTransport(asyncio.BaseTransport):
    """The base of ``StreamTransport`` and ``DatagramTransport``; see the module docstring.

    ``owner`` (a server, or None) is told ``connection_closed(transport)``
    once the socket is closed and ``callback_failed(transport, exc)`` when a
    protocol callback raised, so it can count both.
    """

    __slots__ = ("_loop", "_sock", "_fd", "_protocol", "_state", "_interest", "_owner",
                 "_high_water", "_low_water", "_writing_paused", "_read_holds", "__weakref__")

    def __init__(self, loop: Any, sock: socket.socket, protocol: Any, owner: Any = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._state = _OPEN
        self._interest = 0            # the events the selector watches for us
        self._owner = owner
        self._high_water = limits.high_water_bytes
        self._low_water = limits.low_water_bytes
        self._writing_paused = False
        self._read_holds = 0          # why reading is held: bits of protocols.PAUSED_BY_APP ...

    @property
    def loop(self) -> Any:
        """The loop this transport runs on (how a protocol reaches it: ``self.transport.loop``)."""
        return self._loop

    def start(self) -> None:
        """Call ``connection_made``, then start reading (unless the protocol paused or closed)."""
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self.callback_failed(exc)
            return
        self._update_interest()

    def is_closing(self) -> bool:
        """Tell whether ``close()``/``abort()`` was called or the connection ended."""
        return self._state is not _OPEN

    def get_protocol(self) -> Any:
        """Return the protocol this transport calls (None once ``connection_lost`` has run:
        the transport lets go of it, so the pair is freed without waiting for the GC)."""
        protocol = self._protocol
        return None if protocol is LOST_PROTOCOL else protocol

    def set_protocol(self, protocol: Any) -> None:
        """Call ``protocol`` from now on (a layer that finished its work hands over)."""
        self._protocol = protocol

    def pause_reading(self) -> None:
        """Stop reading; the kernel buffer fills and TCP slows the peer down."""
        self.hold_reading(PAUSED_BY_APP)

    def resume_reading(self) -> None:
        """Read again after ``pause_reading()`` (unless a layer still holds reading)."""
        self.release_reading(PAUSED_BY_APP)

    def hold_reading(self, reason: int) -> None:
        """Stop reading for ``reason``, one bit of a mask (``protocols.HOLD_FRAMES`` ...).

        For layers and framed protocols; applications use ``pause_reading``.
        Each reason is released on its own, so a rate limit's hold and the
        app's pause never undo each other.
        """
        if not self._read_holds & reason:
            self._read_holds |= reason
            self._update_interest()

    def release_reading(self, reason: int) -> None:
        """Drop the hold for ``reason``; reading resumes when no reason is left."""
        if self._read_holds & reason:
            self._read_holds &= ~reason
            self._update_interest()

    def get_write_buffer_size(self) -> int:
        """Return the number of bytes queued and not yet taken by the kernel."""
        raise NotImplementedError

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        """Return ``(low, high)`` water marks in bytes."""
        return (self._low_water, self._high_water)

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        """Set the water marks (asyncio's defaults: high = 4 x low, low = high / 4).

        Raises ``ValueError`` unless 0 <= low <= high. Takes effect at once:
        a buffer already above the new high mark pauses the protocol.
        """
        self._high_water, self._low_water = water_marks(high, low)
        self._check_high_water()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return ``sockname``, ``socket``, or ``default`` (subclasses know more names)."""
        if name == "sockname":
            try:
                return self._sock.getsockname()
            except OSError:
                return default
        if name == "socket":
            return self._sock
        return default

    # -- the failure policy ------------------------------------------------------

    def run_protected(self, callback: Any, *args: Any) -> None:
        """Run ``callback(*args)``; an exception from it ends this connection (``callback_failed``).

        For work a layer defers to a later pass (TLS delivering what it
        decrypted after ``resume_reading``): outside ``on_readable`` the loop
        would not know which connection failed.
        """
        if self._state is _CLOSED:
            return
        try:
            callback(*args)
        except Exception as exc:
            self.callback_failed(exc)

    def callback_failed(self, exc: Exception) -> None:
        """A protocol callback raised ``exc``: log it with the peer, count it, end the connection.

        The loop calls this when ``on_readable`` / ``on_writable`` raised;
        everything else that calls protocol code routes its failures here.
        """
        protocol = innermost_protocol(self._protocol)
        self._loop.call_exception_handler({
            "message": "%s raised %s: %s; closing the connection %s" % (
                failed_callback_name(exc, protocol), type(exc).__name__, exc,
                self._describe_peer()),
            "exception": exc,
            "transport": self,
            "protocol": protocol,
        })
        if self._owner is not None:
            self._owner.callback_failed(self, exc)
        if self._state is not _CLOSED:
            self._end_after_failure(exc)

    def fd_closed_behind_our_back(self, exc: BaseException) -> None:
        """Our fd was closed by someone else (the loop found out): end without touching it.

        The fd number may already belong to another socket, so neither the
        selector nor the socket may use it again.
        """
        self._interest = 0
        if self._sock.fileno() != -1:
            self._sock.detach()
        if self._state is not _CLOSED:
            self._end_after_failure(exc)

    # -- for subclasses ----------------------------------------------------------------

    def _check_high_water(self) -> None:
        """Bytes were queued: past the high mark, tell the protocol to pause (once)."""
        if not self._writing_paused and self.get_write_buffer_size() > self._high_water:
            self._writing_paused = True
            self._call_flow_control("pause_writing")

    def _check_low_water(self, queued: int) -> None:
        """``queued`` bytes remain after a send: at the low mark, tell the protocol to resume."""
        if self._writing_paused and queued <= self._low_water:
            self._writing_paused = False
            self._call_flow_control("resume_writing")    # may write more, or close us

    def _call_flow_control(self, method: str) -> None:
        """Call ``pause_writing`` / ``resume_writing``; a failure ends this connection.

        Caught here rather than left to the loop: ``pause_writing`` runs
        inside ``write()``, which may be another connection's callback (a
        broadcast), and that connection did nothing wrong.
        """
        try:
            getattr(self._protocol, method)()
        except Exception as exc:
            self.callback_failed(exc)

    def _end_after_failure(self, exc: BaseException) -> None:
        """End the connection because of ``exc`` (streams abort; see DatagramTransport)."""
        raise NotImplementedError

    def _update_interest(self) -> None:
        """Make the selector registration match what the transport wants now."""
        raise NotImplementedError

    def _set_interest(self, events: int) -> None:
        """Watch our fd for ``events`` (0: not at all), with one register/modify/unregister."""
        if events != self._interest:
            if not self._interest:
                self._loop._watch(self._sock, events, self)
            elif events:
                self._loop._rewatch(self._fd, events, self)
            else:
                self._loop._unwatch(self._fd)
            self._interest = events

    def _close_socket(self, exc: Optional[BaseException]) -> None:
        """Close the socket at once and queue ``connection_lost(exc)``; runs once."""
        self._state = _CLOSED
        self._set_interest(0)
        self._sock.close()
        if self._owner is not None:
            self._owner.connection_closed(self)
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Optional[BaseException]) -> None:
        protocol = self._protocol
        try:
            protocol.connection_lost(exc)
        finally:
            self._protocol = LOST_PROTOCOL
            self._owner = None

    def _describe_peer(self) -> str:
        peer = self.get_extra_info("peername")
        return "to %s" % format_address(peer) if peer else "on %s" % format_address(
            self.get_extra_info("sockname"))


def failed_callback_name(exc: BaseException, protocol: Any) -> str:
    """Name the protocol method ``exc`` escaped from (``Echo.data_received``), for the log.

    Walks the traceback for the innermost frame whose ``self`` is the
    protocol; only runs on the failure path.
    """
    name = None
    tb: Optional[types.TracebackType] = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_locals.get("self") is protocol:
            name = frame.f_code.co_name
        tb = tb.tb_next
    owner = type(protocol).__qualname__
    return "%s.%s" % (owner, name) if name else "a callback of %s" % owner


#: The read bit of a transport's interest mask (``selectors.EVENT_READ``).
READ = EVENT_READ
