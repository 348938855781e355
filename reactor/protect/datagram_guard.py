"""The datagram guard: allow/deny lists and per-source rates in front of a UDP server.

A UDP server has no connections to admit or close: every datagram arrives
on one socket, from whatever source address it claims. So its protections
are judged per datagram, by a :class:`DatagramGuard` between the
transport and the application's ``DatagramProtocol`` (a
``protocols.Layer``, like the stream ``Guard``)::

    DatagramTransport --datagram_received--> DatagramGuard --datagram_received--> app
                      <--------sendto-------               <--------sendto--------

    per datagram:  source host -> (filter verdict, client key)   a bounded cache
                   client key  -> its buckets                    SourceTable
                   denied, or over a rate: dropped and counted; else passed on

The numbers are the stream servers' ``Limits`` fields: ``allow``, ``deny``,
``ip_rate_bytes`` and ``ip_rate_messages`` (a datagram is one message),
counted per source address (IPv6: per ``ipv6_prefix_length`` network,
``admission.client_key``). Over a rate a datagram is *dropped*: shaping
(stop reading) would only delay everyone's datagrams behind the flooder's
in the kernel buffer, and a late datagram is worth less than a lost one.

**The rate test.** Each source keeps one timestamp per bucket, the time it
will be full again (GCRA; see ``ratelimit.py``). A datagram passes if its
source's buckets hold what it costs, or if they are full (so a datagram
larger than the byte burst still passes, into debt, rather than never). A
dropped datagram costs nothing: a source sending faster than its rate gets
exactly its rate through, not less. Over any interval T a source gets at
most ``burst + rate * T`` through, plus one datagram.

**A bounded table.** A spoofer can invent a new source per datagram, so the
table of sources is capped (``max_sources``). A source whose buckets are
full again is *settled*: forgetting it loses nothing, since a new record
would start full too. Each new source looks at the two oldest records:
settled ones are forgotten, the others go to the back of the queue (a
second chance, so one source in debt at the head cannot shield the settled
ones behind it). If the table is still full, the oldest record is forgotten
anyway and counted (``sources_evicted``): that source gets a fresh burst.
So memory is bounded whatever the attack, and a real flooder keeps its debt
unless spoofed sources fill the whole table within one refill time. An
``OrderedDict``, not a ``dict``, because taking the oldest of a ``dict``
scans the holes its deletions left (measured: 8 us per new source at 16,384
records, against 0.3 us).

Drops are counted in the transport's ``stats()`` (``dropped_filter``,
``dropped_rate``, ``sources``, ``sources_evicted``) and logged once per
episode, like the transport's own reflection drops.
"""

import collections
from typing import Any, Dict, Optional

from ..addresses import format_address
from ..datagrams import logger
from ..reflection import DropLog
from ..policy import Limits, Rate
from ..protocols import Layer
from .admission import AccessFilter, client_key
from .ratelimit import ROUNDING_SECONDS

#: Source records kept at most (about 250 bytes each with its key: ~4 MiB when full).
MAX_SOURCES = 16384
#: Source hosts whose filter verdict and key are cached (cleared when full).
HOST_CACHE_SIZE = 4096
#: A host's cache entry when the filter refuses it.
_DENIED = False

_DROP_REASONS = {"dropped_filter": "its source is not allowed (allow/deny lists)",
                 "dropped_rate": "its source sends faster than its rate limit"}


class DatagramGuard(Layer):
    """The allow/deny lists and per-source rates of one UDP server socket.

    ``counters`` is the transport's counter dict: the guard counts its
    drops there, so that ``transport.stats()`` shows them.
    """

    __slots__ = ("_filter", "_hosts", "_prefix_length", "_table", "_clock", "_counters",
                 "_drop_log")

    def __init__(self, loop: Any, app: Any, limits: Limits, counters: Dict[str, int],
                 max_sources: Optional[int] = None) -> None:
        super().__init__(loop, app)
        access = AccessFilter(limits.allow, limits.deny)
        self._filter: Optional[AccessFilter] = access if access else None
        #: source host -> its client key, or _DENIED
        self._hosts: Dict[str, Any] = {}
        self._prefix_length = limits.ipv6_prefix_length
        self._table: Optional[SourceTable] = None
        if limits.ip_rate_bytes or limits.ip_rate_messages:
            self._table = SourceTable(limits.ip_rate_bytes, limits.ip_rate_messages,
                                      MAX_SOURCES if max_sources is None else max_sources,
                                      counters)
        # The loop's clock function, read directly as the stream Guard does.
        self._clock = loop._clock
        self._counters = counters
        counters.update(dropped_filter=0, dropped_rate=0, sources=0, sources_evicted=0)
        self._drop_log = DropLog(limits.abuse_log_interval_seconds)

    # -- the transport's protocol face -----------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Take the transport, and show the app ourselves as its transport."""
        self._transport = transport
        self._app.connection_made(self)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """Pass the datagram on unless its source is denied or over its rate."""
        # Hot path: once per datagram. One cache lookup for the source's key
        # and verdict, one table lookup and two GCRA tests; nothing allocated.
        key = self._hosts.get(addr[0])
        if key is None:
            key = self._learn(addr[0])
        if key is _DENIED:
            self._dropped("dropped_filter", addr)
            return
        table = self._table
        if table is not None and not table.admit(key, len(data), self._clock()):
            self._dropped("dropped_rate", addr)
            return
        self._app.datagram_received(data, addr)

    def error_received(self, exc: OSError) -> None:
        """Pass a socket error on."""
        self._app.error_received(exc)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Pass the end on."""
        self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        """The send queue is full: pass it on."""
        self._app.pause_writing()

    def resume_writing(self) -> None:
        """The send queue drained: pass it on."""
        self._app.resume_writing()

    # -- the application's transport face -------------------------------------------

    def sendto(self, data: Any, addr: Any = None) -> None:
        """Send through: the guard judges what arrives, not what the app sends."""
        self._transport.sendto(data, addr)

    def close(self) -> None:
        """Close the socket after what is queued."""
        self._transport.close()

    def is_closing(self) -> bool:
        """Tell whether the socket is closing or closed."""
        return bool(self._transport.is_closing())

    def stats(self) -> Dict[str, int]:
        """Return the transport's counters, ours among them."""
        return self._transport.stats()  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return "<DatagramGuard %r>" % (self._transport,)

    # -- internals ---------------------------------------------------------------

    def _learn(self, host: str) -> Any:
        """Judge a host not in the cache: its client key, or _DENIED; cache the answer."""
        if self._filter is not None and not self._filter.allows(host):
            key = _DENIED
        else:
            key = host if ":" not in host else client_key(host, self._prefix_length)
        if len(self._hosts) >= HOST_CACHE_SIZE:
            self._hosts.clear()
        self._hosts[host] = key
        return key

    def _dropped(self, reason: str, addr: Any) -> None:
        self._counters[reason] += 1
        if self._drop_log.starts_episode(reason, self._clock()):
            logger.warning("dropping datagrams from %s on %s: %s; counting them in stats() as "
                           "%s (logged again after %g s without one)", format_address(addr),
                           format_address(self.get_extra_info("sockname")),
                           _DROP_REASONS[reason], reason, self._drop_log.quiet_seconds)


class SourceTable:
    """Per-source token buckets for bytes and messages, at most ``max_sources`` sources.

    ``admit(key, size, now)`` is the whole interface; ``counters`` gets the
    ``sources`` gauge and ``sources_evicted`` (see the module docstring).
    """

    __slots__ = ("max_sources", "_sources", "_seconds_per_byte", "_byte_burst_seconds",
                 "_seconds_per_message", "_message_burst_seconds", "_counters")

    def __init__(self, byte_rate: Optional[Rate], message_rate: Optional[Rate],
                 max_sources: int = MAX_SOURCES,
                 counters: Optional[Dict[str, int]] = None) -> None:
        if max_sources < 1:
            raise ValueError("max_sources must be >= 1, got %r" % (max_sources,))
        self.max_sources = max_sources
        #: client key -> _Source, oldest (or longest unexamined) first
        self._sources: "collections.OrderedDict[Any, _Source]" = collections.OrderedDict()
        # A kind without a rate costs 0 seconds per unit and never fills:
        # the same arithmetic serves both kinds, with no branch per datagram.
        self._seconds_per_byte, self._byte_burst_seconds = _shape(byte_rate)
        self._seconds_per_message, self._message_burst_seconds = _shape(message_rate)
        self._counters = counters if counters is not None else {}
        self._counters.update(sources=0, sources_evicted=0)

    def __len__(self) -> int:
        return len(self._sources)

    def admit(self, key: Any, size: int, now: float) -> bool:
        """Charge one datagram of ``size`` bytes from ``key`` at ``now``; tell if it may pass.

        A refused datagram charges nothing.
        """
        # Hot path: once per datagram of a rate-limited socket.
        source = self._sources.get(key)
        if source is None:
            source = self._add(key, now)
        bytes_from = source.bytes_full_at
        if bytes_from < now:
            bytes_from = now
        bytes_to = bytes_from + size * self._seconds_per_byte
        messages_from = source.messages_full_at
        if messages_from < now:
            messages_from = now
        messages_to = messages_from + self._seconds_per_message
        if ((bytes_to - now > self._byte_burst_seconds and bytes_from > now)
                or (messages_to - now > self._message_burst_seconds and messages_from > now)):
            return False
        source.bytes_full_at = bytes_to
        source.messages_full_at = messages_to
        return True

    def _add(self, key: Any, now: float) -> "_Source":
        """Make room (see the module docstring), then a full record for ``key``."""
        sources = self._sources
        for _ in range(2):
            if not sources:
                break
            oldest_key, oldest = sources.popitem(last=False)
            if oldest.bytes_full_at > now or oldest.messages_full_at > now:
                sources[oldest_key] = oldest            # still refilling: a second chance
        if len(sources) >= self.max_sources:
            sources.popitem(last=False)
            self._counters["sources_evicted"] += 1
        source = sources[key] = _Source(now)
        self._counters["sources"] = len(sources)
        return source


class _Source:
    """One source's buckets: the times they will be full again (GCRA)."""

    __slots__ = ("bytes_full_at", "messages_full_at")

    def __init__(self, now: float) -> None:
        self.bytes_full_at = now
        self.messages_full_at = now


def _shape(rate: Optional[Rate]) -> "tuple":
    """Return ``(seconds per unit, burst in seconds + rounding)`` for ``rate`` (None: no limit)."""
    if rate is None:
        return 0.0, float("inf")
    return 1.0 / rate.per_second, rate.burst / rate.per_second + ROUNDING_SECONDS
