"""Watching a server: its counters, and abuse logging an attacker cannot flood.

A public server is attacked in bulk: ten thousand connections that never
authenticate, each worth a log line. ``AbuseLog`` writes the first line per
*reason* (``auth``, ``timeout``, ``framing`` ...) in each interval at once,
so an operator sees a new kind of trouble immediately, and folds the rest
into one summary line per reason when the interval ends::

    WARNING closing 10.1.2.3:50211 (timeout): idle for 30 s
    WARNING timeout: 4,211 more like this from 2,004 client(s) in the last 10 s

So the log costs at most two lines per reason per interval, whatever the
attack. The counts themselves are never dropped: the server counts every
rejection in ``stats()`` (``rejected_<reason>``).

Like the timers, this module is handed ``now`` and never reads a clock.
"""

import logging
from typing import Any, Dict, List, Optional, Set

logger = logging.getLogger("reactor")

#: Every reason a server may refuse or close a connection, in display order.
REJECTION_REASONS = ("filter", "max_connections", "per_ip", "out_of_fds", "tls_handshake",
                     "auth", "timeout", "framing", "rate", "slow_consumer")


class AbuseLog:
    """Rate-limited logging of abuse: one line per reason per interval, then a summary."""

    __slots__ = ("interval_seconds", "_windows", "_log")

    def __init__(self, interval_seconds: float, log: logging.Logger = logger) -> None:
        self.interval_seconds = interval_seconds
        self._windows: Dict[str, "_Window"] = {}
        self._log = log

    def record(self, reason: str, client: Optional[str], now: float,
               message: str, *args: Any) -> None:
        """Log ``message % args`` for ``reason`` unless one was logged this interval; count it."""
        window = self._windows.get(reason)
        if window is not None and now >= window.ends:
            self._summarize(reason, window)
            window = None
        if window is None:
            self._windows[reason] = _Window(now + self.interval_seconds)
            self._log.warning(message, *args)
            return
        window.suppressed += 1
        if client is not None and len(window.clients) < 65536:   # bounded, like the rest
            window.clients.add(client)

    def flush(self, now: float) -> None:
        """Write the summary of every interval that has ended."""
        for reason, window in list(self._windows.items()):
            if now >= window.ends:
                self._summarize(reason, window)
                del self._windows[reason]

    def next_flush(self) -> Optional[float]:
        """Return when the next summary is due (None if nothing is waiting)."""
        due = [w.ends for w in self._windows.values() if w.suppressed]
        return min(due) if due else None

    def _summarize(self, reason: str, window: "_Window") -> None:
        if window.suppressed:
            clients = ("from %d client(s) " % len(window.clients)) if window.clients else ""
            self._log.warning("%s: %d more like this %sin the last %.3g s", reason,
                              window.suppressed, clients, self.interval_seconds)


class _Window:
    __slots__ = ("ends", "suppressed", "clients")

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.suppressed = 0
        self.clients: Set[str] = set()


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
