"""Servers: listening sockets, the accept loop, and the connections they own.

Accepting is where a public server most often falls over, so this module
is mostly about the bad days:

* **Bounded batches.** Each readiness event of a listening socket accepts at
  most ``Limits.accept_batch`` connections, then lets the loop serve the
  connections it already has.
* **Out of file descriptors** (EMFILE/ENFILE, or ENOBUFS/ENOMEM). ``accept()``
  fails, but the pending connection stays in the backlog, so a
  level-triggered selector reports the socket readable again at once: the
  classic 100%-CPU spin. We keep one spare fd open for this moment (the
  libev/libuv trick): close it, accept the pending connection and close that
  at once (the client gets a prompt close instead of hanging in the
  backlog), re-open the spare, and stop accepting for
  ``Limits.accept_backoff_seconds`` on the timer wheel. One warning is
  logged per episode, and one info line when accepting works again.
* **Admission**, right after ``accept()`` and before any protocol code
  runs: a peer outside the allow list or inside the deny list
  (``access.py``), a connection over ``max_connections``, or over
  ``max_per_ip`` for its client address, is closed at once and counted;
  nobody waits in a backlog for a server that will not serve them.
* **Guards**: when the limits ask for timeouts, rate limits or auth, each
  connection's protocol sits behind a ``Guard`` (``guard.py``), which
  enforces them per connection.

Every refusal and every close for a reason (``close_with_error``) is
counted in ``stats()`` under ``rejected_<reason>`` and logged through the
server's ``AbuseLog`` (``monitor.py``): at most one line per reason per
interval plus a summary, so an attack cannot flood the log.

Shutdown: ``close()`` stops listening and leaves connections alone;
``shutdown(grace)`` also asks each connection to ``close()`` (flush, then
close) and aborts whatever is still open after ``grace`` seconds.
"""

import errno
import logging
import os
import socket
import ssl
from typing import Any, Callable, Dict, List, Optional, Tuple

from .access import AccessFilter, client_key, format_address
from .errors import AccessDeniedError, ProtectionError
from .guard import ClientRecord, Guard, needs_guard
from .loop import EVENT_READ
from .monitor import REJECTION_REASONS, AbuseLog, format_stats
from .policy import DEFAULT_LIMITS, Limits
from .streams import StreamTransport
from .tls import DEFAULT_HANDSHAKE_TIMEOUT, TLSTransport, describe_tls_error
from .unix import inode, remove_stale_socket, unlink_if_ours

logger = logging.getLogger("reactor")

#: accept() errors that mean "the process or system is out of resources".
OUT_OF_RESOURCES_ERRNOS = frozenset(
    getattr(errno, name) for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    if hasattr(errno, name))
#: accept() errors about one connection that died in the backlog: skip it.
ACCEPT_SKIP_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ECONNABORTED", "EPROTO", "EPERM", "ENETDOWN",
                                      "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH",
                                      "EOPNOTSUPP", "ENETUNREACH")
    if hasattr(errno, name))


class Server:
    """A set of listening sockets sharing one protocol factory and one ``Limits``.

    Made by ``Reactor.listen_tcp`` / ``listen_unix``. ``sockets`` are the
    listening sockets; ``len(server)`` is the number of open connections.
    ``auth`` (``auth.TokenAuth`` or ``auth.PskAuth``) makes every
    connection authenticate before its protocol sees it.
    """

    def __init__(self, loop: Any, protocol_factory: Callable[[], Any],
                 sockets: List[socket.socket], limits: Limits = DEFAULT_LIMITS,
                 tcp_nodelay: bool = True, unix_path: Optional[str] = None,
                 ssl_context: Optional[ssl.SSLContext] = None,
                 ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                 auth: Any = None) -> None:
        self._loop = loop
        self._factory = protocol_factory
        self.sockets = list(sockets)
        self._limits = limits
        self._tcp_nodelay = tcp_nodelay
        self._unix_path = unix_path
        self._ssl_context = ssl_context
        self._ssl_handshake_timeout = ssl_handshake_timeout
        self._unix_inode = inode(unix_path) if unix_path else None
        self._listeners = [_Listener(self, sock) for sock in self.sockets]
        self._auth = auth
        self._filter = AccessFilter(limits.allow, limits.deny)
        self._guarded = needs_guard(limits, auth)
        self._track_clients = limits.max_per_ip is not None or bool(
            limits.ip_rate_bytes or limits.ip_rate_messages)
        #: open connection -> (its application protocol, its client's record)
        self._connections: Dict[StreamTransport, Tuple[Any, Optional[ClientRecord]]] = {}
        #: client key (address, or IPv6 /64) -> what its connections share
        self._clients: Dict[str, ClientRecord] = {}
        #: keys of clients with no open connection whose buckets are still
        #: refilling, oldest first: forgetting them would hand a client that
        #: reconnects a fresh burst
        self._resting: Dict[str, None] = {}
        self._abuse = AbuseLog(limits.abuse_log_interval_seconds)
        self._abuse_timer: Any = None
        self._spare_fd: Optional[int] = _open_spare_fd()
        self._starved = False
        self._backoff_timer: Any = None
        self._closed = False
        self._shutdown_timer: Any = None
        self._on_shutdown: Optional[Callable[[], None]] = None
        self._counters: Dict[str, int] = {
            "accepted": 0, "peak_connections": 0, "out_of_fds_episodes": 0,
            "aborted_at_shutdown": 0,
            # traffic of connections already closed (stats() adds the open ones')
            "bytes_in": 0, "bytes_out": 0, "frames_in": 0, "frames_out": 0,
            "rate_pauses": 0,
        }
        for reason in REJECTION_REASONS:
            self._counters["rejected_" + reason] = 0
        for listener in self._listeners:
            listener.watch()

    def __len__(self) -> int:
        return len(self._connections)

    @property
    def addresses(self) -> List[Any]:
        """Return the bound addresses (``(host, port, ...)`` tuples or Unix paths)."""
        return [sock.getsockname() for sock in self.sockets]

    def connections(self) -> List[StreamTransport]:
        """Return the open connections' transports (a copy)."""
        return list(self._connections)

    def stats(self) -> Dict[str, int]:
        """Return counters: open, peak and accepted connections, rejections by reason,
        and bytes and frames in and out (TLS: bytes on the wire, encrypted).

        Costs O(open connections): the traffic of open connections is summed
        here rather than counted centrally on every read.
        """
        stats = dict(self._counters, connections=len(self._connections),
                     clients=len(self._clients) - len(self._resting),
                     clients_resting=len(self._resting))
        for transport, (protocol, _) in self._connections.items():
            _add_traffic(stats, transport, protocol)
        return stats

    def log_stats(self) -> None:
        """Log one line of ``stats()`` (the CLI does it every ``--stats-interval`` and on SIGUSR1)."""
        logger.info("stats %s: %s", ", ".join(_describe(s) for s in self.sockets) or "closed",
                    format_stats(self.stats()))

    def is_serving(self) -> bool:
        """Tell whether the server still accepts connections."""
        return not self._closed

    def close(self) -> None:
        """Stop listening and release the listening sockets; open connections stay. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            listener.unwatch()
            listener.sock.close()
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
        if self._abuse_timer is not None:
            self._abuse_timer.cancel()
            self._abuse_timer = None
        self._abuse.flush(float("inf"))
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
        if self._unix_path:
            unlink_if_ours(self._unix_path, self._unix_inode)   # never someone else's file

    def shutdown(self, grace_seconds: float = 5.0,
                 on_done: Optional[Callable[[], None]] = None) -> None:
        """Stop accepting, close every connection gracefully, abort the rest after the grace.

        ``on_done()`` runs (as a loop callback) once no connection is left.
        """
        self.close()
        self._on_shutdown = on_done
        for transport in list(self._connections):
            transport.close()
        if self._connections:
            self._shutdown_timer = self._loop.call_later(grace_seconds, self._abort_remaining)
        else:
            self._finish_shutdown()

    # -- called by transports and listeners ---------------------------------

    def connection_closed(self, transport: StreamTransport) -> None:
        """Forget a closed connection (called by its transport, once)."""
        entry = self._connections.pop(transport, None)
        if entry is not None:
            protocol, client = entry
            _add_traffic(self._counters, transport, protocol)
            if client is not None:
                client.connections -= 1
                if client.is_settled(self._loop.time()):
                    del self._clients[client.key]
                elif not client.connections:
                    self._resting[client.key] = None
        if not self._connections and self._on_shutdown is not None:
            self._finish_shutdown()

    def report_closing(self, transport: Any, exc: BaseException) -> None:
        """Count and log (rate-limited) a connection closed for a reason (by ``close_with_error``)."""
        reason = getattr(exc, "reason", "protection")
        self._reject(reason, transport.get_extra_info("peername"), exc)

    def accept_ready(self, listener: "_Listener") -> None:
        """Accept up to one batch of pending connections on ``listener``."""
        sock = listener.sock
        for _ in range(self._limits.accept_batch):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES_ERRNOS:
                    self._out_of_fds(listener, exc)
                    return
                if exc.errno in ACCEPT_SKIP_ERRNOS:
                    continue
                logger.error("accept() on %s failed: %s; pausing accept for %.3f s",
                             _describe(sock), exc, self._limits.accept_backoff_seconds)
                self._pause_accepting()
                return
            if self._starved:
                self._starved = False
                logger.info("accepting connections again on %s", _describe(sock))
            self._start_connection(conn, address)

    # -- internals ------------------------------------------------------------

    def _start_connection(self, conn: socket.socket, address: Any) -> None:
        limits = self._limits
        if self._filter and not self._filter.allows(address):
            conn.close()
            self._reject("filter", address, AccessDeniedError("address not allowed"))
            return
        if limits.max_connections is not None and len(self._connections) >= limits.max_connections:
            conn.close()
            self._reject("max_connections", address, ProtectionError(
                "%d connections open, the server's limit" % limits.max_connections))
            return
        client = None
        if self._track_clients:
            key = client_key(address, limits.ipv6_prefix_length)
            if key is not None:
                client = self._clients.get(key)
                if client is None:
                    self._forget_settled_clients()
                    client = ClientRecord(key, limits, self._loop.time())
                elif not client.connections:
                    del self._resting[key]
                elif limits.max_per_ip is not None and client.connections >= limits.max_per_ip:
                    conn.close()
                    self._reject("per_ip", address, ProtectionError(
                        "%d connections open from %s, the per-client limit"
                        % (limits.max_per_ip, key)))
                    return
        conn.setblocking(False)
        if self._tcp_nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = self._factory()
        except Exception as exc:
            self._loop._report(exc, self._factory, "protocol factory")
            conn.close()
            return
        app = protocol
        if self._guarded:
            protocol = Guard(self._loop, protocol, limits, client, self._auth, self._counters)
        if self._ssl_context is not None:
            protocol = TLSTransport(self._loop, self._ssl_context, protocol, server_side=True,
                                    handshake_timeout=self._ssl_handshake_timeout,
                                    on_handshake_error=self._tls_failed_for(address))
        transport = StreamTransport(self._loop, conn, protocol, address, self, limits)
        if client is not None:
            if not client.connections:
                self._clients[client.key] = client
            client.connections += 1
        self._connections[transport] = (app, client)
        counters = self._counters
        counters["accepted"] += 1
        if len(self._connections) > counters["peak_connections"]:
            counters["peak_connections"] = len(self._connections)
        transport.start()

    def _forget_settled_clients(self) -> None:
        """Drop up to two resting clients whose buckets have refilled (amortised O(1)).

        Called once per new client, so resting records cannot pile up
        faster than new clients arrive, and each lives at most until its
        buckets refill plus the next new client.
        """
        now = self._loop.time()
        for _ in range(2):
            if not self._resting:
                return
            key = next(iter(self._resting))
            if not self._clients[key].is_settled(now):
                return
            del self._resting[key]
            del self._clients[key]

    def _tls_failed_for(self, address: Any) -> Callable[[BaseException], None]:
        def tls_failed(exc: BaseException) -> None:
            self._reject("tls_handshake", address, describe_tls_error(exc))
        return tls_failed

    def _reject(self, reason: str, address: Any, why: Any) -> None:
        """Count a refusal or a close for ``reason``; log it through the rate-limited abuse log."""
        self._counters["rejected_" + reason] = self._counters.get("rejected_" + reason, 0) + 1
        now = self._loop.time()
        peer = format_address(address)
        self._abuse.record(reason, client_key(address, self._limits.ipv6_prefix_length), now,
                           "closing connection from %s (%s): %s", peer, reason, why)
        if (self._abuse_timer is None and not self._closed
                and self._abuse.next_flush() is not None):
            self._abuse_timer = self._loop.call_at(self._abuse.next_flush(), self._flush_abuse)

    def _flush_abuse(self) -> None:
        self._abuse_timer = None
        self._abuse.flush(self._loop.time())
        due = self._abuse.next_flush()
        if due is not None and not self._closed:
            self._abuse_timer = self._loop.call_at(due, self._flush_abuse)

    def _out_of_fds(self, listener: "_Listener", exc: OSError) -> None:
        """Shed one pending connection using the spare fd, then pause accepting."""
        if not self._starved:
            self._starved = True
            self._counters["out_of_fds_episodes"] += 1
            logger.warning("out of file descriptors on %s (%s): closing pending connections "
                           "and pausing accept for %.3f s", _describe(listener.sock),
                           exc.strerror, self._limits.accept_backoff_seconds)
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
            try:
                conn, _ = listener.sock.accept()
                conn.close()
                self._counters["rejected_out_of_fds"] += 1
            except OSError:
                pass
            self._spare_fd = _open_spare_fd()
        self._pause_accepting()

    def _pause_accepting(self) -> None:
        """Stop watching every listener and watch them again after the backoff delay."""
        for listener in self._listeners:
            listener.unwatch()
        if self._backoff_timer is None:
            self._backoff_timer = self._loop.call_later(
                self._limits.accept_backoff_seconds, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._backoff_timer = None
        if self._closed:
            return
        if self._spare_fd is None:
            self._spare_fd = _open_spare_fd()
        for listener in self._listeners:
            listener.watch()

    def _abort_remaining(self) -> None:
        self._shutdown_timer = None
        for transport in list(self._connections):
            self._counters["aborted_at_shutdown"] += 1
            transport.abort()

    def _finish_shutdown(self) -> None:
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        on_done, self._on_shutdown = self._on_shutdown, None
        if on_done is not None:
            self._loop.call_soon(on_done)

    def __repr__(self) -> str:
        return "<Server %s connections=%d%s>" % (
            ", ".join(_describe(s) for s in self.sockets) or "closed",
            len(self._connections), " closed" if self._closed else "")


class _Listener:
    """The selector watcher for one listening socket."""

    __slots__ = ("server", "sock", "watching")

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.watching = False

    def watch(self) -> None:
        if not self.watching:
            self.server._loop._watch(self.sock.fileno(), EVENT_READ, self)
            self.watching = True

    def unwatch(self) -> None:
        if self.watching:
            self.server._loop._rewatch(self.sock.fileno(), 0, self)
            self.watching = False

    def on_readable(self) -> None:
        self.server.accept_ready(self)

    def on_writable(self) -> None:
        pass


def bind_tcp(host: Optional[str], port: int, limits: Limits,
             reuse_port: bool = False) -> List[socket.socket]:
    """Create, bind and listen on a socket per address of ``host`` (IPv4 and/or IPv6).

    With port 0, every socket gets the port the first one was given.
    Raises ``OSError`` naming the address when binding fails.
    """
    infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                               0, socket.AI_PASSIVE)
    unique: List[Tuple[int, Any]] = []
    for family, _, _, _, address in infos:
        if (family, address) not in unique:
            unique.append((family, address))
    sockets: List[socket.socket] = []
    try:
        for family, address in unique:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                if not hasattr(socket, "SO_REUSEPORT"):
                    raise ValueError("reuse_port is not supported on this platform")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6 and len(unique) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1]) + tuple(address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, "cannot listen on %s port %s: %s"
                              % (address[0], address[1], exc.strerror)) from None
            sock.listen(limits.backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_unix(path: str, limits: Limits) -> socket.socket:
    """Create, bind and listen on a Unix stream socket at ``path``.

    A stale socket file (nobody accepts on it) is removed first. A live
    one raises ``OSError(EADDRINUSE)``; a path that is not a socket raises
    ``FileExistsError``: we never delete what we did not create.
    """
    remove_stale_socket(path, socket.SOCK_STREAM)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(limits.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _add_traffic(totals: Dict[str, int], transport: StreamTransport, protocol: Any) -> None:
    totals["bytes_in"] += transport.bytes_received
    totals["bytes_out"] += transport.bytes_sent
    totals["frames_in"] += getattr(protocol, "frames_in", 0)
    totals["frames_out"] += getattr(protocol, "frames_out", 0)


def _open_spare_fd() -> Optional[int]:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None


def _describe(sock: socket.socket) -> str:
    try:
        return format_address(sock.getsockname())
    except OSError:
        return "a closed socket"
