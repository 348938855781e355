"""Protocol base classes: the callbacks a transport makes into your code.

A protocol is the application's side of a connection. The transport owns
the socket and the buffers; it calls the protocol when something happens,
and the protocol answers by calling transport methods. The contract is
asyncio's, so code and knowledge carry over.

Stream protocols are called in this order (asyncio's grammar)::

    connection_made  data_received*  [eof_received]  connection_lost

``pause_writing`` / ``resume_writing`` may come anywhere between
``connection_made`` and ``connection_lost``, and alternate (never two
pauses in a row). A connection that closes while paused gets no final
``resume_writing``: ``connection_lost`` ends the pause too.

Every callback runs on the loop thread. Re-entrancy, precisely:

* ``pause_writing`` is called *synchronously* from inside ``write()`` (and
  ``set_write_buffer_limits()``) when that call takes the send buffer over
  the high-water mark: the protocol learns it must stop before ``write``
  returns, which is the point. It is the one callback that runs inside a
  call the protocol made.
* ``resume_writing`` runs from the loop, when the socket drained the buffer.
* ``connection_lost`` is never called from inside ``close()``, ``abort()``
  or ``write()``: it is queued with ``call_soon`` and runs in a later step.
* After ``pause_reading()``, no ``data_received`` arrives, not even later in
  the same loop pass (another connection's callback may have paused us).

An exception escaping any callback (``connection_made``, ``data_received``,
``eof_received``, ``pause_writing``, ``resume_writing``, a framed protocol's
``frame_received``) is a bug in that connection's code: the transport logs
it with the peer's address, the server counts it (``stats()``
``callback_errors``), and the connection is aborted, so ``connection_lost``
receives the exception. The loop and every other connection carry on.
(asyncio's ``_fatal_error`` does the same; one listening datagram socket
serves every peer, so there the datagram is dropped and the socket kept.)

Datagram protocols::

    connection_made  (datagram_received | error_received)*  connection_lost

:class:`Layer` is the base of everything that sits *between* a transport
and the application (TLS, the protections' guard): a protocol to the layer
below and a transport to the layer above.
"""

from typing import Any, Optional, Tuple


class BaseProtocol:
    """Callbacks common to stream and datagram protocols."""

    __slots__ = ()

    def connection_made(self, transport: Any) -> None:
        """Take the transport; called once, before any data arrives."""

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Release what the connection held; called exactly once.

        ``exc`` is None on a clean close (ours or the peer's), else the error
        that ended the connection (a reset, a timeout, a framing error).
        """

    def pause_writing(self) -> None:
        """Stop producing: the transport's send buffer rose above its high-water mark."""

    def resume_writing(self) -> None:
        """Produce again: the send buffer drained below its low-water mark."""


class Protocol(BaseProtocol):
    """The application side of a byte stream (TCP, Unix, TLS).

    Subclass it and override what you need; ``self.transport`` is set by the
    default ``connection_made``.
    """

    __slots__ = ("transport", "__dict__")

    def connection_made(self, transport: Any) -> None:
        """Keep the transport as ``self.transport``; call super() when overriding."""
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Consume bytes in arrival order; chunk boundaries carry no meaning."""

    def eof_received(self) -> Optional[bool]:
        """React to the peer's half-close; return True to keep our write side open.

        Returning a false value (the default) closes the transport once its
        send buffer drains.
        """
        return None


class DatagramProtocol(BaseProtocol):
    """The application side of a datagram socket (UDP, Unix datagrams)."""

    __slots__ = ("transport", "__dict__")

    def connection_made(self, transport: Any) -> None:
        """Keep the transport as ``self.transport``; call super() when overriding."""
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Handle one whole datagram from ``addr``."""

    def error_received(self, exc: OSError) -> None:
        """Handle a send or receive error (such as ICMP port unreachable); the socket stays open."""


#: Why reading is held, as bits of one mask: the app's own ``pause_reading``,
#: a framed protocol working through frames it already has, a rate limit
#: waiting for credit, an HTTP connection whose pipelined requests wait for
#: the answer in progress. Each holder releases only its own bit, so one
#: never undoes another (the app resuming does not end rate shaping).
PAUSED_BY_APP = 1
HOLD_FRAMES = 2
HOLD_RATE = 4
HOLD_RESPONSE = 8


class Layer:
    """A two-faced layer: the protocol of the transport below, the transport of the app above.

    ::

        transport --data_received--> layer --data_received--> app
        transport <-----write------- layer <-----write------- app

    Subclasses (``tls.TLSTransport``, ``protect.guard.Guard``) override what
    they change; this base passes the rest straight through, so a layer
    costs a call only where it does work. The two method sets do not
    overlap: ``connection_made`` / ``data_received`` / ``eof_received`` /
    ``connection_lost`` / ``pause_writing`` / ``resume_writing`` face down,
    the transport methods face up.
    """

    __slots__ = ("_loop", "_app", "_transport")

    def __init__(self, loop: Any, app: Any) -> None:
        self._loop = loop
        self._app = app
        self._transport: Any = None

    @property
    def loop(self) -> Any:
        """The loop this connection runs on."""
        return self._loop

    # -- the transport face (to the app) --------------------------------------------

    def writelines(self, chunks: Any) -> None:
        """Write several chunks as one."""
        self.write(b"".join(chunks))          # type: ignore[attr-defined]

    def write_eof(self) -> None:
        """Half-close, if the transport below can."""
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        """Tell whether the transport below can half-close."""
        return bool(self._transport.can_write_eof())

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        self._transport.abort()

    def close_with_error(self, exc: BaseException, flush: bool = True) -> None:
        """Close because of ``exc``: the server counts it, ``connection_lost`` gets it."""
        self._transport.close_with_error(exc, flush)

    def get_write_buffer_size(self) -> int:
        """Return the bytes queued below (ciphertext, under TLS)."""
        return int(self._transport.get_write_buffer_size())

    def get_write_buffer_limits(self) -> Tuple[int, int]:
        """Return the ``(low, high)`` water marks of the transport below."""
        return self._transport.get_write_buffer_limits()  # type: ignore[no-any-return]

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        """Set the water marks of the transport below."""
        self._transport.set_write_buffer_limits(high, low)

    def get_protocol(self) -> Any:
        """Return the protocol above this layer."""
        return self._app

    def set_protocol(self, protocol: Any) -> None:
        """Call ``protocol`` from now on (a layer that finished its work hands over)."""
        self._app = protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return a detail of the transport below (``peername``, ``socket`` ...)."""
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    def run_protected(self, callback: Any, *args: Any) -> None:
        """Run ``callback(*args)`` under the connection's failure policy (see the module doc)."""
        self._transport.run_protected(callback, *args)

    def pause_reading(self) -> None:
        """Stop reading (the app's pause; other holds are separate bits)."""
        self.hold_reading(PAUSED_BY_APP)

    def resume_reading(self) -> None:
        """Read again, unless something else still holds reading."""
        self.release_reading(PAUSED_BY_APP)

    def hold_reading(self, reason: int) -> None:
        """Stop reading for ``reason`` (a bit: ``HOLD_FRAMES``, ``HOLD_RATE``)."""
        self._transport.hold_reading(reason)

    def release_reading(self, reason: int) -> None:
        """Drop the hold for ``reason``; reading resumes once no reason is left."""
        self._transport.release_reading(reason)

    def is_reading(self) -> bool:
        """Tell whether data is being read and delivered."""
        return bool(self._transport.is_reading())

    def peer_has_closed(self) -> bool:
        """Tell, without reading, whether the peer closed or reset (see ``StreamTransport``)."""
        return bool(self._transport.peer_has_closed())

    def wait_writable(self, callback: Any) -> None:
        """Call ``callback()`` once the socket below can take bytes (see ``StreamTransport``)."""
        self._transport.wait_writable(callback)

    def sendfile(self, file: Any, offset: int, count: int) -> int:
        """Send file bytes straight to the socket below (a layer that changes bytes refuses)."""
        return int(self._transport.sendfile(file, offset, count))

    # -- the protocol face (to the transport below) ------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Take the transport below."""
        self._transport = transport


class _LostProtocolType:
    """Stands in for a protocol after ``connection_lost``, so late calls are harmless."""

    def __getattr__(self, name: str) -> Any:
        return _ignore


def _ignore(*args: Any) -> None:
    return None


#: What a transport calls once its protocol has been told ``connection_lost``.
LOST_PROTOCOL = _LostProtocolType()


def innermost_protocol(protocol: Any) -> Any:
    """Return the application protocol under any layers (TLS, guard) above ``protocol``."""
    while isinstance(protocol, Layer):
        protocol = protocol.get_protocol()
    return protocol
