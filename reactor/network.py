"""The Reactor: the event loop plus the ways to listen and connect.

``loop.EventLoop`` knows callbacks, timers and file descriptors, nothing
of sockets or protocols. This module adds what applications call
(``listen_tcp``, ``connect_tcp`` ...), each a thin front for ``server.py``
and ``client.py``; here, not in the loop, so that the loop sits below the
transports in the layer table.
"""

import concurrent.futures
import functools
import selectors
import socket
import ssl as _ssl
import sys
from typing import Any, Callable, Dict, List, Optional

from .addresses import check_port, connect_host, format_address, listen_host
from .client import Connector
from .datagrams import DatagramTransport
from .errors import InvalidAddressError, NotCallableError, ProtectionsUnavailableError
from .http.server import HTTP_OPTION_NAMES, HTTPOptions, HTTPServerProtocol
from .loop import SLOW_CALLBACK_SECONDS, EventLoop
from .policy import DEFAULT_LIMITS, SERVER_ONLY_FIELDS, Limits
from .protocols import BaseProtocol
from .server import Server
from .sockets import bind_datagram, bind_tcp, bind_unix, remove_stale_socket
from .tls import DEFAULT_HANDSHAKE_TIMEOUT, client_context

try:
    from .protect.datagram_guard import DatagramGuard
except ImportError:          # a vendored copy without reactor/protect/: unguarded datagrams only
    DatagramGuard = None  # type: ignore[assignment,misc]

ProtocolFactory = Callable[[], Any]                 # a class, or a function making a protocol
_LISTEN_TCP_OPTIONS = ("limits", "max_connections", "backlog", "reuse_port", "ssl",
                       "ssl_handshake_timeout", "auth", "sockets")


class Reactor(EventLoop):
    """An event loop that also makes servers and clients: TCP, UDP and Unix sockets.

    Parameters are ``EventLoop``'s (all optional): ``selector`` (any
    ``selectors.BaseSelector``; default the platform's best), ``clock`` (a
    zero-argument monotonic time function, e.g. a ``FakeClock``),
    ``timers`` (``TimerWheel`` or ``HeapTimers``), ``debug`` (slow-callback
    log and thread checks; default ``REACTOR_DEBUG``), ``tick_seconds`` (the
    wheel's granularity, 1 ms) and ``slow_callback_seconds``.

    Every listen and connect call takes ``limits`` (a ``Limits``; the common
    fields also as keywords). Arguments are checked at the call: a port
    outside 0-65535, a protocol instance where a factory belongs, or a
    ``Limits`` field that cannot apply raises at once.
    """

    def __init__(self, selector: Optional[selectors.BaseSelector] = None,
                 clock: Optional[Callable[[], float]] = None, timers: Any = None,
                 debug: Optional[bool] = None, tick_seconds: float = 0.001,
                 slow_callback_seconds: float = SLOW_CALLBACK_SECONDS) -> None:
        super().__init__(selector=selector, clock=clock, timers=timers, debug=debug,
                         tick_seconds=tick_seconds, slow_callback_seconds=slow_callback_seconds)
        self._resolver: Optional[concurrent.futures.ThreadPoolExecutor] = None

    # -- servers ------------------------------------------------------------

    def listen_tcp(self, protocol_factory: ProtocolFactory, host: Optional[str] = "127.0.0.1",
                   port: int = 0, *, limits: Optional[Limits] = None,
                   max_connections: Optional[int] = None, backlog: Optional[int] = None,
                   reuse_port: bool = False, ssl: Optional[_ssl.SSLContext] = None,
                   ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                   auth: Any = None, sockets: Optional[List[socket.socket]] = None) -> Server:
        """Listen on ``host:port`` (IPv4 and/or IPv6; None or '': every interface); port 0 picks one.

        ``protocol_factory()`` makes one protocol per accepted connection.
        With ``ssl`` (a server ``SSLContext``) every connection speaks TLS
        and its protocol sees ``connection_made`` after the handshake.
        With ``auth`` (``reactor.auth.TokenAuth`` or ``PskAuth``) it sees
        it only after the peer authenticated. ``limits`` holds every other
        protection (timeouts, rates, per-IP caps, allow/deny lists).
        Raises ``OSError`` naming the address if it cannot bind.

        ``sockets``: serve on these listening sockets instead of binding
        ``host:port`` (a supervisor's, inherited through fork: ``workers.py``).
        Closing the server closes our copies only; whoever made them owns
        their address (a Unix socket file is not removed).
        """
        self._check_usable("listen_tcp")
        _check_factory(protocol_factory, "listen_tcp")
        limits = _with(limits, max_connections=max_connections, backlog=backlog)
        if sockets is not None:
            sockets = _check_listening(sockets)
        else:
            host = listen_host(host, "listen_tcp")
            check_port(port, "listen_tcp")
            sockets = bind_tcp(host, port, limits, reuse_port)
        unix = bool(sockets) and sockets[0].family == getattr(socket, "AF_UNIX", None)
        return Server(self, protocol_factory, sockets, limits, tcp_nodelay=not unix,
                      ssl_context=_server_ssl(ssl), ssl_handshake_timeout=ssl_handshake_timeout,
                      auth=auth)

    def listen_http(self, app: Any, host: Optional[str] = "127.0.0.1", port: int = 0,
                    **options: Any) -> Server:
        """Serve HTTP/1.1 on ``host:port`` with ``app``, a ``reactor.http.Router``.

        Keywords of ``reactor.http.HTTPOptions`` (``header_timeout``,
        ``keepalive_timeout``, ``body_timeout``, ``max_body_bytes``,
        ``access_log`` ...) set the HTTP side; the rest are ``listen_tcp``'s:
        ``ssl`` for HTTPS, ``limits`` for the protections. Raises TypeError
        for an ``app`` without ``find`` or a keyword neither takes.
        """
        if not callable(getattr(app, "find", None)):
            raise TypeError("listen_http needs a reactor.http.Router (or an object with its "
                            "find(method, path)), got %r" % (app,))
        unknown = sorted(set(options) - set(HTTP_OPTION_NAMES) - set(_LISTEN_TCP_OPTIONS))
        if unknown:
            raise TypeError("listen_http got unknown keyword(s) %s; it takes %s"
                            % (", ".join(unknown), ", ".join(HTTP_OPTION_NAMES
                                                             + _LISTEN_TCP_OPTIONS)))
        http = HTTPOptions(**{name: options.pop(name) for name in HTTP_OPTION_NAMES
                              if name in options})
        return self.listen_tcp(functools.partial(HTTPServerProtocol, app, http), host, port,
                               **options)

    def listen_unix(self, protocol_factory: ProtocolFactory, path: str, *,
                    limits: Optional[Limits] = None, max_connections: Optional[int] = None,
                    backlog: Optional[int] = None, ssl: Optional[_ssl.SSLContext] = None,
                    ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                    auth: Any = None) -> Server:
        """Listen on a Unix stream socket at ``path``, replacing a stale socket file safely."""
        self._check_usable("listen_unix")
        _check_factory(protocol_factory, "listen_unix")
        limits = _with(limits, max_connections=max_connections, backlog=backlog)
        sock = bind_unix(path, limits)
        return Server(self, protocol_factory, [sock], limits, tcp_nodelay=False,
                      unix_path=path, ssl_context=_server_ssl(ssl),
                      ssl_handshake_timeout=ssl_handshake_timeout, auth=auth)

    # -- clients ------------------------------------------------------------

    def connect_tcp(self, protocol_factory: ProtocolFactory, host: str, port: int, *,
                    timeout: Optional[float] = None,
                    on_error: Optional[Callable[[BaseException], None]] = None,
                    limits: Optional[Limits] = None, ssl: Any = None,
                    server_hostname: Optional[str] = None,
                    ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                    auth_token: Any = None, psk: Any = None) -> Connector:
        """Connect to ``host:port`` without blocking; return the :class:`Connector`.

        On success the protocol's ``connection_made`` is called; on refusal,
        timeout (``timeout`` seconds, default ``limits.connect_timeout_seconds``)
        or a resolution failure, ``on_error(exc)`` is. ``ssl=True`` (a
        verifying default context) or an ``SSLContext`` adds TLS, checking
        the certificate against ``server_hostname`` (default: ``host``); a
        failed handshake also goes to ``on_error``.

        ``auth_token`` (sent as the first line or frame) or ``psk`` (the
        challenge-response of ``reactor/protect/auth.py``) does the client's
        half of a server's auth. They differ in what a refusal looks like:

        * ``psk``: the server answers the challenge, so a refusal is known
          before the app starts; it goes to ``on_error`` as an
          ``AuthenticationError`` and the protocol never sees the connection.
        * ``auth_token``: the server says nothing on success, so the protocol
          gets ``connection_made`` at once; a refused token then shows as the
          line ``error: authentication failed`` and a clean close.

        ``limits`` applies its client fields (water marks, send caps, the
        connect timeout, idle / first-frame timeouts and rates on what the
        server sends; see ``policy.py``); server-only fields raise ``ValueError``.
        """
        self._check_usable("connect_tcp")
        _check_factory(protocol_factory, "connect_tcp")
        host = connect_host(host, "connect_tcp")
        check_port(port, "connect_tcp", allow_zero=False)
        limits = _client_limits(limits, "connect_tcp")
        connector = Connector(self, protocol_factory, socket.AF_INET, (host, port),
                              format_address((host, port)),
                              timeout if timeout is not None else limits.connect_timeout_seconds,
                              on_error, limits, resolve=self._resolve_in_thread,
                              ssl_context=_client_ssl(ssl),
                              server_hostname=server_hostname or (host if ssl else None),
                              ssl_handshake_timeout=ssl_handshake_timeout,
                              auth=_client_auth(auth_token, psk))
        connector.start()
        return connector

    def connect_unix(self, protocol_factory: ProtocolFactory, path: str, *,
                     timeout: Optional[float] = None,
                     on_error: Optional[Callable[[BaseException], None]] = None,
                     limits: Optional[Limits] = None, ssl: Any = None,
                     server_hostname: Optional[str] = None,
                     ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                     auth_token: Any = None, psk: Any = None) -> Connector:
        """Connect to the Unix stream socket at ``path``; like ``connect_tcp``.

        With ``ssl``, pass the ``server_hostname`` the certificate names.
        """
        self._check_usable("connect_unix")
        _check_factory(protocol_factory, "connect_unix")
        limits = _client_limits(limits, "connect_unix")
        connector = Connector(self, protocol_factory, socket.AF_UNIX, path, path,
                              timeout if timeout is not None else limits.connect_timeout_seconds,
                              on_error, limits, ssl_context=_client_ssl(ssl),
                              server_hostname=server_hostname,
                              ssl_handshake_timeout=ssl_handshake_timeout,
                              auth=_client_auth(auth_token, psk))
        connector.start()
        return connector

    # -- datagrams ---------------------------------------------------------

    def listen_udp(self, protocol_factory: ProtocolFactory, host: Optional[str] = "127.0.0.1",
                   port: int = 0, *, limits: Optional[Limits] = None,
                   reuse_port: bool = False) -> DatagramTransport:
        """Bind a UDP socket on ``host:port`` and return its transport (receiving at once).

        ``protocol_factory()`` is called once; ``transport.get_protocol()``
        returns the protocol (``protocols.innermost_protocol`` of it, when a
        guard stands in front). ``host`` should be numeric: a name is
        resolved here, on the loop thread.

        Datagrams that would start a reflection loop are always dropped
        (``datagrams.py``). ``limits`` may also ask, per source address, for
        ``allow`` / ``deny`` lists and ``ip_rate_bytes`` / ``ip_rate_messages``
        (``protect/datagram_guard.py``: over a rate, datagrams are dropped);
        the fields that need a connection raise ``ValueError``, and without
        ``reactor/protect/`` the per-source ones raise
        ``ProtectionsUnavailableError``.
        """
        self._check_usable("listen_udp")
        _check_factory(protocol_factory, "listen_udp")
        host = listen_host(host, "listen_udp")
        check_port(port, "listen_udp")
        _datagram_limits(limits, "listen_udp", per_source=True)
        family, address = _resolve_datagram(host, port, "listen_udp", passive=True)
        sock = bind_datagram(family, address, reuse_port)
        return self._start_datagram(sock, protocol_factory, None, limits)

    def connect_udp(self, protocol_factory: ProtocolFactory, host: str, port: int, *,
                    local_addr: Any = None, limits: Optional[Limits] = None) -> DatagramTransport:
        """Make a *connected* UDP socket to ``host:port`` and return its transport.

        A connected socket receives only from that peer, and the kernel
        reports ICMP errors for it (``error_received`` gets
        ``ConnectionRefusedError`` when nothing listens). UDP has no
        handshake, so this completes at once; ``host`` should be numeric,
        since a name is resolved here, on the loop thread.
        """
        self._check_usable("connect_udp")
        _check_factory(protocol_factory, "connect_udp")
        host = connect_host(host, "connect_udp")
        check_port(port, "connect_udp", allow_zero=False)
        _datagram_limits(limits, "connect_udp")
        family, address = _resolve_datagram(host, port, "connect_udp", passive=False)
        sock = bind_datagram(family, local_addr)
        try:
            sock.connect(address)
            peer = sock.getpeername()
        except BaseException:
            sock.close()
            raise
        return self._start_datagram(sock, protocol_factory, peer, limits)

    def listen_unix_datagram(self, protocol_factory: ProtocolFactory, path: str, *,
                             limits: Optional[Limits] = None) -> DatagramTransport:
        """Bind a Unix datagram socket at ``path`` (a stale file is replaced; ours removed on close)."""
        self._check_usable("listen_unix_datagram")
        _check_factory(protocol_factory, "listen_unix_datagram")
        _datagram_limits(limits, "listen_unix_datagram")
        remove_stale_socket(path, socket.SOCK_DGRAM)
        sock = bind_datagram(socket.AF_UNIX, path)
        return self._start_datagram(sock, protocol_factory, None, limits, unix_path=path)

    def connect_unix_datagram(self, protocol_factory: ProtocolFactory, path: str, *,
                              local_path: Optional[str] = None,
                              limits: Optional[Limits] = None) -> DatagramTransport:
        """Connect a Unix datagram socket to ``path``.

        To receive replies the socket needs an address of its own:
        ``local_path`` if given, else (on Linux) an automatic abstract one.
        """
        self._check_usable("connect_unix_datagram")
        _check_factory(protocol_factory, "connect_unix_datagram")
        _datagram_limits(limits, "connect_unix_datagram")
        if local_path is None and sys.platform.startswith("linux"):
            local_path = ""                          # Linux autobind: an abstract address
        sock = bind_datagram(socket.AF_UNIX, local_path)
        try:
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return self._start_datagram(sock, protocol_factory, path, limits,
                                    unix_path=local_path or None)

    def close(self) -> None:
        """Close the loop and stop the resolver threads (without waiting for a slow lookup)."""
        super().close()
        if self._resolver is not None:
            self._resolver.shutdown(wait=False)
            self._resolver = None

    # -- internals ----------------------------------------------------------

    def _start_datagram(self, sock: socket.socket, protocol_factory: ProtocolFactory, peer: Any,
                        limits: Optional[Limits], unix_path: Optional[str] = None
                        ) -> DatagramTransport:
        """Make the protocol (behind a guard if ``limits`` ask for one) and its transport."""
        limits = limits or DEFAULT_LIMITS
        try:
            protocol = protocol_factory()
        except BaseException:
            sock.close()
            raise
        counters: Dict[str, int] = {}                # shared: one stats() for both
        if limits.protections_asked():               # only listen_udp lets any through
            protocol = DatagramGuard(self, protocol, limits, counters)
        transport = DatagramTransport(self, sock, protocol, peer, limits,
                                      unix_path=unix_path, counters=counters)
        transport.start()
        return transport

    def _resolve_in_thread(self, connector: Connector) -> None:
        """Run getaddrinfo on a worker thread; hand the answer back on the loop thread."""
        if self._resolver is None:
            self._resolver = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="reactor-resolver")
        host, port = connector._target

        def resolve() -> None:
            try:
                infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
                error = None
            except OSError as exc:
                infos, error = None, exc
            try:
                self.call_soon_threadsafe(connector.resolved, infos, error)
            except RuntimeError:
                pass                      # the loop closed while we were resolving
        self._resolver.submit(resolve)


def _client_ssl(ssl: Any) -> Optional[_ssl.SSLContext]:
    """Map ``ssl=`` for clients: None/False off, True a verifying default, or the context."""
    if ssl is None or ssl is False:
        return None
    if ssl is True:
        return client_context()
    if isinstance(ssl, _ssl.SSLContext):
        return ssl
    raise TypeError("ssl= takes True or an ssl.SSLContext, got %r" % (ssl,))


def _server_ssl(ssl: Any) -> Optional[_ssl.SSLContext]:
    if ssl is None or isinstance(ssl, _ssl.SSLContext):
        return ssl
    raise TypeError("ssl= for a server takes an ssl.SSLContext with a certificate, got %r"
                    % (ssl,))


def _client_auth(token: Any, psk: Any) -> Optional[dict]:
    if token is not None and psk is not None:
        raise ValueError("pass auth_token= or psk=, not both")
    if token is None and psk is None:
        return None
    return {"token": token, "psk": psk}


def _check_listening(sockets: Any) -> List[socket.socket]:
    """Return ``sockets`` as a list of listening stream sockets, made non-blocking; else raise."""
    sockets = list(sockets)
    for sock in sockets:
        if not isinstance(sock, socket.socket) or sock.type != socket.SOCK_STREAM \
                or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
            raise ValueError("listen_tcp(sockets=...) takes listening stream sockets, got %r"
                             % (sock,))
        sock.setblocking(False)
    if not sockets:
        raise ValueError("listen_tcp(sockets=...) needs at least one listening socket")
    return sockets


def _check_factory(factory: Any, what: str) -> None:
    """Refuse what cannot make a protocol per connection, at the call rather than per accept."""
    if isinstance(factory, BaseProtocol) or not callable(factory):
        kind = type(factory).__name__
        hint = ("an instance of %s: pass the class %s (or lambda: %s(...)) so that each "
                "connection gets its own" % (kind, kind, kind)
                if isinstance(factory, BaseProtocol) else "%s %r" % (kind, factory))
        raise NotCallableError("%s: protocol_factory must be a protocol class or a function "
                               "returning a new protocol, got %s" % (what, hint))


def _client_limits(limits: Optional[Limits], what: str) -> Limits:
    """Return ``limits`` for a client, refusing fields only a server can use."""
    limits = limits or DEFAULT_LIMITS
    server_only = limits.fields_changed(SERVER_ONLY_FIELDS)
    if server_only:
        raise ValueError("%s: Limits fields %s apply to servers only; a client cannot "
                         "enforce them (see reactor/policy.py)" % (what, ", ".join(server_only)))
    return limits


#: The protections a listening UDP socket enforces, per source (``DatagramGuard``).
DATAGRAM_PROTECTION_FIELDS = ("allow", "deny", "ip_rate_bytes", "ip_rate_messages")


def _datagram_limits(limits: Optional[Limits], what: str, per_source: bool = False) -> None:
    """Refuse protections a datagram socket cannot enforce, rather than ignore them.

    ``per_source`` (a listening UDP socket): the guard enforces
    ``DATAGRAM_PROTECTION_FIELDS``; the rest need a connection to count or
    close. Raises ``ValueError`` naming the fields, or
    ``ProtectionsUnavailableError`` when the wing that would enforce them is absent.
    """
    if limits is None:
        return
    asked = limits.protections_asked()
    usable = DATAGRAM_PROTECTION_FIELDS if per_source else ()
    refused = [name for name in asked if name not in usable]
    if per_source and limits.rate_action != DEFAULT_LIMITS.rate_action:
        refused.append("rate_action")
    if refused:
        why = ("a datagram socket has no connections to time out, count or slow down: it takes "
               "allow, deny, ip_rate_bytes and ip_rate_messages, per source address, and drops "
               "what is over a rate" if per_source else
               "only listen_udp enforces protections, per source address")
        raise ValueError("%s: Limits fields %s do not apply to this datagram socket (%s)"
                         % (what, ", ".join(refused), why))
    if asked and DatagramGuard is None:
        raise ProtectionsUnavailableError("%s need reactor/protect/, which this copy of "
                                          "reactor does not have" % ", ".join(asked))


def _resolve_datagram(host: Optional[str], port: int, what: str, passive: bool) -> Any:
    """Return ``(family, address)`` for a datagram socket, or say which name failed."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_DGRAM, 0,
                                   socket.AI_PASSIVE if passive else 0)
    except socket.gaierror as exc:
        raise InvalidAddressError("%s: cannot resolve %r: %s" % (what, host, exc.strerror)) \
            from None
    family, _, _, _, address = infos[0]
    return family, address


def _with(limits: Optional[Limits], **changes: Any) -> Limits:
    limits = limits or DEFAULT_LIMITS
    changes = {name: value for name, value in changes.items() if value is not None}
    return limits.with_changes(**changes) if changes else limits
