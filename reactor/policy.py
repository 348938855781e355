"""Limits as plain data: every place bytes or connections pile up has a number here.

One frozen :class:`Limits` per server (or client) holds them all, with safe
defaults, so a reader can see in one screen what a connection may cost and
an operator can change any of it in one place. Nothing here does anything;
the transports and servers read these numbers where they enforce them.
"""

from dataclasses import dataclass, replace
from typing import Optional


@dataclass(frozen=True)
class Limits:
    """Per-server limits; defaults suit a public server on a small machine."""

    #: Above this many queued bytes the protocol is told ``pause_writing()``.
    high_water_bytes: int = 64 * 1024
    #: Below this many queued bytes the protocol is told ``resume_writing()``.
    low_water_bytes: int = 16 * 1024
    #: Size of the reused receive buffer; one recv_into() reads at most this.
    read_chunk_bytes: int = 64 * 1024
    #: Bytes read from one connection per readiness event before the loop
    #: moves on: one firehose connection cannot starve the others.
    max_read_per_event_bytes: int = 256 * 1024
    #: Connections accepted per readiness event of a listening socket.
    accept_batch: int = 64
    #: Open connections per server; beyond it new ones are accepted and
    #: closed at once (and counted). None: no limit but the fd limit.
    max_connections: Optional[int] = None
    #: The listen() backlog (the kernel caps it at net.core.somaxconn).
    backlog: int = 1024
    #: Pause before accepting again after the process ran out of fds.
    accept_backoff_seconds: float = 0.1
    #: Default connect timeout for clients (resolution + connect).
    connect_timeout_seconds: float = 10.0
    #: Datagrams read per readiness event of a datagram socket (fairness).
    datagrams_per_event: int = 64
    #: Bytes of datagrams waiting for a full socket buffer; beyond this,
    #: new datagrams are dropped and counted (a late datagram is worth less
    #: than a lost one, and the loop must never block).
    datagram_queue_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if not 0 <= self.low_water_bytes <= self.high_water_bytes:
            raise ValueError("need 0 <= low_water_bytes (%d) <= high_water_bytes (%d)"
                             % (self.low_water_bytes, self.high_water_bytes))
        for name in ("read_chunk_bytes", "max_read_per_event_bytes", "accept_batch", "backlog",
                     "datagrams_per_event", "datagram_queue_bytes"):
            if getattr(self, name) < 1:
                raise ValueError("%s must be >= 1, got %r" % (name, getattr(self, name)))
        if self.max_connections is not None and self.max_connections < 0:
            raise ValueError("max_connections must be >= 0 or None, got %r"
                             % (self.max_connections,))
        for name in ("accept_backoff_seconds", "connect_timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError("%s must be > 0, got %r" % (name, getattr(self, name)))

    def with_changes(self, **changes: object) -> "Limits":
        """Return a copy with some fields changed (validated again)."""
        return replace(self, **changes)


DEFAULT_LIMITS = Limits()


def water_marks(high: Optional[int] = None, low: Optional[int] = None) -> "tuple":
    """Return ``(high, low)`` with asyncio's defaults filled in, or raise ValueError.

    Defaults: high = 4 x low (64 KiB when both are None); low = high / 4.
    Raises ``ValueError`` unless 0 <= low <= high.
    """
    if high is None:
        high = 4 * low if low is not None else 64 * 1024
    if low is None:
        low = high // 4
    if not 0 <= low <= high:
        raise ValueError("need 0 <= low (%r) <= high (%r)" % (low, high))
    return high, low
