"""Clients: non-blocking connects that end in a StreamTransport, or in an error.

``Reactor.connect_tcp`` returns a :class:`Connector` at once; the work
happens on the loop::

    resolve host  ->  for each address: socket, connect_ex()  ->  wait writable
                   ->  SO_ERROR == 0: transport + protocol.connection_made
                   ->  every address failed, or the timeout fired: on_error(exc)

Name resolution (``getaddrinfo``) can block for seconds, so names go to a
small worker pool and the answer comes back through
``call_soon_threadsafe``. Numeric addresses (``127.0.0.1``, ``::1``) are
resolved on the loop thread with ``AI_NUMERICHOST``, which never blocks.

With ``ssl=``, the stream transport's protocol is a TLS layer and
``on_error`` also receives a failed handshake (an ``ssl.SSLError``, or
``TLSHandshakeTimeoutError``); the application protocol sees
``connection_made`` only once the handshake is done. The stack of a client
connection, bottom to top, is the server's (``server.py``), with the
client's half of auth on top when asked for::

    StreamTransport  [TLSTransport]  [Guard: client Limits]  [ClientAuth]  app

``Connector.transport`` is the top of that stack: what the app writes to.

The timeout covers resolution and every connect attempt together. On
failure ``on_error`` receives a :class:`~reactor.errors.ConnectRefusedError`,
:class:`~reactor.errors.ConnectTimeoutError` or another
:class:`~reactor.errors.ConnectError`, each an ``OSError`` with ``errno``
set; without ``on_error`` the failure is logged.
"""

import errno
import logging
import os
import socket
import ssl
from typing import Any, Callable, Dict, List, Optional, Tuple

from .errors import (ConnectError, ConnectRefusedError, ConnectTimeoutError,
                     ProtectionsUnavailableError)
from .loop import EVENT_WRITE
from .policy import DEFAULT_LIMITS, Limits
from .streams import StreamTransport
from .tls import DEFAULT_HANDSHAKE_TIMEOUT, TLSTransport

try:
    from . import protect
except ImportError:          # a vendored copy without reactor/protect/
    protect = None  # type: ignore[assignment]

logger = logging.getLogger("reactor")

_IN_PROGRESS = frozenset((errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR))


class Connector:
    """One outgoing connection attempt; ``cancel()`` it, or read its outcome.

    After success ``transport`` and ``protocol`` are set; after failure
    ``error`` is. ``done()`` tells whether either has happened.
    """

    def __init__(self, loop: Any, protocol_factory: Callable[[], Any], family: int,
                 target: Any, description: str, timeout_seconds: float,
                 on_error: Optional[Callable[[BaseException], None]],
                 limits: Limits = DEFAULT_LIMITS,
                 resolve: Optional[Callable[[Any], None]] = None,
                 ssl_context: Optional[ssl.SSLContext] = None,
                 server_hostname: Optional[str] = None,
                 ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                 auth: Optional[Dict[str, Any]] = None) -> None:
        self._loop = loop
        self._factory = protocol_factory
        self._family = family
        self._target = target                   # (host, port), or a Unix path
        self._description = description
        self._on_error = on_error
        self._limits = limits
        self._resolve = resolve
        self._ssl_context = ssl_context
        self._server_hostname = server_hostname
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._auth = auth
        asked = limits.protections_asked() + (["auth"] if auth is not None else [])
        if asked and protect is None:
            raise ProtectionsUnavailableError(
                "%s need reactor/protect/, which this copy of reactor does not have"
                % ", ".join(asked))
        self._guarded = bool(limits.protections_asked())
        self._addresses: List[Tuple[int, Any]] = []
        self._sock: Optional[socket.socket] = None
        self._address: Any = None
        self._last_error: Optional[OSError] = None
        self._done = False
        self.transport: Optional[StreamTransport] = None
        self.protocol: Any = None
        self.error: Optional[BaseException] = None
        self._timer = loop.call_later(timeout_seconds, self._timed_out, timeout_seconds)

    def start(self) -> None:
        """Begin: resolve (if needed) and try the first address."""
        if self._family == socket.AF_UNIX:
            self._addresses = [(socket.AF_UNIX, self._target)]
            self._try_next()
            return
        host, port = self._target
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                       0, socket.AI_NUMERICHOST)
        except socket.gaierror:
            if self._resolve is None:
                raise
            self._resolve(self)                 # a name: resolve off the loop thread
            return
        self.resolved(infos, None)

    def resolved(self, infos: Any, exc: Optional[BaseException]) -> None:
        """Take the resolver's answer (on the loop thread) and start connecting."""
        if self._done:
            return
        if exc is not None:
            self._fail(ConnectError(getattr(exc, "errno", None) or errno.EHOSTUNREACH,
                                    "cannot resolve %s: %s" % (self._description, exc)))
            return
        self._addresses = [(family, address) for family, _, _, _, address in infos]
        if not self._addresses:
            self._fail(ConnectError(errno.EHOSTUNREACH,
                                    "no address found for %s" % self._description))
            return
        self._try_next()

    def cancel(self) -> None:
        """Abandon the attempt; no callback runs. No effect once done."""
        if self._done:
            return
        self._done = True
        self._timer.cancel()
        self._drop_socket()

    def done(self) -> bool:
        """Tell whether the attempt succeeded, failed or was cancelled."""
        return self._done

    # -- the loop's calls -------------------------------------------------------

    def on_writable(self) -> None:
        """The connect finished, one way or the other: SO_ERROR says which."""
        sock = self._sock
        if self._done or sock is None:
            return
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._loop._unwatch(sock.fileno())
        if code:
            self._attempt_failed(OSError(code, os.strerror(code)))
        else:
            self._connected()

    def on_readable(self) -> None:
        pass

    # -- internals ----------------------------------------------------------------

    def _try_next(self) -> None:
        if not self._addresses:
            exc = self._last_error or OSError(errno.EHOSTUNREACH, "no address to try")
            if exc.errno == errno.ECONNREFUSED:
                self._fail(ConnectRefusedError(
                    errno.ECONNREFUSED, "connection to %s refused (is anything listening?)"
                    % self._description))
            else:
                self._fail(ConnectError(exc.errno, "cannot connect to %s: %s"
                                        % (self._description, exc.strerror or exc)))
            return
        family, self._address = self._addresses.pop(0)
        try:
            sock = self._sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
        except OSError as exc:
            self._attempt_failed(exc)
            return
        code = sock.connect_ex(self._address)
        if code == 0:
            self._connected()
        elif code in _IN_PROGRESS:
            self._loop._watch(sock, EVENT_WRITE, self)
        else:
            self._attempt_failed(OSError(code, os.strerror(code)))

    def _attempt_failed(self, exc: OSError) -> None:
        self._last_error = exc
        self._drop_socket()
        self._try_next()

    def _connected(self) -> None:
        sock, self._sock = self._sock, None
        self._done = True
        self._timer.cancel()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self._factory()
        except Exception as exc:
            sock.close()
            self._loop._report(exc, self._factory, "protocol factory")
            self.error = exc
            return
        self.protocol = protocol
        # Build the stack from the top down; ``top`` is what the app writes to.
        if self._auth is not None:             # the auth handshake first, then the app
            protocol = protect.ClientAuth(self._loop, protocol, on_error=self._auth_failed,
                                          timeout_seconds=self._limits.auth_timeout_seconds,
                                          **self._auth)
        top = None
        if self._guarded:                      # the client's own timeouts and rates
            protocol = top = protect.Guard(self._loop, protocol, self._limits)
        if self._ssl_context is not None:
            protocol = TLSTransport(self._loop, self._ssl_context, protocol, server_side=False,
                                    server_hostname=self._server_hostname,
                                    handshake_timeout=self._ssl_handshake_timeout,
                                    on_handshake_error=self._tls_failed)
            top = top or protocol
        transport = StreamTransport(self._loop, sock, protocol, self._address, None,
                                    self._limits)
        self.transport = top or transport
        transport.start()

    def _auth_failed(self, exc: BaseException) -> None:
        """Connected, but the server refused our credentials (or never answered)."""
        self._failed_after_connect(exc, "authentication")

    def _tls_failed(self, exc: BaseException) -> None:
        """The TCP connect worked but the TLS handshake did not: report it like a connect error."""
        self._failed_after_connect(exc, "TLS handshake")

    def _failed_after_connect(self, exc: BaseException, what: str) -> None:
        self.error = exc
        if self._on_error is None:
            logger.warning("%s with %s failed: %s", what, self._description, exc)
            return
        self._on_error(exc)

    def _timed_out(self, timeout_seconds: float) -> None:
        self._fail(ConnectTimeoutError(
            errno.ETIMEDOUT, "connecting to %s timed out after %.3g s"
            % (self._description, timeout_seconds)))

    def _fail(self, exc: ConnectError) -> None:
        if self._done:
            return
        self._done = True
        self._timer.cancel()
        self._drop_socket()
        self.error = exc
        if self._on_error is None:
            logger.warning("%s", exc)
            return
        self._on_error(exc)

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        self._loop._unwatch(sock.fileno())        # a no-op when it was not being watched
        sock.close()

    def __repr__(self) -> str:
        state = ("connected" if self.transport else "failed" if self.error
                 else "cancelled" if self._done else "connecting")
        return "<Connector %s %s>" % (self._description, state)
