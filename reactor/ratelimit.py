"""Token buckets: how fast a peer may send, as plain arithmetic on ``now``.

A bucket holds up to ``burst`` tokens and gains ``per_second`` of them
every second. Each received byte (or message) takes one. The classic
bucket refuses what it cannot pay for; a server cannot refuse bytes it has
already read, so ours lets the balance go *negative* (into debt) and says
how long the debt takes to repay::

    tokens:  burst ──take(n)──> burst - n ... ──take(more)──> -debt
    take() returns 0.0 while the balance is >= 0, else debt / per_second:
    the seconds the caller should stop reading for.

The guard (``guard.py``) calls ``take`` after each read and, in debt, stops
reading for that long ("shape"): the kernel's receive buffer fills, TCP's
window closes, and the sender slows to exactly the rate without losing a
byte. Over any interval T the bytes delivered are at most
``burst + per_second * T`` plus one read (the read that went into debt).

Discussion: refilling on demand, from the time since the last ``take``,
costs two multiplications per read and no timer; a timer per bucket that
adds tokens every tick would cost a callback per connection per tick.
"""

from typing import Optional

from .policy import Rate


class TokenBucket:
    """A token bucket that may go into debt; time is handed in, never read."""

    __slots__ = ("per_second", "burst", "tokens", "updated")

    def __init__(self, rate: Rate, now: float) -> None:
        self.per_second = float(rate.per_second)
        self.burst = float(rate.burst)          # type: ignore[arg-type]  # set by Rate
        self.tokens = self.burst                # a new bucket starts full
        self.updated = now

    def take(self, amount: float, now: float) -> float:
        """Spend ``amount`` tokens at time ``now``; return the seconds of debt (0.0 if none)."""
        # Hot path: once per read of a rate-limited connection.
        tokens = self.tokens + (now - self.updated) * self.per_second
        if tokens > self.burst:
            tokens = self.burst
        tokens -= amount
        self.tokens = tokens
        self.updated = now
        return 0.0 if tokens >= 0.0 else -tokens / self.per_second

    def is_full(self, now: float) -> bool:
        """Tell whether the bucket has refilled completely by ``now``."""
        return self.tokens + (now - self.updated) * self.per_second >= self.burst

    def __repr__(self) -> str:
        return "<TokenBucket %.6g/s burst=%.6g tokens=%.6g>" % (
            self.per_second, self.burst, self.tokens)


def bucket(rate: Optional[Rate], now: float) -> Optional[TokenBucket]:
    """Return a full bucket for ``rate``, or None when there is no rate."""
    return TokenBucket(rate, now) if rate is not None else None
