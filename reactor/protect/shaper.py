"""The shaper: one connection's rate limits, charged before the application sees anything.

A guard (``guard.py``) with rates in its ``Limits`` owns a :class:`Shaper`.
It holds the connection's token buckets and its client address's (shared
by all the connections of that address, ``admission.ClientRecord``), in
bytes and in messages (frames; reads, for a raw protocol), and decides for
each read how much may go through *now*::

    read --admit_bytes--> bytes the buckets can pay --> the app
                      \\--> the rest held back, reading held (HOLD_RATE)
    frames --admit_frames (the framed protocol's gate)--> the frames paid for
                      \\--> the rest wait in the framed protocol's backlog
    timer: the buckets can pay again --> release what waits, read again

Nothing is delivered before it is paid for (``ratelimit.grant``), so over
any interval T the app gets at most ``burst + rate * T`` units (plus one
lease, a sixteenth of the burst), however the peer splits, pipelines or
reconnects: a new connection from an address whose bucket is empty starts
with reading held, and a ``/quit`` in the middle of a burst cannot leave
the burst unpaid. With ``rate_action="disconnect"`` the first unit that
cannot be paid closes the connection (``RateLimitError``) instead.

While held, a connection still has its peer watched: a closed or reset peer
is noticed within ``PROBE_SECONDS`` (the loop cannot see a FIN on a socket
it does not read), and held input counts against the server's input
budget. A connection held with no progress at all for
``Limits.max_rate_debt_seconds`` is closed (``RateLimitError``): shaped, not
queued for ever, and so is one whose waiting input would take longer than
that to pay for. The guard's idle timeout applies too: no progress is idle.
"""

from typing import Any, Dict, Optional

from ..errors import RateLimitError
from ..policy import Limits
from ..protocols import HOLD_RATE
from .ratelimit import bucket, grant, lease_size, refund, wait_for

#: How often a held connection checks that its peer is still there.
PROBE_SECONDS = 1.0
#: The shortest wait before trying the buckets again (a timer per wait).
MIN_WAIT_SECONDS = 0.001
_INF = float("inf")


class Shaper:
    """One connection's byte and message rates; see the module docstring.

    ``deliver(data)`` hands held-back bytes to the app (the guard's own
    delivery); ``framed_app`` is the framed protocol whose backlog
    ``deliver_frames()`` continues once frames are paid for (or None).
    ``held``, ``byte_credit``, ``message_credit`` and ``read_cost`` are
    public because the guard tests them inline, once per read.
    """

    __slots__ = ("_loop", "_clock", "_transport", "_deliver", "_byte_buckets",
                 "_message_buckets", "_byte_lease", "_message_lease", "byte_credit",
                 "message_credit", "read_cost", "_disconnect", "_max_hold_seconds",
                 "held", "_frames_waiting", "_framed_app", "_timer", "_holding",
                 "_hold_since", "_report_held", "_counters")

    def __init__(self, loop: Any, limits: Limits, client: Any, counters: Optional[Dict[str, int]],
                 now: float) -> None:
        self._loop = loop
        self._clock = loop._clock
        self._transport: Any = None
        self._deliver: Any = None
        byte_buckets = [bucket(limits.rate_bytes, now)]
        message_buckets = [bucket(limits.rate_messages, now)]
        if client is not None:
            byte_buckets.append(client.bytes_bucket)
            message_buckets.append(client.messages_bucket)
        self._byte_buckets = tuple(b for b in byte_buckets if b is not None)
        self._message_buckets = tuple(b for b in message_buckets if b is not None)
        # Tokens already paid to every bucket and not yet spent (ratelimit.grant
        # leases them); infinite for a kind with no bucket.
        self._byte_lease = lease_size(self._byte_buckets)
        self._message_lease = lease_size(self._message_buckets)
        self.byte_credit = 0.0 if self._byte_buckets else _INF
        self.message_credit = 0.0 if self._message_buckets else _INF
        #: Messages one read costs: 1 for a raw app with a message rate, else 0
        #: (a framed app's frames are charged by its gate).
        self.read_cost = 0.0
        self._disconnect = limits.rate_action == "disconnect"
        self._max_hold_seconds = limits.max_rate_debt_seconds
        self.held: Optional[bytearray] = None  # bytes read and not yet paid for
        self._frames_waiting = False            # the framed app's gate refused frames
        self._framed_app: Any = None
        self._timer: Any = None
        self._holding = False
        self._hold_since = 0.0
        self._report_held: Any = None
        self._counters = counters

    def start(self, transport: Any, deliver: Any, framed_app: Any, now: float) -> None:
        """Begin shaping ``transport``'s input; hold reading at once if nothing can be paid."""
        self._transport = transport
        self._deliver = deliver
        self._report_held = transport.get_extra_info("input_budget")
        self.set_app(framed_app)
        if wait_for(self._byte_buckets + self._message_buckets, 1.0, now) > 0.0:
            self._hold(now)                     # a client in debt starts held

    def set_app(self, framed_app: Any) -> None:
        """Shape ``framed_app``'s frames with its gate, or count reads as messages."""
        self._framed_app = framed_app
        if framed_app is not None and self._message_buckets:
            framed_app.frame_gate = self.admit_frames
        self.read_cost = 1.0 if framed_app is None and self._message_buckets else 0.0

    def admit_bytes(self, data: bytes, now: float) -> bool:
        """Charge a read the leased credit does not cover; True if it may all go now.

        (The guard first tests the credit itself.) One grant from the buckets
        renews the lease; what they cannot pay for is held back.
        """
        size = len(data)
        if self.held is None:
            if self.byte_credit < size:
                granted, leased = grant(self._byte_buckets, size - self.byte_credit,
                                        self._byte_lease, now)
                self.byte_credit += granted + leased
            if self.message_credit < self.read_cost:
                granted, leased = grant(self._message_buckets,
                                        self.read_cost - self.message_credit,
                                        self._message_lease, now)
                self.message_credit += granted + leased
            if self.byte_credit >= size and self.message_credit >= self.read_cost:
                self.byte_credit -= size
                self.message_credit -= self.read_cost
                return True
            self.held = bytearray(data)
        else:
            self.held += data
        self._release(now)
        return False

    def admit_frames(self, wanted: int) -> int:
        """The framed app's gate: how many of ``wanted`` frames are paid for now."""
        credit = self.message_credit
        if credit >= wanted:
            self.message_credit = credit - wanted
            return wanted
        now = self._clock()
        granted, leased = grant(self._message_buckets, wanted - credit, self._message_lease, now)
        credit += granted + leased
        admitted = min(wanted, int(credit))
        self.message_credit = credit - admitted
        if admitted < wanted:
            self._frames_waiting = True
            self._over_rate("messages", now)
        return admitted

    def close(self) -> None:
        """The connection ended: stop the timer, give leased tokens back to the siblings."""
        if self._timer is not None:
            self._timer.cancel()
        if 0.0 < self.byte_credit < _INF:
            refund(self._byte_buckets, self.byte_credit)
        if 0.0 < self.message_credit < _INF:
            refund(self._message_buckets, self.message_credit)
        self.byte_credit = self.message_credit = 0.0
        self.held = None

    def describe(self) -> str:
        """Say which rates apply, for log lines."""
        return ", ".join(["%.6g bytes/s" % b.per_second for b in self._byte_buckets] +
                         ["%.6g messages/s" % b.per_second for b in self._message_buckets])

    # -- internals ---------------------------------------------------------------

    def _release(self, now: float) -> None:
        """Hand over the held bytes the buckets can pay for; hold reading for the rest."""
        held = self.held
        while held:
            if self.byte_credit < len(held):
                granted, leased = grant(self._byte_buckets, len(held) - self.byte_credit,
                                        self._byte_lease, now)
                self.byte_credit += granted + leased
            size = min(len(held), int(self.byte_credit))
            if self.read_cost and size:
                if self.message_credit < 1.0:
                    granted, leased = grant(self._message_buckets, 1.0 - self.message_credit,
                                            self._message_lease, now)
                    self.message_credit += granted + leased
                if self.message_credit < 1.0:
                    size = 0
                else:
                    self.message_credit -= 1.0
            if not size:
                self._over_rate("bytes", now)
                return
            self.byte_credit -= size
            chunk = bytes(held[:size])
            del held[:size]
            self._hold_since = now
            self._deliver(chunk)
            if self.held is None or self._transport.is_closing():
                return
        self.held = None
        self._report(0)
        self._unhold()

    def _over_rate(self, kind: str, now: float) -> None:
        """Something waits for credit: disconnect, or hold reading until the buckets refill.

        A connection whose waiting input would take longer than
        ``max_rate_debt_seconds`` to pay for (65,536 empty lines in one read
        at 1 message/s) is closed rather than queued for hours.
        """
        if self._disconnect:
            self._transport.close_with_error(RateLimitError(
                "sent faster than the rate limit (%s)" % self.describe()), flush=False)
            return
        debt = 0.0
        if self.held is not None:
            self._report(len(self.held))
            debt = wait_for(self._byte_buckets, len(self.held), now)
        if self._frames_waiting:
            debt = max(debt, wait_for(self._message_buckets,
                                      self._framed_app.frames_waiting(), now))
        if debt > self._max_hold_seconds:
            self._transport.close_with_error(RateLimitError(
                "%.3g s of input over the rate (%s) held back, more than the %.3g s allowed"
                % (debt, self.describe(), self._max_hold_seconds)), flush=False)
            return
        self._hold(now)

    def _hold(self, now: float) -> None:
        if not self._holding:
            self._holding = True
            self._hold_since = now
            self._transport.hold_reading(HOLD_RATE)
            if self._counters is not None:
                self._counters["rate_pauses"] = self._counters.get("rate_pauses", 0) + 1
        buckets = self._byte_buckets if self.held else ()
        if self._frames_waiting:
            buckets += self._message_buckets
        wait = wait_for(buckets or self._byte_buckets + self._message_buckets, 1.0, now)
        wait = min(max(wait, MIN_WAIT_SECONDS), PROBE_SECONDS)
        if self._timer is None:
            self._timer = self._loop.call_later(wait, self._retry)
        else:
            self._timer.reset(wait)

    def _unhold(self) -> None:
        if self._holding and not self._frames_waiting and self.held is None:
            self._holding = False
            self._transport.release_reading(HOLD_RATE)

    def _retry(self) -> None:
        """The wait is over (or it is time to check on the peer): release what the buckets pay."""
        transport = self._transport
        if transport.is_closing() or not self._holding:
            return
        now = self._clock()
        if transport.peer_has_closed():
            transport.close_with_error(RateLimitError(
                "the peer left while its input was held back by the rate limit (%s); the "
                "input over the rate is dropped" % self.describe()), flush=False)
            return
        if now - self._hold_since > self._max_hold_seconds:
            transport.close_with_error(RateLimitError(
                "held for %.3g s with no input paid for by its rate (%s)"
                % (now - self._hold_since, self.describe())), flush=False)
            return
        if self.held is not None:
            self._release(now)
            if self.held is not None or transport.is_closing():
                return
        if self._frames_waiting:
            self._frames_waiting = False
            self._hold_since = now
            self._framed_app.deliver_frames()       # may ask the gate, and wait again
            if self._frames_waiting or transport.is_closing():
                return
        elif wait_for(self._byte_buckets + self._message_buckets, 1.0, now) > 0.0:
            self._hold(now)                          # held from the start: not paid for yet
            return
        self._unhold()

    def _report(self, held_bytes: int) -> None:
        if self._report_held is not None:
            self._report_held("rate", held_bytes)
