"""WebSocketProtocol: whole messages over an upgraded connection, for applications.

The frame codec (``frames.py``) joined to a transport, the way
``FramedProtocol`` joins any framer, so a WebSocket inherits the framing
layer's protections (a bounded number of events per pass, the message-rate
gate, the partial-frame deadline, the input budget)::

    data_received -> FrameParser.feed -> [Message | Ping | Pong | Close]
      Message -> message_received(data, is_text)        (str for text, bytes for binary)
      Ping    -> a Pong at once;  Pong -> pong_received(payload)
      Close   -> our Close back (same code), then the TCP close
    send_text / send_binary / send -> one frame (compressed when negotiated), one write

The callback grammar, as asyncio's: ``connection_made  message_received*
[pong_received*]  connection_lost`` (exactly once). ``connection_lost(exc)``
gets None after a completed close handshake, else the error (a
``WebSocketError`` with the code we closed with, or the transport's); the
code is ``close_code`` either way (1006 when no Close frame came).

The close handshake (RFC 6455 7.1.2): whoever closes first sends Close and
waits up to ``close_timeout`` for the other's Close; then the TCP
connection is closed (by the server first, as the RFC asks). A violation
(``WebSocketError``) is answered with a Close carrying its code (1002, 1007,
1009) and the connection closes, the reason logged by the server.

Keep-alive: every ``ping_interval`` seconds without a message from the peer
we send a Ping; a peer that answers nothing within ``ping_timeout`` more is
closed with 1011 (the ``websockets`` library's choice of code).
"""

from typing import Any, Iterable, Optional

from ..errors import FramingError
from ..framed import FramedProtocol
from .frames import (CloseCode, Close, FrameParser, Message, Ping, Pong, WebSocketError,
                     encode_close, encode_message, encode_ping, encode_pong)

DEFAULT_PING_INTERVAL = 20.0        #: seconds of silence from the peer before we ping
DEFAULT_PING_TIMEOUT = 20.0         #: seconds we then wait for any answer
DEFAULT_CLOSE_TIMEOUT = 5.0         #: seconds we wait for the peer's Close after ours


class ConnectionFrameParser(FrameParser):
    """A FrameParser made for one connection by its handshake (its deflate is that
    connection's), so the framing layer's ``clone()`` keeps it as it is."""

    __slots__ = ()

    def clone(self) -> "ConnectionFrameParser":
        """Return this parser: it was made for this connection."""
        return self


class WebSocketProtocol(FramedProtocol):
    """One WebSocket connection; subclass it and override the callbacks you need.

    Per connection: ``transport``, ``subprotocol`` (agreed in the
    handshake, or None), ``request`` (the upgrade request, on a server),
    ``close_code`` and ``close_reason`` once closing. Class attributes set
    the limits: ``max_message_bytes``, ``ping_interval``, ``ping_timeout``
    (None turns the keep-alive off) and ``close_timeout``.
    """

    max_message_bytes = 1024 * 1024
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT
    close_timeout = DEFAULT_CLOSE_TIMEOUT
    is_client = False                  # a client masks what it sends, a server must not
    subprotocol: Optional[str] = None
    request: Any = None
    deflate: Any = None
    _close_sent = False
    _close_received: Optional[Close] = None
    _keepalive: Any = None
    _awaiting_pong = False
    _heard = False

    # -- the application's callbacks ----------------------------------------------

    def message_received(self, data: Any, is_text: bool) -> None:
        """Handle one whole message: ``str`` when ``is_text``, else ``bytes``."""

    def pong_received(self, payload: bytes) -> None:
        """Handle a Pong (the answer to ``ping()``); the keep-alive needs no help."""

    # -- sending --------------------------------------------------------------------

    def send(self, data: Any) -> None:
        """Send one message: a ``str`` as text, bytes-like as binary (dropped once closing)."""
        if self._close_sent or self.transport.is_closing():
            return
        self.transport.write(encode_message(data, mask=self.is_client, deflate=self.deflate))
        self.frames_out += 1

    def send_text(self, text: str) -> None:
        """Send a text message."""
        if not isinstance(text, str):
            raise TypeError("send_text takes a str, got %s" % type(text).__name__)
        self.send(text)

    def send_binary(self, data: Any) -> None:
        """Send a binary message."""
        if isinstance(data, str):
            raise TypeError("send_binary takes bytes, got str (use send_text)")
        self.send(bytes(data))

    def ping(self, payload: bytes = b"") -> None:
        """Send a Ping (at most 125 bytes); the peer answers with a Pong."""
        if not self._close_sent and not self.transport.is_closing():
            self.transport.write(encode_ping(payload, mask=self.is_client))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Start the close handshake: send Close, then wait for the peer's (``close_timeout``)."""
        if self._close_sent or self.transport.is_closing():
            return
        self._close_sent = True
        self.close_code, self.close_reason = code, reason
        self.transport.write(encode_close(code, reason, mask=self.is_client))
        if self._close_received is not None:
            self._end()
        else:
            self.transport.loop.call_later(self.close_timeout, self._close_timed_out)

    # -- the framing layer's calls ------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Take the transport (after the handshake); start the keep-alive. Call super()."""
        super().connection_made(transport)
        self.frames_per_pass = max(self.frames_per_pass, 64)
        if self.ping_interval:
            self._keepalive = transport.loop.call_later(self.ping_interval, self._keepalive_due)

    def frames_received(self, events: Any) -> None:
        """Dispatch the parser's events (``Message``, ``Ping``, ``Pong``, ``Close``)."""
        # Hot path: one call per batch of messages.
        self._heard = True
        transport = self.transport
        for event in events:
            kind = type(event)
            if kind is Message:
                if self._close_received is None:
                    self.message_received(event.data, event.is_text)
            elif kind is Ping:
                if not self._close_sent and not transport.is_closing():
                    transport.write(encode_pong(event.payload, mask=self.is_client))
            elif kind is Pong:
                self._awaiting_pong = False
                self.pong_received(event.payload)
            elif kind is Close:
                self._peer_closed(event)
            if transport.is_closing():
                return

    def framing_error(self, exc: FramingError) -> None:
        """A violation: send Close with its code before the connection closes."""
        code = exc.code if isinstance(exc, WebSocketError) else CloseCode.PROTOCOL_ERROR
        self.close_code, self.close_reason = code, str(exc)[:100]
        if not self._close_sent:
            self._close_sent = True
            self.transport.write(encode_close(code, self.close_reason, mask=self.is_client))

    def shutdown_requested(self) -> None:
        """The server is stopping: say goodbye with 1001 (going away)."""
        self.close(CloseCode.GOING_AWAY, "the server is shutting down")

    @property
    def closed_cleanly(self) -> bool:
        """Tell whether both Close frames were exchanged."""
        return self._close_sent and self._close_received is not None

    # -- internals -------------------------------------------------------------------------

    close_code: int = CloseCode.ABNORMAL     # until a Close is sent or received
    close_reason = ""

    def _peer_closed(self, event: Close) -> None:
        self._close_received = event
        if not self._close_sent:             # answer with the same code (RFC 6455 5.5.1)
            code = event.code if event.code is not None else CloseCode.NORMAL
            self.close_code, self.close_reason = code, event.reason
            self._close_sent = True
            self.transport.write(encode_close(event.code, "", mask=self.is_client))
        self._end()

    def _end(self) -> None:
        """Both Close frames are out: the server closes TCP now; a client waits for it."""
        if self._keepalive is not None:
            self._keepalive.cancel()
        if not self.is_client:
            self.transport.close()
        else:
            self.transport.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if not self.transport.is_closing():
            self.transport.abort()

    def _keepalive_due(self) -> None:
        transport = self.transport
        if transport.is_closing() or self._close_sent:
            return
        if self._awaiting_pong and not self._heard:
            exc = WebSocketError(CloseCode.INTERNAL_ERROR, "no answer to a ping within %.3g s"
                                 % (self.ping_timeout or self.ping_interval))
            self.framing_error(exc)                  # our Close, with 1011
            transport.close_with_error(exc)
            return
        if not self._heard:
            self._awaiting_pong = True
            transport.write(encode_ping(b"", mask=self.is_client))
        self._heard = False
        delay = self.ping_timeout if self._awaiting_pong else self.ping_interval
        self._keepalive.reset(delay or self.ping_interval)


def broadcast(connections: Iterable[WebSocketProtocol], data: Any, *,
              max_buffered_bytes: Optional[int] = None) -> int:
    """Send one message to many server-side connections, encoded once; return how many got it.

    N connections cost one encode and N writes: the frame goes out unmasked
    and uncompressed (RFC 7692 lets a sender leave any message
    uncompressed, and one compressed frame cannot serve N compressors'
    contexts). A connection whose send buffer already holds more than
    ``max_buffered_bytes`` is skipped for this message, as a live feed drops
    for a reader that is behind; one that passes its transport's hard cap
    (``Limits.send_buffer_hard_cap_bytes``) is cut by that write, as any
    slow consumer is.
    """
    frame = encode_message(data, mask=False)
    delivered = 0
    for connection in connections:
        transport = connection.transport
        if connection._close_sent or transport.is_closing():
            continue
        if max_buffered_bytes is not None and \
                transport.get_write_buffer_size() > max_buffered_bytes:
            continue
        transport.write(frame)
        connection.frames_out += 1
        delivered += 1
    return delivered
