"""Abuse logging an attacker cannot flood.

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

This module is handed ``now`` and never reads a clock.
Without ``reactor/protect/`` (a vendored core), a server logs each
rejection on its own line instead.
"""

import logging
from typing import Any, Dict, Optional, Set

logger = logging.getLogger("reactor")

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
