"""Slow consumers: the caps on a connection's send buffer (Redis's client-output-buffer-limit).

A protocol that keeps writing to a peer that does not read would grow the
send buffer without bound: a chat member who stopped reading, a client that
asked for a large answer and went quiet. Two caps bound it::

    buffer > send_buffer_hard_cap_bytes                    -> close at once
    buffer > send_buffer_soft_cap_bytes for soft_cap_seconds in a row -> close

Either way the buffer is dropped (the peer would not read it) and the
protocol's ``connection_lost`` gets a :class:`~reactor.errors.SlowConsumerError`.
The soft cap tolerates a burst that drains in time: a buffer that falls
back under it restarts the count.

This is a mixin of ``StreamTransport`` (``streams.py``), which calls
``_check_send_caps`` from its one way into the buffer, ``_enqueue``, and
clears ``_over_soft_cap_since`` when a send brings the buffer back under the
soft cap.
"""

from typing import Any

from .errors import SlowConsumerError
from .transports import TransportState


class SendCaps:
    """The hard and soft caps of a stream transport's send buffer (state lives in its slots)."""

    __slots__ = ()
    _loop: Any
    _state: Any
    _hard_cap: float
    _soft_cap: float
    _soft_cap_seconds: float
    _soft_cap_timer: Any
    _over_soft_cap_since: Any
    close_with_error: Any

    def _check_send_caps(self, nbytes: int) -> None:
        """The buffer passed a cap: close if it is the hard one, else start the soft one's clock.

        Both caps close with ``SlowConsumerError``: the hard one at once, the
        soft one only if the buffer stays over it for ``soft_cap_seconds``.
        """
        if nbytes > self._hard_cap:
            self.close_with_error(SlowConsumerError(
                "%d bytes queued for a peer that does not read them, over the %d-byte hard cap"
                % (nbytes, self._hard_cap)), flush=False)
        elif self._over_soft_cap_since is None:
            self._over_soft_cap_since = self._loop.time()
            if self._soft_cap_timer is None:
                self._soft_cap_timer = self._loop.call_later(self._soft_cap_seconds,
                                                             self._soft_cap_expired)
            else:
                self._soft_cap_timer.reset(self._soft_cap_seconds)

    def _soft_cap_expired(self) -> None:
        """The soft-cap timer fired: close if the buffer stayed over the cap all along."""
        since = self._over_soft_cap_since
        if since is None or self._state is TransportState.CLOSED:
            return                                   # drained in time; timer idles until reused
        remaining = since + self._soft_cap_seconds - self._loop.time()
        if remaining > 0:
            self._soft_cap_timer.reset(remaining)     # drained and refilled meanwhile
            return
        self.close_with_error(SlowConsumerError(
            "over %d bytes queued for %.3g s: the peer reads too slowly"
            % (self._soft_cap, self._soft_cap_seconds)), flush=False)
