"""Keep-alive for the HTTP client: idle connections kept per host, for the next request.

A connection whose response ended may carry another request, which saves a
TCP (and TLS) handshake: a round trip or two. The pool keeps such
connections idle, per key ``(scheme, host, port, TLS context)``, and hands
the newest one to the next request for that key (the newest is the least
likely to have been closed by the server meanwhile)::

    request ends --keep-alive, no stray bytes--> _release --> idle[key] (oldest first)
                 --Connection: close, until-close body, a 101--> not pooled
    next request --> _take(key) --> idle[key].pop() --peer closed?--> close it, try the next

A connection leaves the idle list when it is taken, when it has been idle
``idle_timeout_seconds``, when ``max_idle_per_host`` newer ones push it out
(the oldest goes), when the server closes it or sends bytes unasked, and
on ``close()``. Each idle connection has one timer (``call_later``).

The context is part of the key, so a request never rides on a connection
verified under a TLS context it did not ask for.

Discussion: the race with the server's idle timeout. A server closes idle
connections on its own clock (Apache after 5 s, nginx after 75 s), which a
client cannot know. Before reuse, ``_take`` asks the socket whether the
peer has closed, without reading (``transport.peer_has_closed()``, a
``MSG_PEEK``). What is left of the race shows as a connection that closes
with no response byte; the request then retries once on a fresh connection
if its method is idempotent (``client.py``; urllib3 and browsers do the
same). A POST is not retried: the server may have run it.

:class:`ClientConnection` is the protocol of each connection. While a
request owns it, it passes everything to that request through three calls:
``_connected(connection)``, ``_data_received(data)`` and
``_connection_ended(exc)``; a closing pool calls ``_pool_closed()``.
"""

import logging
import ssl as _ssl
import weakref
from typing import Any, Dict, List, Optional, Set, Tuple

from ..protocols import Protocol

__all__ = ["ConnectionPool", "ClientConnection", "default_pool",
           "DEFAULT_MAX_IDLE_PER_HOST", "DEFAULT_IDLE_TIMEOUT_SECONDS"]

logger = logging.getLogger("reactor")

DEFAULT_MAX_IDLE_PER_HOST = 8
DEFAULT_IDLE_TIMEOUT_SECONDS = 30.0

_DEFAULT_POOLS: "weakref.WeakValueDictionary[int, ConnectionPool]" = weakref.WeakValueDictionary()


def default_pool(loop: Any) -> "ConnectionPool":
    """Return ``loop``'s default pool (a new one if there is none, or it was closed).

    The pool lives while anything holds it: a request, an idle connection, or
    you. One that holds nothing is freed, and the next call makes another.
    """
    # Keyed by id(loop): a live pool holds its loop, so the id cannot be reused
    # while the entry exists, and the weak value frees a pool nobody uses.
    pool = _DEFAULT_POOLS.get(id(loop))
    if pool is None or pool.closed or pool.loop is not loop:
        pool = _DEFAULT_POOLS[id(loop)] = ConnectionPool(loop)
    return pool


class ConnectionPool:
    """Idle keep-alive connections of one loop, per (scheme, host, port, TLS context).

    At most ``max_idle_per_host`` idle connections per key (0: none are
    kept); each closes after ``idle_timeout_seconds`` unused. ``close()``
    closes the idle connections and fails the requests in flight; requests
    made with a closed pool fail too. Not thread-safe: use it on its loop.
    """

    __slots__ = ("loop", "max_idle_per_host", "idle_timeout_seconds", "_idle", "_requests",
                 "_closed", "_default_tls", "__weakref__")

    def __init__(self, loop: Any, *, max_idle_per_host: int = DEFAULT_MAX_IDLE_PER_HOST,
                 idle_timeout_seconds: float = DEFAULT_IDLE_TIMEOUT_SECONDS) -> None:
        if type(max_idle_per_host) is not int or max_idle_per_host < 0 \
                or not 0 < idle_timeout_seconds < 1e9:
            raise ValueError("ConnectionPool: max_idle_per_host must be an int >= 0 and "
                             "idle_timeout_seconds a positive number of seconds")
        self.loop, self.max_idle_per_host = loop, max_idle_per_host
        self.idle_timeout_seconds = idle_timeout_seconds
        self._idle: Dict[Tuple[Any, ...], List[ClientConnection]] = {}   # oldest first
        self._requests: Set[Any] = set()      # in flight; client.py adds and discards
        self._closed = False
        self._default_tls: Optional[_ssl.SSLContext] = None

    @property
    def closed(self) -> bool:
        """Tell whether ``close()`` was called."""
        return self._closed

    @property
    def idle_connections(self) -> int:
        """Return how many connections wait idle for reuse, over every key."""
        return sum(len(idle) for idle in self._idle.values())

    def close(self) -> None:
        """Close every idle connection and fail the requests in flight; idempotent."""
        self._closed = True
        for request in list(self._requests):
            request._pool_closed()
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def tls_context(self, ssl: Any) -> _ssl.SSLContext:
        """Return ``ssl`` (an ``SSLContext``), or for None the pool's default context.

        The default is ``ssl.create_default_context()`` (the system's CAs, host
        names checked), made once per pool: loading the CAs takes milliseconds.
        """
        if isinstance(ssl, _ssl.SSLContext):
            return ssl
        if ssl is not None:
            raise TypeError("http_request: ssl= takes an ssl.SSLContext, got %r" % (ssl,))
        if self._default_tls is None:
            self._default_tls = _ssl.create_default_context()
        return self._default_tls

    # -- the client's calls ---------------------------------------------------------

    def _take(self, key: Tuple[Any, ...]) -> "Optional[ClientConnection]":
        """Return the newest idle connection for ``key`` that the server has not closed."""
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            connection.idle_timer.cancel()
            connection.idle_timer = None
            transport = connection.transport
            if not transport.is_closing() and not transport.peer_has_closed():
                return connection
            connection.close()
        return None

    def _release(self, connection: "ClientConnection") -> None:
        """Keep a connection whose response ended, for the next request to its key."""
        if self._closed or self.max_idle_per_host == 0 or connection.transport.is_closing():
            connection.close()
            return
        idle = self._idle.setdefault(connection.key, [])
        if len(idle) >= self.max_idle_per_host:
            idle.pop(0).close()
        connection.idle_timer = self.loop.call_later(self.idle_timeout_seconds,
                                                     connection.close)
        idle.append(connection)

    def _forget(self, connection: "ClientConnection") -> None:
        """Drop a closed connection from its idle list (O(idle connections of its key))."""
        idle = self._idle.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)
            connection.idle_timer.cancel()


class ClientConnection(Protocol):
    """One client connection: passes bytes to the request that owns it, or waits idle."""

    __slots__ = ("pool", "key", "request", "idle_timer", "requests", "upgraded")

    def __init__(self, pool: ConnectionPool, key: Tuple[Any, ...], request: Any) -> None:
        self.pool, self.key, self.request = pool, key, request
        self.idle_timer: Any = None       # set while idle in the pool
        self.requests = 0                 # requests sent on this connection so far
        self.upgraded = False             # handed over after a 101: no longer ours

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.request._connected(self)

    def data_received(self, data: bytes) -> None:
        # Hot path: one test and one call per chunk read.
        request = self.request
        if request is not None:
            request._data_received(data)
            return
        if self.upgraded:
            logger.warning("%s: bytes after a 101 reached the HTTP client; on_upgrade must "
                           "call transport.set_protocol()", self.key[1])
        self.pool._forget(self)           # idle: a server may not speak unasked
        self.transport.abort()

    def eof_received(self) -> bool:
        self._ended(None)
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._ended(exc)
        self.pool._forget(self)

    def close(self) -> None:
        """Close it (idle, or not reusable); the pool forgets it in ``connection_lost``."""
        if self.idle_timer is not None:
            self.idle_timer.cancel()
        self.transport.close()

    def _ended(self, exc: Optional[BaseException]) -> None:
        request, self.request = self.request, None
        if request is not None:
            request._connection_ended(exc)
