"""The client's half of the upgrade: an HTTP GET that becomes a WebSocket.

::

    connect_websocket(loop, "ws://127.0.0.1:8080/chat", Chat, on_error=failed)

Nothing new is spoken here: the opening handshake is an HTTP/1.1 request,
so it rides on the HTTP client (``http/client.py``: the connect, TLS, the
deadline, the response parser) and leaves it through that client's upgrade
seam. This module adds only the WebSocket's checks and the hand-over::

    ws://host/path  ->  http_request("GET", "http://host/path", Upgrade: websocket ...)
      a 101  -> on_upgrade(response, transport, rest)
                  check_server_response: the Accept key, the subprotocol, the extensions
                  deflate.accept_client: the permessage-deflate answer, or None
                  protocol = factory(); is_client, subprotocol, deflate, framer
                  transport.set_protocol(protocol); protocol.connection_made(transport)
                  protocol.data_received(rest)          (frames that came with the 101)
      any other status -> on_error(WebSocketHandshakeError: status, headers, body)
      no response      -> on_error(the HTTP client's error: ConnectRefusedError,
                          ssl.SSLError, HTTPTimeoutError, IncompleteResponseError ...)

Exactly one of two things happens, never inside ``connect_websocket``: the
protocol gets ``connection_made`` (and later ``connection_lost``), or
``on_error(exc)`` runs once (without ``on_error``, the failure is logged).
``cancel()`` on the returned handle abandons a handshake still under way;
after ``connection_made``, close the protocol instead.

``timeout`` bounds the connect, the TLS handshake and the wait for the 101
together (the HTTP client's deadline); it ends there. The open connection's
liveness is the protocol's business: its keep-alive pings (``ping_interval``).

Discussion: ride on the HTTP client, or write the request by hand. A
hand-written GET is twenty lines, but reading the answer is not: a proxy or
a server may answer 401 with a chunked body, or 301 split over three reads,
and the 101 may arrive glued to the server's first frames. The HTTP
client's response parser already handles all of it and hands over the
bytes past the head (``rest``), so we reuse it and its errors. The cost:
the request goes through the keep-alive pool, so a ``ws://`` URL may reuse
an idle HTTP connection to the same host (harmless: an upgrade may follow
any request on a connection, RFC 9110 7.8).
"""

import logging
from typing import Any, Callable, Iterable, Optional
from urllib.parse import urlsplit

from ..http.client import ClientResponse, http_request
from ..http.messages import Headers, HeadersLike
from .deflate import accept_client, client_offer
from .handshake import HandshakeError, check_server_response, client_request_headers
from .protocol import ConnectionFrameParser, WebSocketProtocol

__all__ = ["connect_websocket", "WebSocketConnector", "WebSocketHandshakeError"]

logger = logging.getLogger("reactor")

DEFAULT_TIMEOUT_SECONDS = 30.0                 #: connect, TLS and the wait for the 101
MAX_REFUSAL_BODY_BYTES = 1024 * 1024           #: of a non-101 answer's body, kept for the error

_SCHEMES = {"ws": "http", "wss": "https"}
_HANDSHAKE_FIELDS = frozenset(("upgrade", "connection", "sec-websocket-key",
                               "sec-websocket-version", "sec-websocket-protocol",
                               "sec-websocket-extensions"))


class WebSocketHandshakeError(HandshakeError):
    """The server did not accept the upgrade.

    ``status`` is the server's answer (101 when its 101 was wrong: a bad
    Accept key, a subprotocol or extension we did not offer); ``headers``
    are the response's fields, ``body`` its body (bytes), ``url`` ours.
    """

    def __init__(self, url: str, status: int, message: str, headers: Iterable[Any] = (),
                 body: bytes = b"") -> None:
        super().__init__(status, message, headers)
        self.url, self.body = url, body


def connect_websocket(loop: Any, url: str, factory: Callable[[], WebSocketProtocol], *,
                      subprotocols: Iterable[str] = (), headers: HeadersLike = None,
                      compression: bool = True, ssl: Any = None,
                      timeout: Optional[float] = DEFAULT_TIMEOUT_SECONDS,
                      max_message_bytes: Optional[int] = None,
                      on_error: Optional[Callable[[BaseException], Any]] = None
                      ) -> "WebSocketConnector":
    """Open a WebSocket to ``url`` without blocking; return the handle (``cancel()``).

    ``url``: ``ws://host[:port]/path?query`` or ``wss://...`` (TLS with
    ``ssl``, a client ``SSLContext``; default ``ssl.create_default_context()``).
    ``factory()`` makes the ``WebSocketProtocol`` once the server said 101.
    ``subprotocols`` are offered in our order of preference (the agreed one
    is ``protocol.subprotocol``); ``headers`` are added to the request
    (Origin, Authorization, Cookie ...; a Host given here replaces ours);
    ``compression`` offers permessage-deflate. ``timeout`` (seconds, None:
    none) bounds the handshake. ``max_message_bytes`` overrides the
    protocol class's limit. ``on_error(exc)``: see the module docstring.

    Raises ``ValueError`` for a URL that is not ``ws://`` or ``wss://``
    (or has a fragment or credentials), a subprotocol that is not a
    token, or a header the handshake sets itself.
    """
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme.lower() not in _SCHEMES or not parts.hostname:
        raise ValueError("connect_websocket: url must be ws://host[:port]/path or "
                         "wss://..., got %r" % (url,))
    if parts.fragment or "#" in url:
        raise ValueError("connect_websocket: a WebSocket url has no fragment "
                         "(RFC 6455 3): %r" % url)
    if isinstance(subprotocols, str):
        raise ValueError("connect_websocket: subprotocols is a list of names, like "
                         "[%r], not a string" % subprotocols)
    offered = tuple(subprotocols)
    if max_message_bytes is not None and not (type(max_message_bytes) is int
                                              and max_message_bytes > 0):
        raise ValueError("connect_websocket: max_message_bytes must be a positive int")
    extra = list(Headers(headers))
    clashes = sorted({str(name).lower() for name, _ in extra} & _HANDSHAKE_FIELDS)
    if clashes:
        raise ValueError("connect_websocket: the handshake sets %s itself; use "
                         "subprotocols= or compression=" % ", ".join(clashes))
    offer = client_offer() if compression else None
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    key, fields = client_request_headers(parts.netloc, target, offered, offer)
    if any(str(name).lower() == "host" for name, _ in extra):
        fields = [field for field in fields if field[0] != "Host"]
    connector = WebSocketConnector(url, factory, key, offered, offer,
                                   max_message_bytes, on_error)
    http_url = _SCHEMES[parts.scheme.lower()] + url[len(parts.scheme):]
    connector._request = http_request(
        loop, "GET", http_url, headers=fields + extra, timeout=timeout, ssl=ssl,
        max_body_bytes=MAX_REFUSAL_BODY_BYTES, on_response=connector._refused,
        on_upgrade=connector._upgraded)
    return connector


class WebSocketConnector:
    """One opening handshake under way, as ``connect_websocket`` returns it.

    ``protocol`` is None until the 101 has made it; ``done`` tells whether
    the handshake ended (opened, failed or cancelled).
    """

    __slots__ = ("url", "protocol", "done", "_factory", "_key", "_subprotocols", "_offer",
                 "_max_message_bytes", "_on_error", "_request")

    def __init__(self, url: str, factory: Callable[[], WebSocketProtocol], key: str,
                 subprotocols: tuple, offer: Optional[str], max_message_bytes: Optional[int],
                 on_error: Optional[Callable[[BaseException], Any]]) -> None:
        """Take ``connect_websocket``'s checked arguments; call that instead."""
        self.url, self._factory, self._key, self._subprotocols = url, factory, key, subprotocols
        self._offer, self._max_message_bytes, self._on_error = offer, max_message_bytes, on_error
        self.protocol: Optional[WebSocketProtocol] = None
        self.done = False
        self._request: Any = None

    def cancel(self) -> None:
        """Abandon the handshake (its connection is closed); no callback runs. Idempotent."""
        if not self.done:
            self.done = True
            self._request.cancel()

    def __repr__(self) -> str:
        state = "open" if self.protocol is not None else "ended" if self.done else "connecting"
        return "<WebSocketConnector %s %s>" % (self.url, state)

    # -- the HTTP client's callbacks --------------------------------------------------

    def _refused(self, response: Optional[ClientResponse], error: Optional[BaseException]
                 ) -> None:
        """No 101: the server answered otherwise, or no answer came (``error``)."""
        if response is not None:
            error = WebSocketHandshakeError(
                self.url, response.status, "connect_websocket %s: the server answered %d %s, "
                "not 101 Switching Protocols: %r" % (self.url, response.status,
                                                     response.reason, response.body[:200]),
                response.headers, response.body)
        self._fail(error)

    def _upgraded(self, response: ClientResponse, transport: Any, rest: bytes) -> None:
        """A 101: check it, then hand the connection to a new protocol (the grammar above)."""
        try:
            subprotocol, extensions = check_server_response(
                response.status, response.headers, self._key, self._subprotocols,
                offered_extensions=self._offer)
            deflate = accept_client(extensions, self._offer) if extensions else None
        except HandshakeError as exc:
            transport.abort()
            error = WebSocketHandshakeError(
                self.url, exc.status, "connect_websocket %s: the server's 101 is not a "
                "valid WebSocket answer: %s" % (self.url, exc), response.headers, response.body)
            error.__cause__ = exc
            self._fail(error)
            return
        try:
            protocol = self._factory()
        except Exception as exc:                    # the app's factory: report, don't leak
            transport.abort()
            self._fail(exc)
            return
        self.done, self.protocol = True, protocol
        protocol.is_client, protocol.subprotocol, protocol.deflate = True, subprotocol, deflate
        protocol.framer = ConnectionFrameParser(
            False, self._max_message_bytes or protocol.max_message_bytes, deflate)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if rest and not transport.is_closing():
            protocol.data_received(rest)

    def _fail(self, error: BaseException) -> None:
        """End with ``error``: ``on_error`` once, or the log."""
        if self.done:
            return
        self.done = True
        if self._on_error is not None:
            self._on_error(error)
        else:
            logger.error("connect_websocket %s failed: %s", self.url, error)
