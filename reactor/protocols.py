"""Protocol base classes: the callbacks a transport makes into your code.

A protocol is the application's side of a connection. The transport owns
the socket and the buffers; it calls the protocol when something happens,
and the protocol answers by calling transport methods. The contract is
asyncio's, so code and knowledge carry over.

Stream protocols are called in this order (asyncio's grammar)::

    connection_made  data_received*  [eof_received]  connection_lost

``pause_writing`` / ``resume_writing`` may come anywhere between
``connection_made`` and ``connection_lost``, always in pairs. Every
callback runs on the loop thread. A callback may call back into the
transport (``write``, ``close``...), but the transport never calls the
protocol from inside one of the protocol's own calls to it: notifications
that a method would cause (``connection_lost`` after ``close()``) are
delivered later, through ``call_soon``.

Datagram protocols::

    connection_made  (datagram_received | error_received)*  connection_lost
"""

from typing import Any, Optional


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
