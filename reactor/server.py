"""Servers: the connections a set of listening sockets accepts, and their life.

Accepting itself, bounded batches and running out of file descriptors,
lives in ``accept.py``; a server takes each accepted connection from there:

* **Admission**, right after ``accept()`` and before any protocol code
  runs: a connection over ``max_connections`` is closed at once and
  counted; nobody waits in a backlog for a server that will not serve them.
  When the ``Limits`` or ``auth`` ask for protections (allow/deny lists,
  per-IP caps, timeouts, rates, auth), the protections wing decides too
  (``protect/admission.py``), and puts a ``Guard`` between the connection
  and its protocol.

The stack of one connection, bottom to top; the application writes to the
top, and that is also what ``connections()`` returns and ``shutdown()``
closes (so a TLS connection ends with close_notify, never with a cut)::

    StreamTransport  [TLSTransport]  [Guard]  application protocol

Every refusal and every close for a reason (``close_with_error``) is
counted in ``stats()`` under ``rejected_<reason>`` and logged through the
protections' ``AbuseLog``: at most one line per reason per interval plus a
summary, so an attack cannot flood the log. An exception from a protocol
callback is counted under ``callback_errors``.

Shutdown: ``close()`` stops listening and leaves connections alone.
``shutdown(grace)`` *drains*, as nginx and HAProxy do: it stops accepting,
then goes on serving every open connection, reads and writes both, until
its peer closes or ``grace`` seconds have passed; only then is what is left
closed, with a logged reason. A long-lived connection keeps working through
a graceful reload (``workers.py``)::

    shutdown(grace)   stop accepting; tell each protocol with shutdown_requested()
      ... serve on: connections end when their peers (or protocols) close them
    grace over        close what is left at the top of its stack, logged
                      (queued bytes flushed, TLS close_notify sent)
    + CLOSE_LINGER_SECONDS   abort what has still not closed (a peer that never reads)
    no connection left       on_done()

Discussion: flushing and closing everything at once is quicker, and cuts
every chat session and WebSocket that a reload should have carried over.
A protocol that can finish sooner says so in ``shutdown_requested()``:
HTTP closes idle keep-alive connections and finishes the answer under way;
WebSocket sends Close 1001; chat tells its members the server is restarting.
"""

import logging
import socket
import ssl
from typing import Any, Callable, Dict, List, Optional, Tuple

from .accept import Acceptor, describe_socket
from .addresses import format_address
from .buffers import InputBudget
from .errors import ProtectionError, ProtectionsUnavailableError
from .policy import DEFAULT_LIMITS, Limits
from .sockets import inode, unlink_if_ours
from .streams import StreamTransport
from .tls import DEFAULT_HANDSHAKE_TIMEOUT, TLSTransport, describe_tls_error

try:
    from . import protect
except ImportError:          # a vendored copy without reactor/protect/: plain servers only
    protect = None  # type: ignore[assignment]

logger = logging.getLogger("reactor")

#: Every reason a server may refuse or close a connection, in display order.
#: After the grace, how long a closing connection may take to flush before it is aborted.
CLOSE_LINGER_SECONDS = 0.5
#: Every reason a server may refuse or close a connection, in display order.
REJECTION_REASONS = ("filter", "max_connections", "per_ip", "out_of_fds", "tls_handshake",
                     "tls", "auth", "timeout", "framing", "input_budget", "rate",
                     "slow_consumer")


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
        #: open connection (its StreamTransport) -> (the top of its stack,
        #: its application protocol, its client's record)
        self._connections: Dict[StreamTransport, Tuple[Any, Any, Any]] = {}
        self._counters: Dict[str, int] = {
            "accepted": 0, "peak_connections": 0, "out_of_fds_episodes": 0,
            "closed_at_grace": 0, "aborted_at_shutdown": 0, "callback_errors": 0,
            # traffic of connections already closed (stats() adds the open ones')
            "bytes_in": 0, "bytes_out": 0, "frames_in": 0, "frames_out": 0,
            "rate_pauses": 0,
        }
        for reason in REJECTION_REASONS:
            self._counters["rejected_" + reason] = 0
        asked = limits.protections_asked() + (["auth"] if auth is not None else [])
        if asked and protect is None:
            raise ProtectionsUnavailableError(
                "%s need reactor/protect/, which this copy of reactor does not have"
                % ", ".join(asked))
        self._admission = (protect.Admission(loop, limits, auth, self._counters)
                           if asked else None)
        self._abuse = (protect.AbuseLog(limits.abuse_log_interval_seconds)
                       if protect is not None else None)
        self._abuse_timer: Any = None
        #: Bytes held in partial frames and rate-held input, across connections.
        self.input_budget = (InputBudget(limits.max_buffered_input_bytes)
                             if limits.max_buffered_input_bytes else None)
        self._closed = False
        self._draining = False
        self._shutdown_timer: Any = None
        self._on_shutdown: Optional[Callable[[], None]] = None
        self._acceptor = Acceptor(loop, self.sockets, limits, self._start_connection,
                                  self._counters)

    def __len__(self) -> int:
        return len(self._connections)

    @property
    def addresses(self) -> List[Any]:
        """Return the bound addresses (``(host, port, ...)`` tuples or Unix paths); [] once closed."""
        if self._closed:
            return []
        return [sock.getsockname() for sock in self.sockets]

    def connections(self) -> List[Any]:
        """Return the transports the applications of the open connections write to (a copy).

        That is the top of each stack: the ``TLSTransport`` of a TLS
        connection, the ``Guard`` of a protected one, else the
        ``StreamTransport``. Writing to them is writing as the application.
        """
        return [top for top, _, _ in self._connections.values()]

    def stats(self) -> Dict[str, int]:
        """Return counters: open, peak and accepted connections, rejections by reason,
        and bytes and frames in and out (TLS: bytes on the wire, encrypted).

        Costs O(open connections): the traffic of open connections is summed
        here rather than counted centrally on every read.
        """
        stats = dict(self._counters, connections=len(self._connections),
                     clients=0, clients_resting=0)
        if self._admission is not None:
            stats.update(self._admission.stats())
        for transport, (_, app, _) in self._connections.items():
            _add_traffic(stats, transport, app)
        return stats

    def log_stats(self) -> None:
        """Log one line of ``stats()`` (the CLI does it every ``--stats-interval`` and on SIGUSR1)."""
        logger.info("stats %s: %s", ", ".join(describe_socket(s) for s in self.sockets) or "closed",
                    format_stats(self.stats()))

    def is_serving(self) -> bool:
        """Tell whether the server still accepts connections."""
        return not self._closed

    def close(self) -> None:
        """Stop listening and release the listening sockets; open connections stay. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._acceptor.close()
        if self._abuse_timer is not None:
            self._abuse_timer.cancel()
            self._abuse_timer = None
        if self._abuse is not None:
            self._abuse.flush(float("inf"))
        if self._unix_path:
            unlink_if_ours(self._unix_path, self._unix_inode)   # never someone else's file

    def shutdown(self, grace_seconds: float = 5.0,
                 on_done: Optional[Callable[[], None]] = None) -> None:
        """Stop accepting and drain: serve open connections until they close or the grace ends.

        An application protocol with a ``shutdown_requested()`` method is
        told at once, and may finish sooner in its own way; the others are
        left alone. When ``grace_seconds`` have passed, each connection
        still open is closed at the top of its stack, as its application
        would close it (queued bytes flushed, TLS close_notify), counted in
        ``closed_at_grace`` and logged; one still open
        ``CLOSE_LINGER_SECONDS`` later is aborted (``aborted_at_shutdown``).
        ``on_done()`` runs (as a loop callback) once no connection is left.
        """
        self.close()
        self._draining = True
        self._on_shutdown = on_done
        for top, app, _ in list(self._connections.values()):
            finish = getattr(app, "shutdown_requested", None)
            if finish is not None:
                top.run_protected(finish)
        if self._connections:
            self._shutdown_timer = self._loop.call_later(grace_seconds, self._grace_over,
                                                         grace_seconds)
        else:
            self._finish_shutdown()

    # -- called by transports and listeners ---------------------------------

    def connection_closed(self, transport: StreamTransport) -> None:
        """Forget a closed connection (called by its transport, once)."""
        entry = self._connections.pop(transport, None)
        if self.input_budget is not None:
            self.input_budget.forget(transport)
        if entry is not None:
            _, app, client = entry
            _add_traffic(self._counters, transport, app)
            if self._admission is not None:
                self._admission.closed(client)
        if not self._connections and self._draining:
            self._finish_shutdown()

    def callback_failed(self, transport: Any, exc: BaseException) -> None:
        """Count a connection whose protocol raised (the transport logged it and ends it)."""
        self._counters["callback_errors"] += 1

    def report_closing(self, transport: Any, exc: BaseException) -> None:
        """Count and log (rate-limited) a connection closed for a reason (by ``close_with_error``)."""
        reason = getattr(exc, "reason", "protection")
        self._reject(reason, transport.get_extra_info("peername"), exc)

    # -- internals ------------------------------------------------------------

    def _start_connection(self, conn: socket.socket, address: Any) -> None:
        """Admit one accepted connection, build its stack, and start it."""
        max_connections = self._limits.max_connections
        if max_connections is not None and len(self._connections) >= max_connections:
            conn.close()
            refusal = ProtectionError("%d connections open, the server's limit" % max_connections)
            self._reject("max_connections", address, refusal)
            return
        admission = self._admission
        client = None
        if admission is not None:
            try:
                client = admission.admit(address)
            except ProtectionError as refusal:
                conn.close()
                self._reject(refusal.reason, address, refusal)
                return
        conn.setblocking(False)
        if self._tcp_nodelay:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            app = self._factory()
        except Exception as exc:
            self._loop._report(exc, self._factory, "protocol factory")
            conn.close()
            if admission is not None:
                admission.closed(client)
            return
        # Build the stack from the top down; ``top`` is what the app writes to.
        protocol = app if admission is None else admission.wrap(app, client)
        top = protocol if protocol is not app else None
        if self._ssl_context is not None:
            protocol = TLSTransport(self._loop, self._ssl_context, protocol, server_side=True,
                                    handshake_timeout=self._ssl_handshake_timeout,
                                    on_handshake_error=self._tls_failed_for(address))
            top = top or protocol
        transport = StreamTransport(self._loop, conn, protocol, address, self, self._limits)
        self._connections[transport] = (top or transport, app, client)
        counters = self._counters
        counters["accepted"] += 1
        if len(self._connections) > counters["peak_connections"]:
            counters["peak_connections"] = len(self._connections)
        transport.start()

    def _tls_failed_for(self, address: Any) -> Callable[[BaseException], None]:
        def tls_failed(exc: BaseException) -> None:
            self._reject("tls_handshake", address, describe_tls_error(exc))
        return tls_failed

    def _reject(self, reason: str, address: Any, why: Any) -> None:
        """Count a refusal or a close for ``reason``; log it through the rate-limited abuse log."""
        self._counters["rejected_" + reason] = self._counters.get("rejected_" + reason, 0) + 1
        peer = format_address(address)
        if self._abuse is None:
            logger.warning("closing connection from %s (%s): %s", peer, reason, why)
            return
        self._abuse.record(reason, protect.client_key(address, self._limits.ipv6_prefix_length),
                           self._loop.time(), "closing connection from %s (%s): %s",
                           peer, reason, why)
        if (self._abuse_timer is None and not self._closed
                and self._abuse.next_flush() is not None):
            self._abuse_timer = self._loop.call_at(self._abuse.next_flush(), self._flush_abuse)

    def _flush_abuse(self) -> None:
        self._abuse_timer = None
        self._abuse.flush(self._loop.time())
        due = self._abuse.next_flush()
        if due is not None and not self._closed:
            self._abuse_timer = self._loop.call_at(due, self._flush_abuse)

    def _grace_over(self, grace_seconds: float) -> None:
        remaining = self.connections()
        logger.info("grace of %g s over: closing %d connection(s) still open",
                    grace_seconds, len(remaining))
        self._counters["closed_at_grace"] += len(remaining)
        for top in remaining:
            top.close()
        self._shutdown_timer = (self._loop.call_later(CLOSE_LINGER_SECONDS, self._abort_remaining)
                                if self._connections else None)

    def _abort_remaining(self) -> None:
        self._shutdown_timer = None
        for top in self.connections():
            self._counters["aborted_at_shutdown"] += 1
            top.abort()

    def _finish_shutdown(self) -> None:
        self._draining = False
        if self._shutdown_timer is not None:
            self._shutdown_timer.cancel()
            self._shutdown_timer = None
        on_done, self._on_shutdown = self._on_shutdown, None
        if on_done is not None:
            self._loop.call_soon(on_done)

    def __repr__(self) -> str:
        return "<Server %s connections=%d%s>" % (
            ", ".join(describe_socket(s) for s in self.sockets) or "closed",
            len(self._connections), " closed" if self._closed else "")


def format_stats(stats: Dict[str, int]) -> str:
    """Render ``Server.stats()`` as one log line: totals first, then non-zero rejections."""
    head = ("connections=%d peak=%d accepted=%d bytes_in=%d bytes_out=%d "
            "frames_in=%d frames_out=%d" % tuple(
                stats.get(key, 0) for key in ("connections", "peak_connections", "accepted",
                                              "bytes_in", "bytes_out", "frames_in",
                                              "frames_out")))
    rejected: List[str] = ["%s=%d" % (reason, stats["rejected_" + reason])
                           for reason in REJECTION_REASONS if stats.get("rejected_" + reason)]
    shaped = " rate_pauses=%d" % stats["rate_pauses"] if stats.get("rate_pauses") else ""
    return head + shaped + (" rejected: " + " ".join(rejected) if rejected else " rejected: none")


def _add_traffic(totals: Dict[str, int], transport: StreamTransport, protocol: Any) -> None:
    totals["bytes_in"] += transport.bytes_received
    totals["bytes_out"] += transport.bytes_sent
    totals["frames_in"] += getattr(protocol, "frames_in", 0)
    totals["frames_out"] += getattr(protocol, "frames_out", 0)
