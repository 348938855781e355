"""A small HTTP/1.1 client: one request, one callback; connections kept alive per host.

::

    http_request(loop, "GET", "http://127.0.0.1:8080/items?id=3", on_response=done)

    def done(response, error):          # exactly one of them is None
        ...                             # response.status, .headers, .body

Exactly one callback runs, once, on the loop and never inside
``http_request`` (the asyncio ``Protocol`` style of grammar)::

    on_response(response, None)                a final response (any status but 101)
  | on_response(None, error)                   no response: see the errors below
  | on_upgrade(response, transport, rest)      a 101, when ``on_upgrade`` was given

One request's way::

    pool: an idle connection to (scheme, host, port, TLS)? --yes--+
          no: connect_tcp (and TLS, server_hostname = the URL host) +--> write the request
    ResponseParser.feed ... EndOfMessage --> keep-alive? idle in the pool : close --> on_response
    the deadline (call_later, one per request) --> abort --> on_response(None, HTTPTimeoutError)

Errors (ours name the method and URL in their message): a failed connect
is reactor's own (:class:`~reactor.errors.ConnectRefusedError`,
``ConnectTimeoutError``, other ``ConnectError``; an ``ssl.SSLError`` or
``TLSHandshakeTimeoutError`` for a failed TLS handshake);
:class:`HTTPTimeoutError` (no complete response before ``timeout``);
:class:`HTTPProtocolError` (the server broke HTTP/1.1;
:class:`ResponseTooLargeError` past ``max_body_bytes``);
:class:`IncompleteResponseError` (the connection closed before the
response ended; over TLS, an until-close body must end with the server's
close_notify, since a bare TCP close may be a truncation);
:class:`PoolClosedError`. A bad URL, method or header raises ``ValueError``
at once: nothing is sent.

Keep-alive: connections are reused through a :class:`~reactor.http.pool.ConnectionPool`
(``pool.py``: one per loop unless ``pool=`` is given). A request that finds
its reused connection closed before any response byte (the server's idle
timeout won the race) is sent once more on a fresh connection, if its
method is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE); a POST is
not, since it may have run.

Discussion: the upgrade seam (the WebSocket client's). Give ``on_upgrade``
and an ``Upgrade`` header (``Connection: Upgrade`` is added). A 101 hands
over: the connection leaves the pool's care for good, and
``on_upgrade(response, transport, rest)`` gets the top of the connection's
stack (TLS included) and ``rest``, the bytes that followed the 101. Inside
that call, ``transport.set_protocol(p)`` and feed ``rest`` to ``p``; later
bytes then reach ``p`` directly (``p`` never gets ``connection_made``). Any
other status goes to ``on_response``, as for a plain request.
"""

import enum
import json
from typing import Any, Callable, List, Optional, Tuple
from urllib.parse import urlsplit

from ..errors import NotCallableError, ReactorError
from ..tls import DEFAULT_HANDSHAKE_TIMEOUT
from .messages import _CONTROL, _TOKEN_ONLY, Headers, HeadersLike
from .pool import ClientConnection, ConnectionPool, default_pool
from .response_parser import Data, HTTPError, ResponseHead, ResponseParser

__all__ = ["http_request", "ClientRequest", "ClientResponse", "ConnectionPool", "default_pool",
           "HTTPClientError", "HTTPTimeoutError", "HTTPProtocolError", "ResponseTooLargeError",
           "IncompleteResponseError", "PoolClosedError"]

DEFAULT_TIMEOUT_SECONDS = 30.0                  #: connect, send and the whole response
DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024   #: of one response body, after chunked decoding
USER_AGENT = "reactor"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_IDEMPOTENT = frozenset(("GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"))
_NO_BODY_METHODS = frozenset(("GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"))
_FRAMED_BY_US = frozenset(("content-length", "transfer-encoding"))

ResponseCallback = Callable[[Optional["ClientResponse"], Optional[BaseException]], Any]


class HTTPClientError(ReactorError):
    """Base class of the errors an HTTP request can end with (besides connect errors)."""


class HTTPTimeoutError(HTTPClientError, TimeoutError):
    """No complete response came within the request's ``timeout``."""


class HTTPProtocolError(HTTPClientError, ConnectionError):
    """The server's response broke HTTP/1.1; ``__cause__`` is the parser's ``HTTPError``."""


class ResponseTooLargeError(HTTPProtocolError):
    """The response body passed ``max_body_bytes``: raise it, or fetch less."""


class IncompleteResponseError(HTTPClientError, ConnectionError):
    """The connection closed (or was reset) before the response ended."""


class PoolClosedError(HTTPClientError, ConnectionError):
    """The request's ``ConnectionPool`` was closed before the response came."""


def http_request(loop: Any, method: str, url: str, *, headers: HeadersLike = None,
                 body: bytes = b"", on_response: ResponseCallback,
                 timeout: Optional[float] = DEFAULT_TIMEOUT_SECONDS, ssl: Any = None,
                 pool: Optional[ConnectionPool] = None,
                 max_body_bytes: Optional[int] = DEFAULT_MAX_RESPONSE_BYTES,
                 on_upgrade: Optional[Callable[..., Any]] = None) -> "ClientRequest":
    """Send one request; ``on_response(response, error)`` runs once when it ends.

    ``url``: ``http://host[:port]/path?query`` or ``https://...`` (a fragment
    is dropped). The request carries Host, User-Agent ``reactor``,
    ``headers`` (a dict, ``(name, value)`` pairs or ``Headers``), and
    Content-Length unless ``body`` is empty and the method takes none (GET,
    HEAD ...). ``timeout`` (seconds, None: none) bounds the connect, the TLS
    handshake and the whole response together. ``ssl``: the context for
    ``https`` (default ``ssl.create_default_context()``, made once per pool);
    ignored for ``http``. ``max_body_bytes`` (None: no limit). ``on_upgrade``:
    see the module docstring. Returns the :class:`ClientRequest` (``cancel()``).

    Raises ``ValueError`` for a bad URL, method, header or limit (including
    Content-Length or Transfer-Encoding, which the client sets, and CR/LF in
    a value), ``NotCallableError`` for a callback that is not callable.
    """
    if not callable(on_response) or not (on_upgrade is None or callable(on_upgrade)):
        raise NotCallableError("http_request: on_response and on_upgrade must be callable")
    if not isinstance(method, str) or _TOKEN_ONLY.fullmatch(method) is None:
        raise ValueError("http_request: method must be a token such as 'GET', got %r" % (method,))
    if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout < 1e9):
        raise ValueError("http_request: timeout must be a positive number of seconds or None")
    if max_body_bytes is not None and not (type(max_body_bytes) is int and max_body_bytes > 0):
        raise ValueError("http_request: max_body_bytes must be a positive int or None")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("http_request: body must be bytes, got %s" % type(body).__name__)
    scheme, host, port, target, authority = _split_url(url)
    payload = _format_request(method, target, authority, headers, bytes(body),
                              on_upgrade is not None)
    pool = default_pool(loop) if pool is None else pool
    if pool.loop is not loop:
        raise ValueError("http_request: the pool belongs to another loop")
    tls = pool.tls_context(ssl) if scheme == "https" else None
    request = ClientRequest(loop, pool, method, url, (scheme, host, port, tls), payload,
                            on_response, on_upgrade, timeout, max_body_bytes)
    loop.call_soon(request._start)
    return request


class ClientResponse:
    """A whole response: ``status``, ``reason``, ``version`` (``HTTP/1.1``), ``headers``
    (:class:`~reactor.http.messages.Headers`), ``body`` (bytes) and the request's ``url``."""

    __slots__ = ("status", "reason", "version", "headers", "body", "url")

    def __init__(self, head: ResponseHead, body: bytes, url: str) -> None:
        self.status, self.reason, self.version = head.status, head.reason, "HTTP/" + head.version
        self.headers, self.body, self.url = Headers.from_parser(head.headers), body, url

    def text(self, encoding: str = "utf-8") -> str:
        """Return the body decoded (``UnicodeDecodeError`` if it is not ``encoding``)."""
        return self.body.decode(encoding)

    def json(self) -> Any:
        """Return the body parsed as JSON (``ValueError`` if it is not)."""
        return json.loads(self.body)

    def __repr__(self) -> str:
        return "<ClientResponse %d %s, %d bytes>" % (self.status, self.reason, len(self.body))


class _State(enum.Enum):
    CONNECTING = "connecting"   # waiting for a connection (TCP, then TLS)
    SENT = "sent"               # the request is written; no response byte yet
    RECEIVING = "receiving"     # response bytes are arriving
    DONE = "done"               # a callback ran, or cancel() was called


class ClientRequest:
    """One request in flight, as ``http_request`` returns it: ``cancel()`` it, or wait."""

    __slots__ = ("method", "url", "_loop", "_pool", "_key", "_payload", "_on_response",
                 "_on_upgrade", "_timeout", "_max_body_bytes", "_timer", "_state",
                 "_connector", "_connection", "_parser", "_head", "_body", "_reused",
                 "_retried")

    def __init__(self, loop: Any, pool: ConnectionPool, method: str, url: str,
                 key: Tuple[Any, ...], payload: bytes, on_response: ResponseCallback,
                 on_upgrade: Any, timeout: Optional[float],
                 max_body_bytes: Optional[int]) -> None:
        """Take :func:`http_request`'s checked arguments; call that instead."""
        self.method, self.url, self._loop, self._pool, self._key = method, url, loop, pool, key
        self._payload, self._on_response, self._on_upgrade = payload, on_response, on_upgrade
        self._timeout, self._max_body_bytes = timeout, max_body_bytes
        self._timer = None if timeout is None else loop.call_later(timeout, self._timed_out)
        self._state = _State.CONNECTING
        self._connector: Any = None
        self._connection: Optional[ClientConnection] = None
        self._parser: Optional[ResponseParser] = None
        self._head: Optional[ResponseHead] = None
        self._body: List[bytes] = []
        self._reused = self._retried = False
        pool._requests.add(self)

    @property
    def done(self) -> bool:
        """Tell whether a callback ran or ``cancel()`` was called."""
        return self._state is _State.DONE

    def cancel(self) -> None:
        """Abandon the request (its connection is closed); no callback runs. Idempotent."""
        self._fail(None)

    def __repr__(self) -> str:
        return "<ClientRequest %s %s %s>" % (self.method, self.url, self._state.value)

    # -- getting a connection --------------------------------------------------------

    def _start(self) -> None:
        if self._state is not _State.CONNECTING:
            return
        if self._pool.closed:
            self._fail(PoolClosedError("%s %s: the connection pool is closed"
                                       % (self.method, self.url)))
            return
        connection = self._pool._take(self._key)
        if connection is not None:
            self._send(connection)
        else:
            self._connect()

    def _connect(self) -> None:
        scheme, host, port, tls = self._key
        timeout = handshake = None
        if self._timer is not None:
            timeout = handshake = max(self._timer.when() - self._loop.time(), 0.001)
        connector = self._loop.connect_tcp(
            lambda: ClientConnection(self._pool, self._key, self), host, port, timeout=timeout,
            ssl=tls, server_hostname=host if tls else None, on_error=self._connect_failed,
            ssl_handshake_timeout=handshake or DEFAULT_HANDSHAKE_TIMEOUT)
        if self._state is _State.CONNECTING and self._connection is None:
            self._connector = connector               # not already failed or connected

    def _connect_failed(self, exc: BaseException) -> None:
        if self._state is _State.CONNECTING:
            self._connector = None
            self._fail(exc)

    def _connected(self, connection: ClientConnection) -> None:
        if self._state is not _State.CONNECTING:        # timed out or cancelled meanwhile
            connection.request = None
            connection.close()
            return
        self._connector = None
        self._send(connection)

    def _send(self, connection: ClientConnection) -> None:
        self._connection, connection.request = connection, self
        self._reused, connection.requests = connection.requests > 0, connection.requests + 1
        self._parser = ResponseParser(self.method, max_body_bytes=self._max_body_bytes)
        self._state = _State.SENT
        connection.transport.write(self._payload)

    # -- the response --------------------------------------------------------------

    def _data_received(self, data: bytes) -> None:
        # Hot path: once per chunk read: one feed, a type test per event.
        self._state = _State.RECEIVING
        try:
            events = self._parser.feed(data)
        except HTTPError as exc:
            self._fail(self._broken(exc))
            return
        self._events(events)

    def _events(self, events: List[Any]) -> None:
        for event in events:
            if type(event) is Data:
                self._body.append(event.data)
            elif type(event) is ResponseHead:
                self._head = event
            else:
                self._finish()

    def _finish(self) -> None:
        """The response ended: hand the connection on (pool, close or upgrade), then call back."""
        head, connection, parser = self._head, self._connection, self._parser
        response = ClientResponse(head, b"".join(self._body), self.url)
        if head.status == 101 and self._on_upgrade is None:
            self._fail(HTTPProtocolError("%s %s: 101 Switching Protocols to a request that "
                                         "asked for no upgrade" % (self.method, self.url)))
            return
        self._end()
        connection.request = None
        if head.status == 101:
            connection.upgraded = True
            self._on_upgrade(response, connection.transport, parser.take_rest())
            return
        if head.keep_alive and not parser.buffered:
            self._pool._release(connection)
        else:
            connection.close()
        self._on_response(response, None)

    def _connection_ended(self, exc: Optional[BaseException]) -> None:
        """The server closed (``exc`` None) or the connection broke while we were attached."""
        if self._state is _State.DONE:
            return
        if self._state is _State.SENT and self._reused and not self._retried \
                and self.method in _IDEMPOTENT:
            self._retried, self._connection, self._state = True, None, _State.CONNECTING
            self._connect()
            return
        if exc is None:
            try:
                self._events(self._parser.feed_eof())
                return
            except HTTPError as error:
                exc = error
        if self._state is _State.SENT:
            why = "the server closed the connection without answering%s" % (
                " (a reused one; %s is not retried: it may have run)" % self.method
                if self._reused and self.method not in _IDEMPOTENT else "")
        else:
            why = "the connection ended before the response did: %s" % exc
        error = IncompleteResponseError("%s %s: %s" % (self.method, self.url, why))
        error.__cause__ = exc
        self._fail(error)

    def _pool_closed(self) -> None:
        self._fail(PoolClosedError("%s %s: the connection pool was closed"
                                   % (self.method, self.url)))

    def _timed_out(self) -> None:
        self._timer = None
        where = {_State.CONNECTING: "connecting", _State.SENT: "waiting for the response",
                 _State.RECEIVING: "reading the response"}.get(self._state, "")
        self._fail(HTTPTimeoutError("%s %s: no complete response within %.3g s (timed out "
                                    "%s)" % (self.method, self.url, self._timeout, where)))

    def _broken(self, exc: HTTPError) -> HTTPProtocolError:
        if exc.status == 413:
            error: HTTPProtocolError = ResponseTooLargeError(
                "%s %s: the response body passed this request's max_body_bytes (%d): %s"
                % (self.method, self.url, self._max_body_bytes, exc))
        else:
            error = HTTPProtocolError("%s %s: the server's response broke HTTP/1.1: %s"
                                      % (self.method, self.url, exc))
        error.__cause__ = exc
        return error

    # -- the single fatal path -----------------------------------------------------

    def _end(self) -> None:
        """Stop the deadline and leave the pool's list; the state is DONE from now on."""
        self._state = _State.DONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pool._requests.discard(self)
        self._connection = None

    def _fail(self, error: Optional[BaseException]) -> None:
        """End with ``error`` (None: cancelled, no callback); close what we hold. Runs once."""
        if self._state is _State.DONE:
            return
        connection, connector = self._connection, self._connector
        self._connector = None
        self._end()
        if connection is not None:
            connection.request = None
            connection.transport.abort()
        if connector is not None:
            connector.cancel()
            if connector.transport is not None:   # connected, TLS still shaking hands
                connector.transport.abort()
        if error is not None:
            self._on_response(None, error)


def _split_url(url: str) -> Tuple[str, str, int, str, str]:
    """Return (scheme, host, port, target, Host field value) of ``url``, or raise ValueError."""
    if not isinstance(url, str) or _CONTROL.search(url) or " " in url or not url.isascii():
        raise ValueError("http_request: url must be an ASCII str without spaces or control "
                         "characters (percent-encode them), got %r" % (url,))
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError("http_request: url must be http://host[:port]/... or https://..., "
                         "got %r" % url)
    if "@" in parts.netloc:
        raise ValueError("http_request: credentials in the url are not supported; send an "
                         "Authorization header: %r" % url)
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("http_request: url %r: %s" % (url, exc)) from None
    default = _DEFAULT_PORTS[scheme]
    port = default if port is None else port
    if not 0 < port < 65536:
        raise ValueError("http_request: url %r: port must be 1..65535" % url)
    host = parts.hostname
    authority = ("[%s]" % host if ":" in host else host) + ("" if port == default else
                                                             ":%d" % port)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return scheme, host, port, target, authority


def _format_request(method: str, target: str, authority: str, headers: HeadersLike,
                    body: bytes, upgrade: bool) -> bytes:
    """Return the request head and body as bytes, or raise ValueError for a bad field."""
    fields = Headers(headers)
    for name, value in fields:
        if not isinstance(name, str) or not isinstance(value, str) \
                or _TOKEN_ONLY.fullmatch(name) is None or _CONTROL.search(value) \
                or not value.isascii():
            raise ValueError("http_request: header %r: %r needs a token name and an ASCII "
                             "value without CR, LF or other control characters"
                             % (name, value))
    given = {name.lower() for name, _ in fields}
    if given & _FRAMED_BY_US:
        raise ValueError("http_request: the client sets Content-Length itself; pass body= "
                         "instead of %s" % ", ".join(sorted(given & _FRAMED_BY_US)))
    if upgrade != ("upgrade" in given):
        raise ValueError("http_request: on_upgrade= and an Upgrade header go together")
    lines = ["%s %s HTTP/1.1" % (method, target)]
    lines += [] if "host" in given else ["Host: " + authority]
    lines += [] if "user-agent" in given else ["User-Agent: " + USER_AGENT]
    lines += ["Connection: Upgrade"] if upgrade and "connection" not in given else []
    lines += ["%s: %s" % field for field in fields]
    if body or method not in _NO_BODY_METHODS:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
