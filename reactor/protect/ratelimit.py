"""Token buckets: how fast a peer may send, as plain arithmetic on ``now``.

A bucket holds up to ``burst`` tokens and gains ``per_second`` of them
every second. Each received byte (or message) takes one. The classic
bucket refuses what it cannot pay for; a server cannot refuse bytes it has
already read, so ours lets the balance go *negative* (into debt) and says
how long the debt takes to repay::

    tokens:  burst ──take(n)──> burst - n ... ──take(more)──> -debt
    take() returns 0.0 while the balance is >= 0, else debt / per_second:
    the seconds the caller should stop reading for.

The guard (``guard.py``) takes tokens *before* the application sees
anything (``grant``): bytes and frames the buckets cannot pay for yet are
held back, reading stops until ``wait_for`` says they have refilled
("shape"), the kernel's receive buffer fills, TCP's window closes, and the
sender slows to exactly the rate without losing a byte. Over any interval T
the units delivered are at most ``burst + per_second * T``, plus one lease
(burst / 16) when the guard leases.

**One timestamp instead of a balance** (GCRA, the "generic cell rate
algorithm" of ATM networks, also behind redis-cell). Rather than the token
count and the time it was last updated, the bucket stores ``full_at``: the
time at which it will be full again. The two views are the same bucket::

    tokens(now) = burst - (full_at - now) * per_second      (at most burst)
    take(n):      full_at = max(full_at, now) + n / per_second
                  debt seconds = full_at - now - burst / per_second

so a charge is an addition, a ``max`` and a comparison, with no
multiplication or clamping: it runs once per read of every rate-limited
connection. Refilling on demand like this needs no timer per bucket.
"""

from typing import Optional, Sequence, Tuple

from ..policy import Rate

#: Debts shorter than this are float rounding (0.09 + 0.01 > 0.1), not debt.
ROUNDING_SECONDS = 1e-9


class TokenBucket:
    """A token bucket that may go into debt, kept as one timestamp (GCRA); time is handed in."""

    __slots__ = ("per_second", "burst", "seconds_per_token", "burst_seconds", "full_at")

    def __init__(self, rate: Rate, now: float) -> None:
        self.per_second = float(rate.per_second)
        self.burst = float(rate.burst)          # type: ignore[arg-type]  # set by Rate
        self.seconds_per_token = 1.0 / self.per_second
        #: How far ``full_at`` may run ahead of now before the balance goes negative.
        self.burst_seconds = self.burst / self.per_second
        self.full_at = now                      # a new bucket starts full

    def take(self, amount: float, now: float) -> float:
        """Spend ``amount`` tokens at time ``now``; return the seconds of debt (0.0 if none)."""
        full_at = self.full_at
        if full_at < now:
            full_at = now
        full_at += amount * self.seconds_per_token
        self.full_at = full_at
        debt_seconds = full_at - now - self.burst_seconds
        return debt_seconds if debt_seconds > ROUNDING_SECONDS else 0.0

    def tokens(self, now: float) -> float:
        """Return the balance at ``now`` (negative in debt, at most ``burst``)."""
        return self.burst - max(self.full_at - now, 0.0) * self.per_second

    def is_full(self, now: float) -> bool:
        """Tell whether the bucket has refilled completely by ``now``."""
        return self.full_at <= now

    def __repr__(self) -> str:
        return "<TokenBucket %.6g/s burst=%.6g full_at=%.6f>" % (
            self.per_second, self.burst, self.full_at)


def charge(buckets: Sequence[TokenBucket], amount: float, lease: float,
           now: float) -> Tuple[float, float]:
    """Charge ``amount`` to every bucket, then pre-pay up to ``lease`` more where all can.

    Returns ``(debt_seconds, leased)``: the longest debt among the buckets
    (0.0 if none), and the tokens pre-paid to every bucket, which the caller
    may spend later without charging again. A lease is only taken from
    tokens every bucket has, so it never puts a bucket into debt.

    Discussion: this is what keeps rate limits cheap on the hot path. A
    guard charging four buckets on every read paid ~0.5 us per read; with
    a lease, a read only subtracts from the guard's own credit, and the
    buckets are touched once per lease. The price, both bounded by the
    lease (a sixteenth of the burst, ``lease_size``): tokens leased by one
    connection are not available to its siblings sharing a per-address
    bucket until they are spent, returned (``refund``) or refilled; and a
    bucket refills to ``burst`` while a lease is still unspent, so a sender
    may get ``burst + lease`` through after an idle spell instead of
    ``burst``. The long-run rate is unchanged: every unit is paid for.
    """
    debt_seconds, available = 0.0, lease
    for token_bucket in buckets:
        ahead = token_bucket.full_at - now
        if ahead < 0.0:
            ahead = 0.0
        ahead += amount * token_bucket.seconds_per_token
        token_bucket.full_at = now + ahead
        over = ahead - token_bucket.burst_seconds
        if over > debt_seconds:
            debt_seconds = over
        spare_tokens = -over * token_bucket.per_second
        if spare_tokens < available:
            available = spare_tokens
    if debt_seconds <= ROUNDING_SECONDS:
        debt_seconds = 0.0
    if available <= 0.0:
        return debt_seconds, 0.0
    for token_bucket in buckets:
        token_bucket.full_at += available * token_bucket.seconds_per_token
    return debt_seconds, available


def grant(buckets: Sequence[TokenBucket], wanted: float, lease: float,
          now: float) -> Tuple[float, float]:
    """Take up to ``wanted`` units that every bucket can pay *now*, without debt; lease more.

    Returns ``(granted, leased)``: ``granted`` <= ``wanted`` units are spent,
    and up to ``lease`` more are pre-paid to the caller (see ``charge``).
    Unlike ``charge``, no bucket goes into debt: what cannot be paid is not
    taken, so the caller holds it back (bytes unread, frames undelivered)
    and asks again when ``wait_for`` says the buckets have refilled. This is
    how rates are enforced *before* the application sees anything.
    """
    available = wanted + lease
    for token_bucket in buckets:
        ahead = token_bucket.full_at - now
        tokens = token_bucket.burst - (ahead if ahead > 0.0 else 0.0) * token_bucket.per_second
        if tokens < available:
            available = tokens
    if available <= ROUNDING_SECONDS:
        return 0.0, 0.0
    for token_bucket in buckets:
        full_at = token_bucket.full_at
        if full_at < now:
            full_at = now
        token_bucket.full_at = full_at + available * token_bucket.seconds_per_token
    granted = wanted if available > wanted else available
    return granted, available - granted


def wait_for(buckets: Sequence[TokenBucket], amount: float, now: float) -> float:
    """Return the seconds until every bucket can pay ``amount`` units (0.0: now)."""
    wait = 0.0
    for token_bucket in buckets:
        ahead = token_bucket.full_at - now
        if ahead < 0.0:
            ahead = 0.0
        needed = ahead - token_bucket.burst_seconds + amount * token_bucket.seconds_per_token
        if needed > wait:
            wait = needed
    return wait


def refund(buckets: Sequence[TokenBucket], amount: float) -> None:
    """Give back ``amount`` unspent leased tokens to every bucket."""
    for token_bucket in buckets:
        token_bucket.full_at -= amount * token_bucket.seconds_per_token


def lease_size(buckets: Sequence[TokenBucket]) -> float:
    """Return how much to pre-pay at once: a sixteenth of the smallest burst."""
    return min(token_bucket.burst for token_bucket in buckets) / 16.0 if buckets else 0.0


def bucket(rate: Optional[Rate], now: float) -> Optional[TokenBucket]:
    """Return a full bucket for ``rate``, or None when there is no rate."""
    return TokenBucket(rate, now) if rate is not None else None
