"""The loop tracer: every pass written down as Chrome trace-event JSON.

``loop.start_trace("t.json")`` records what each pass does, step by step,
until ``loop.stop_trace()`` (or ``loop.close()``) finishes the file; the
file opens in https://ui.perfetto.dev and chrome://tracing, and
``python -m reactor trace-report t.json`` summarises it (docs/TRACING.md)::

    pass ................................................. cat "pass"
      wait     poller.wait(timeout)                        cat "select"
      I/O      Echo.data_received (via StreamTransport...) cat "io"   fd, bytes
      timers   expire timers                               cat "timer" fired
               Heartbeat.tick                              cat "timer"
      run      Server._close_idle                          cat "callback"
    counters   bytes in/out, ready-queue length            ph "C"

Each record is a *complete event* (``"ph": "X"``, start ``ts`` and
``dur`` in microseconds); Perfetto nests them by time, so a pass shows as
a bar with its wait, its I/O and its callbacks beneath it.

Zero cost when off. ``run()`` looks ``self._run_once`` up on every pass,
so ``start_trace`` installs the tracer's own pass as an *instance*
attribute, which shadows the class's method, and ``stop_trace`` deletes
it. The untraced pass is the same code, byte for byte, with no "are we
tracing?" test in it.

Discussion: the alternatives were a flag tested in ``_run_once`` (one
test per pass, and the per-callback timing still needs a second copy of
the dispatch loop, as debug mode has in ``debug.py``) or a hook called
around each callback (a call per callback, traced or not). Shadowing
costs nothing untraced; its price is that the traced pass below must
mirror ``EventLoop._run_once`` step for step, and a change to one is a
change to both (``tests/test_trace.py`` runs the echo through both).

Bounded. Events are buffered and written every ``FLUSH_EVENTS`` events or
second, and never past ``max_bytes``: at the cap the tracer logs a
warning, closes the JSON and steps aside, so a forgotten trace cannot fill
the disk. A write error (disk full) does the same with an error.

Bytes are the transports' own ``bytes_received`` / ``bytes_sent``
counters, read before and after each I/O call: what a socket moved during
its own event. A write that goes out at once on *another* connection (a
chat broadcast) is counted only when that connection's socket next gets
an I/O event of its own, if ever; docs/TRACING.md says so.

Time is ``time.perf_counter`` (as in ``debug.py``): durations of real
work, whatever clock the loop's timers run on.
"""

import errno
import json
import logging
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .debug import watcher_callback_name, watcher_failed
from .poller import READABLE, WRITABLE
from .timers import callback_name

logger = logging.getLogger("reactor")

#: Default cap on one trace file: ``--trace-max-mb 100``.
DEFAULT_MAX_BYTES = 100 * 1024 * 1024
#: Buffered events are written when this many are waiting, or ...
FLUSH_EVENTS = 2000
#: ... when the last write is this old (so a quiet server's file keeps up).
FLUSH_SECONDS = 1.0
#: The end of every trace file: what makes a stopped trace valid JSON.
TRAILER = "\n]}\n"


class Traceable:
    """The loop's ``start_trace`` and ``stop_trace``; ``EventLoop`` inherits them."""

    def start_trace(self, path: str, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """Record each pass to ``path`` (Chrome trace-event JSON) until ``stop_trace()``.

        ``path`` is created or truncated at once (``OSError`` if it cannot
        be); at most ``max_bytes`` are written, then tracing stops with a
        warning. ``RuntimeError`` if this loop is tracing already.
        """
        self._check_usable("start_trace")
        if getattr(self, "_tracer", None) is not None:
            raise RuntimeError("this loop is already tracing to %s; call stop_trace() first"
                               % self._tracer.file.path)
        tracer = Tracer(self, path, max_bytes)
        self._tracer = tracer
        self._run_once = tracer.run_once        # shadows EventLoop._run_once

    def stop_trace(self) -> Optional[str]:
        """Finish the trace file and return its path (None if not tracing); idempotent.

        The next pass is the untraced one again. A write error while
        finishing is logged, not raised (``loop.close()`` calls this).
        """
        tracer = vars(self).pop("_tracer", None)
        vars(self).pop("_run_once", None)
        if tracer is None:
            return None
        if tracer.pid != os.getpid():          # a fork()ed child: the file is the parent's
            tracer.file.abandon()
            return None
        tracer.file.close()
        return tracer.file.path


class TraceFile:
    """A trace-event JSON file written as it goes; valid JSON again after ``close()``."""

    def __init__(self, path: str, max_bytes: int, other_data: Dict[str, Any]) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.size_bytes = 0
        self.full = False                   # the cap was reached: nothing more is written
        self._pending: List[Dict[str, Any]] = []
        self._separator = ""
        self._file = open(path, "w", encoding="ascii")
        try:
            self._write('{"displayTimeUnit": "ms", "otherData": %s,\n"traceEvents": [\n'
                        % json.dumps(other_data, sort_keys=True))
        except OSError:                     # /dev/full, a full disk: refuse at once
            self._file.close()
            raise

    def add(self, event: Dict[str, Any]) -> None:
        """Queue one event; ``flush()`` writes it."""
        self._pending.append(event)

    def pending(self) -> int:
        """Return how many events wait to be written."""
        return len(self._pending)

    def is_closed(self) -> bool:
        """Tell whether ``close()`` has finished the file."""
        return self._file.closed

    def flush(self) -> bool:
        """Write the queued events, up to the cap; return False once the cap is reached."""
        if self._file.closed or self.full:
            self._pending.clear()
            return False
        chunks = []
        size = self.size_bytes
        for event in self._pending:
            text = self._separator + json.dumps(event, separators=(",", ":"))
            if size + len(text) + len(TRAILER) > self.max_bytes:
                self.full = True
                break
            chunks.append(text)
            size += len(text)
            self._separator = ",\n"
        self._pending.clear()
        self._write("".join(chunks))
        return not self.full

    def close(self) -> None:
        """Write what is queued (within the cap) and the closing brackets; idempotent.

        A write error is logged, not raised: this runs inside ``loop.close()``.
        """
        if self._file.closed:
            return
        try:
            self.flush()
            self._write(TRAILER)
            self._file.close()
        except OSError as exc:
            logger.error("trace %s: cannot finish the file (%s); it is not valid JSON",
                         self.path, exc)
            self._pending.clear()
            try:
                self._file.close()
            except OSError:                 # the buffer it would flush is what failed
                pass

    def abandon(self) -> None:
        """Close this process's handle on the file without writing (a fork()ed child)."""
        self._pending.clear()
        self._file.close()

    def _write(self, text: str) -> None:
        # Flushed at once: a fork()ed child that inherits this file object
        # must find nothing buffered that it could write a second time.
        self._file.write(text)
        self._file.flush()
        self.size_bytes += len(text)        # ASCII: characters are bytes


class Tracer:
    """Run traced passes of ``loop``, writing what each step did to a ``TraceFile``."""

    def __init__(self, loop: Any, path: str, max_bytes: int = DEFAULT_MAX_BYTES,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if max_bytes < 1024:
            raise ValueError("a trace needs max_bytes >= 1024, got %r" % (max_bytes,))
        self.loop = loop
        self._clock = clock
        self._origin = clock()
        self.pid = os.getpid()
        self._tid = getattr(threading, "get_native_id", threading.get_ident)()
        self.file = TraceFile(path, max_bytes, {
            "source": "reactor", "pid": self.pid, "max_bytes": max_bytes,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.bytes_in = self.bytes_out = 0
        self._last_flush = self._origin
        for name, value in (("process_name", "reactor pid %d" % self.pid),
                            ("thread_name", "loop")):
            self.file.add({"ph": "M", "name": name, "ts": 0, "pid": self.pid,
                           "tid": self._tid, "args": {"name": value}})

    def run_once(self, max_wait: Optional[float]) -> None:
        """One pass, as ``EventLoop._run_once`` runs it, with each step timed and recorded."""
        loop, now = self.loop, self._clock
        poller = loop._poller
        started = now()
        # The pass's own event goes first, its length filled in at the end:
        # a viewer meeting two events with the same start nests the later
        # one inside the earlier, so the pass must precede its wait.
        pass_event = self._complete("pass", "pass", started, started, None)
        timeout = loop._sleep_seconds(max_wait)
        try:
            events = poller.wait(timeout)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            loop._watchers.drop_closed()
            events = []
        waited = now()
        self._complete("select", "wait", started, waited, {
            "timeout_ms": None if timeout is None else round(timeout * 1e3, 3),
            "ready": len(events)})
        watchers = poller.watchers
        moved_in, moved_out = self.bytes_in, self.bytes_out
        for fd, bits in events:
            watcher = watchers.get(fd)
            if watcher is None:                # unwatched earlier in this pass
                continue
            try:
                if bits & READABLE:
                    self._dispatch(watcher, watcher.on_readable, fd, "read")
                if bits & WRITABLE:
                    self._dispatch(watcher, watcher.on_writable, fd, "write")
            except Exception as exc:
                watcher_failed(loop, watcher, exc)
        ready = loop._ready
        queued = len(ready)
        expiring = now()
        loop._timers.expire(loop._clock(), ready)
        due = len(ready)
        fired = due - queued
        if fired:
            self._complete("timer", "expire timers", expiring, now(), {"fired": fired})
        loop._timers_fired += fired
        loop._iterations += 1
        loop._events_dispatched += len(events)
        popleft = ready.popleft
        for position in range(due):
            handle = popleft()
            callback = handle._callback
            if callback is None:                # cancelled while queued
                continue
            self._call(callback, handle._args, "timer" if position >= queued else "callback")
        ended = now()
        pass_event["dur"] = round(self._micros(ended) - pass_event["ts"], 3)
        pass_event["args"] = {"events": len(events), "due": due, "timers_fired": fired}
        self._counters(ended, due, moved_in != self.bytes_in or moved_out != self.bytes_out)
        if self.file.pending() >= FLUSH_EVENTS or ended - self._last_flush >= FLUSH_SECONDS:
            self._flush(ended)

    # -- recording ----------------------------------------------------------

    def _dispatch(self, watcher: Any, method: Callable[[], None], fd: int, event: str) -> None:
        """Call a watcher's ``on_readable``/``on_writable``; record it with the bytes it moved."""
        before_in = getattr(watcher, "bytes_received", 0)
        before_out = getattr(watcher, "bytes_sent", 0)
        started = self._clock()
        try:
            method()
        finally:
            ended = self._clock()
            moved_in = getattr(watcher, "bytes_received", 0) - before_in
            moved_out = getattr(watcher, "bytes_sent", 0) - before_out
            self.bytes_in += moved_in
            self.bytes_out += moved_out
            name = _watcher_name(watcher, event)
            self._complete("io", name, started, ended, {
                "fd": fd, "events": event, "bytes_in": moved_in, "bytes_out": moved_out})
            self._warn_if_slow(name, ended - started)

    def _call(self, callback: Callable[..., Any], args: Any, category: str) -> None:
        """Run one ready callback under the loop's failure policy; record it."""
        started = self._clock()
        try:
            callback(*args)
        except Exception as exc:
            self.loop._report(exc, callback, "callback")
        ended = self._clock()
        name = callback_name(callback)
        self._complete(category, name, started, ended, None)
        self._warn_if_slow(name, ended - started)

    def _warn_if_slow(self, name: str, elapsed: float) -> None:
        # Tracing replaces debug mode's timed pass, so it keeps its warning.
        if self.loop._debug and elapsed >= self.loop.slow_callback_seconds:
            logger.warning("slow callback %s took %.3f s", name, elapsed)

    def _complete(self, category: str, name: str, started: float, ended: float,
                  args: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        # Both ends are rounded the same way, so a child never ends past its parent.
        ts = self._micros(started)
        event = {"ph": "X", "cat": category, "name": name, "pid": self.pid, "tid": self._tid,
                 "ts": ts, "dur": round(self._micros(ended) - ts, 3)}
        if args:
            event["args"] = args
        self.file.add(event)
        return event

    def _counters(self, when: float, ready: int, bytes_moved: bool) -> None:
        ts = self._micros(when)
        self.file.add({"ph": "C", "name": "ready queue", "ts": ts, "pid": self.pid,
                       "tid": self._tid, "args": {"callbacks": ready}})
        if bytes_moved:
            self.file.add({"ph": "C", "name": "bytes", "ts": ts, "pid": self.pid,
                           "tid": self._tid, "args": {"in": self.bytes_in, "out": self.bytes_out}})

    def _micros(self, when: float) -> float:
        return round((when - self._origin) * 1e6, 3)

    def _flush(self, when: float) -> None:
        """Write what is buffered; at the cap or on a write error, stop tracing."""
        self._last_flush = when
        if self.file.is_closed():                 # stop_trace() ran during this pass
            return
        try:
            if self.file.flush():
                return
            logger.warning("trace %s reached its cap of %d bytes; tracing stopped (the file "
                           "is complete up to here; raise --trace-max-mb for more)",
                           self.file.path, self.file.max_bytes)
        except OSError as exc:
            logger.error("trace %s: cannot write (%s); tracing stopped", self.file.path, exc)
        self.loop.stop_trace()


def _watcher_name(watcher: Any, event: str) -> str:
    """Name the user's method behind a watcher's event; never raise (it runs in a ``finally``).

    A watcher that is neither a transport nor an ``add_reader`` holder (a
    listening socket's) is named by its own method: ``module.Class.on_readable``.
    """
    try:
        name = watcher_callback_name(watcher, event)
    except Exception:
        name = "<"
    if name.startswith("<"):                   # a repr, with an address in it
        name = callback_name(getattr(watcher, "on_readable" if event == "read"
                                     else "on_writable", watcher))
    return name
