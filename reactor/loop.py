"""The reactor: one thread, one poller, a ready queue and a timer backend.

This is the whole event loop. Each *pass* does three things, in this order
(Twisted's ``mainLoop`` and Redis's ``aeProcessEvents`` have the same shape)::

    1. wait    poller.wait(timeout)      -- timeout 0 if work is ready, else
                                            until the next timer deadline
    2. I/O     for each ready fd: watcher.on_readable() / on_writable()
    3. run     expire due timers into the ready queue, then run the callbacks
               that were queued *before* this step began

Callbacks queued during step 3 run in the next pass, after the next wait:
a callback that keeps re-queueing itself cannot starve the sockets.

Each ready fd's *watcher* (a transport, or a holder of ``add_reader``
callbacks) is found with one dict lookup and called directly: from the wait
to a protocol's ``data_received`` is two calls. Exceptions are caught once,
around each dispatch: one escaping a watcher goes to its ``callback_failed``
(a transport ends that one connection); one escaping a plain callback is
logged. Either way the loop goes on.

Around the loop, each in its own module: waiting for I/O, epoll directly on
Linux or any ``selectors`` selector (``poller.py``); waking from threads and
signals, and which thread owns the loop (``wakeup.py``); registrations, and
fds closed behind the loop's back (``watchers.py``); debug mode's timed
twins of steps 2 and 3 (``debug.py``); a loop in a fork()ed child (``forks.py``);
``start_trace``'s recorded twin of a pass, which costs nothing when off (``trace.py``).

Time: this module reads the clock; everything else is handed ``now``, with
two documented exceptions that borrow its clock function (see ``clock.py``).
"""

import collections
import enum
import errno
import logging
import os
import selectors
import signal
from typing import Any, Callable, Deque, Dict, Optional

from .clock import monotonic
from .errors import LoopClosedError, LoopRunningError
from .forks import forked_error, track
from .timers import (Handle, Periodic, Timer, callback_name, check_callable, check_deadline,
                     check_delay, check_interval)
from .debug import dispatch_timed, report, run_ready_timed, watcher_failed
from .poller import IN, OUT, READABLE, WRITABLE, make_poller
from .trace import Traceable
from .wakeup import Wakeup, check_thread, claim_thread, release_thread
from .watchers import Watchers, checked_fileobj
from .wheel import TimerWheel

logger = logging.getLogger("reactor")

EVENT_READ, EVENT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE

#: Cap on one select() wait: a far timer in the wheel's overflow must not ask
#: the kernel for a timeout it cannot represent.
MAX_SELECT_SECONDS = 24 * 3600.0
#: Callbacks slower than this are logged by name in debug mode.
SLOW_CALLBACK_SECONDS = 0.1
_INF = float("inf")


class LoopState(enum.Enum):
    """Where a loop is in its life: IDLE -> RUNNING -> IDLE ... -> CLOSED."""

    IDLE = "idle"
    RUNNING = "running"
    CLOSED = "closed"


_IDLE, _RUNNING, _CLOSED = LoopState.IDLE, LoopState.RUNNING, LoopState.CLOSED


class EventLoop(Traceable):
    """A single-threaded event loop; see the module docstring for one pass.

    Applications use its subclass ``reactor.Reactor``, which adds
    ``listen_tcp``, ``connect_tcp`` and friends (``reactor/network.py``).

    Parameters (all optional): ``selector``, any ``selectors.BaseSelector``
    (default: epoll called directly on Linux, else the platform's best of
    kqueue, poll or select; see ``poller.py``); ``clock``,
    a zero-argument monotonic time function (inject a ``FakeClock`` to test
    timers without sleeping); ``timers``, a backend (``TimerWheel``, the
    default, with ``tick_seconds`` granularity, or ``HeapTimers``);
    ``debug``, which logs callbacks slower than ``slow_callback_seconds`` and
    refuses calls from other threads (default: ``REACTOR_DEBUG``).
    """

    def __init__(self, selector: Optional[selectors.BaseSelector] = None,
                 clock: Optional[Callable[[], float]] = None,
                 timers: Any = None, debug: Optional[bool] = None,
                 tick_seconds: float = 0.001,
                 slow_callback_seconds: float = SLOW_CALLBACK_SECONDS) -> None:
        self._clock = clock if clock is not None else monotonic
        self._poller = make_poller(selector)     # epoll itself, or the selector given
        now = self._clock()
        self._timers = timers if timers is not None else TimerWheel(tick_seconds, now)
        self._timers.clock = self._clock
        self._ready: Deque[Handle] = collections.deque()
        self._state = _IDLE
        self._stopping = False
        if debug is None:
            debug = os.environ.get("REACTOR_DEBUG", "") not in ("", "0")
        self._debug = bool(debug)
        # True when the cheap calls (call_soon, call_later) must take the slow
        # road to check something: the loop is closed or was inherited through
        # fork(), or debug mode watches threads. One flag, one test.
        self._strict = self._debug
        self.slow_callback_seconds = slow_callback_seconds
        self._exception_handler: Optional[Callable[["EventLoop", Dict[str, Any]], None]] = None
        self._iterations = self._events_dispatched = self._timers_fired = 0
        self._thread_id: Optional[int] = None
        # Transports call _watch/_rewatch/_unwatch on the loop: the Watchers'
        # bound methods, so the seam costs no extra frame.
        watchers = self._watchers = Watchers(self._poller, self)
        self._watch, self._rewatch, self._unwatch = (watchers.watch, watchers.rewatch,
                                                     watchers.unwatch)
        self._wakeup = Wakeup(self._ready)
        self._watchers.add_callback(self._wakeup.reader, EVENT_READ,
                                    Handle(self._wakeup.drain, ()))
        self._timers.expire(now, self._ready)    # align a fresh backend with our clock
        self._forked_from: Optional[int] = None   # the parent's pid, in a fork()ed child
        track(self)                              # forks.py disarms us in a child

    # -- time and callbacks -------------------------------------------------

    def time(self) -> float:
        """Return the loop's current time in seconds (monotonic, maybe fake)."""
        return self._clock()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Queue ``callback(*args)`` to run in the next callback step, in FIFO order."""
        if not callable(callback):
            check_callable(callback)
        if self._strict:
            self._check_usable("call_soon")
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Queue ``callback(*args)`` from any thread and wake the loop if it sleeps.

        The only loop method other threads may call. Wake-ups are coalesced:
        one byte is written per sleep, however many threads call this.
        """
        check_callable(callback)
        if self._state is _CLOSED:
            raise LoopClosedError("call_soon_threadsafe() on a closed loop")
        handle = Handle(callback, args)
        self._ready.append(handle)              # deque.append is atomic
        self._wakeup.wake()
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, no sooner than ``delay`` seconds from now.

        ``delay`` must be a finite number >= 0; 0 (or a deadline already
        past) means the next pass that expires timers, on either backend.
        Returns a :class:`~reactor.timers.Timer` with ``cancel()``,
        ``reset(delay)``, ``when()`` and ``cancelled()``.
        """
        try:
            in_range = 0.0 <= delay < _INF
        except TypeError:                      # call_later("1", f): say so, not '<=' on str
            in_range = False
        if not in_range:
            check_delay(delay)
        if not callable(callback):
            check_callable(callback)
        if self._strict:
            self._check_usable("call_later")
        return self._timers.schedule(self._clock() + delay, callback, args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, no sooner than loop time ``when``."""
        check_deadline(when)
        check_callable(callback)
        self._check_usable("call_at")
        return self._timers.schedule(when, callback, args)

    def call_every(self, interval: float, callback: Callable[..., Any],
                   *args: Any) -> Periodic:
        """Run ``callback(*args)`` every ``interval`` seconds, first after one interval.

        No drift: each deadline is the previous *deadline* plus the interval.
        Whole intervals the loop fell behind are skipped, not run in a burst.
        An exception from ``callback`` is logged and the calls go on.
        Returns a :class:`Periodic`; ``cancel()`` stops it.
        """
        check_interval(interval)
        check_callable(callback)
        self._check_usable("call_every")
        return Periodic(self._timers, self._clock(), interval, callback, args)

    # -- file descriptors ---------------------------------------------------

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable, until ``remove_reader``.

        Pass the socket or file object rather than its number when you can:
        then the loop can tell it apart from a later file that reuses the
        number, should it be closed without ``remove_reader``.
        """
        check_callable(callback)
        self._check_usable("add_reader")
        self._watchers.add_callback(checked_fileobj(fd), EVENT_READ, Handle(callback, args))

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable, until ``remove_writer``."""
        check_callable(callback)
        self._check_usable("add_writer")
        self._watchers.add_callback(checked_fileobj(fd), EVENT_WRITE, Handle(callback, args))

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading; return False if no reader was set."""
        self._check_thread("remove_reader")
        return self._state is not _CLOSED and self._watchers.remove_callback(fd, EVENT_READ)

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing; return False if no writer was set."""
        self._check_thread("remove_writer")
        return self._state is not _CLOSED and self._watchers.remove_callback(fd, EVENT_WRITE)

    # -- signals ------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` as a loop callback whenever signal ``sig`` arrives.

        Main thread only (a Python rule): :class:`SignalHandlerError` otherwise.
        """
        check_callable(callback)
        self._check_usable("add_signal_handler")
        self._wakeup.add_signal_handler(sig, Handle(callback, args))

    def remove_signal_handler(self, sig: int) -> bool:
        """Restore ``sig``'s previous handler; return False if none was added."""
        self._check_thread("remove_signal_handler")
        return self._wakeup.remove_signal_handler(sig)

    # -- errors -------------------------------------------------------------

    def set_exception_handler(self,
                              handler: Optional[Callable[["EventLoop", Dict[str, Any]], None]]) -> None:
        """Route callback exceptions to ``handler(loop, context)`` (see ``debug.py``);
        None restores logging."""
        if handler is not None:
            check_callable(handler)
        self._exception_handler = handler

    def call_exception_handler(self, context: Dict[str, Any]) -> None:
        """Report an error from a callback: to the custom handler, else to the log."""
        report(self._exception_handler, self, context)

    # -- running ------------------------------------------------------------

    def run(self, stop_on_signals: bool = True) -> None:
        """Run passes until ``stop()``; SIGINT and SIGTERM stop it cleanly too.

        The handlers are installed only from the main thread, only for
        signals with no loop handler yet, and removed on return. A second
        Ctrl-C while a callback blocks the loop raises ``KeyboardInterrupt``.
        Raises :class:`LoopRunningError` if a loop is running on this thread,
        :class:`LoopClosedError` after ``close()``.
        """
        self._enter("run")
        installed = []
        try:
            if stop_on_signals:
                installed = self._wakeup.install_stop_handlers(self._stop_on_signal)
            while True:
                self._run_once(None)
                if self._stopping:
                    break
        finally:
            for sig in installed:
                self._wakeup.remove_signal_handler(sig)
            self._leave()

    def run_once(self, max_wait_seconds: Optional[float] = 0.0) -> None:
        """Run a single pass, waiting at most ``max_wait_seconds`` (None: until work).

        For tests and for embedding the loop in another one; with a
        ``FakeClock``, advance the clock and call ``run_once()``.
        """
        self._enter("run_once")
        try:
            self._run_once(max_wait_seconds)
        finally:
            self._leave()

    def stop(self) -> None:
        """Make ``run()`` return after this pass (after one pass, if not running yet)."""
        self._stopping = True

    def is_running(self) -> bool:
        """Tell whether ``run()`` or ``run_once()`` is on the stack."""
        return self._state is _RUNNING

    def is_closed(self) -> bool:
        """Tell whether ``close()`` was called."""
        return self._state is _CLOSED

    def close(self) -> None:
        """Release the poller, the wake-up socketpair and the signal handlers; idempotent.

        Pending callbacks and timers are dropped. Fds added by the user or
        owned by transports are forgotten, not closed (the loop does not own them).
        In a fork()ed child, only the child's copies are released (``forks.py``).
        """
        if self._state is _RUNNING:
            raise LoopRunningError("close() called on a running loop; call stop() first")
        if self._state is _CLOSED:
            return
        self._state = _CLOSED
        self._strict = True
        self._ready.clear()
        self.stop_trace()                # finish a trace while our SIGTERM handler stands
        self._poller.close()
        self._wakeup.close()

    def stats(self) -> Dict[str, int]:
        """Return counters: loop passes, I/O events dispatched, timers fired, pending work."""
        return {"iterations": self._iterations, "events": self._events_dispatched,
                "timers_fired": self._timers_fired, "timers_pending": len(self._timers),
                "ready": len(self._ready),
                "fds": len(self._poller.watchers) if self._state is not _CLOSED else 0}

    def get_debug(self) -> bool:
        """Tell whether debug mode (slow-callback log, thread checks) is on."""
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        """Turn debug mode on or off."""
        self._debug = bool(enabled)
        self._strict = self._debug or self._state is _CLOSED or self._forked_from is not None

    # -- one pass (the loop itself) ---------------------------------------------

    def _run_once(self, max_wait: Optional[float]) -> None:
        """Wait for I/O or the next deadline, dispatch I/O, then run what is ready."""
        # Hot path: once per pass. No allocation beyond the poller's list.
        # trace.py's Tracer.run_once mirrors this pass: change one, change both.
        poller = self._poller
        try:
            events = poller.wait(self._sleep_seconds(max_wait))
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            self._watchers.drop_closed()  # select(): an fd was closed behind our back
            events = []
        if self._debug:
            dispatch_timed(self, events)
        else:
            # One lookup and one call per ready fd; an error or hang-up calls both.
            watchers = poller.watchers
            for fd, bits in events:
                try:
                    watcher = watchers[fd]
                except KeyError:               # unwatched earlier in this pass
                    continue
                try:
                    if bits == IN:
                        watcher.on_readable()
                    elif bits == OUT:
                        watcher.on_writable()
                    else:
                        if bits & READABLE:
                            watcher.on_readable()
                        if bits & WRITABLE:
                            watcher.on_writable()
                except Exception as exc:
                    watcher_failed(self, watcher, exc)
        ready = self._ready
        queued = len(ready)
        self._timers.expire(self._clock(), ready)
        due = len(ready)
        self._timers_fired += due - queued
        self._iterations += 1
        self._events_dispatched += len(events)
        if not due:
            return
        if self._debug:
            run_ready_timed(self, due)
        else:
            self._run_ready(due)

    def _sleep_seconds(self, max_wait: Optional[float]) -> Optional[float]:
        """How long step 1 may wait (None: no limit); trio's ``deadline_to_sleep_time``."""
        if self._ready or self._stopping:
            return 0.0
        deadline = self._timers.next_deadline()
        if deadline is None:
            return max_wait
        timeout = deadline - self._clock()
        if timeout < 0.0:
            timeout = 0.0
        elif timeout > MAX_SELECT_SECONDS:
            timeout = MAX_SELECT_SECONDS
        if max_wait is not None and timeout > max_wait:
            timeout = max_wait
        return timeout

    def _run_ready(self, count: int) -> None:
        """Step 3: run the first ``count`` ready callbacks (those queued before this step)."""
        # Hot path: once per pass. popleft is a local: a method lookup per
        # callback is measurable at a million callbacks per second.
        popleft = self._ready.popleft
        for _ in range(count):
            handle = popleft()
            callback = handle._callback
            if callback is None:                    # cancelled while queued
                continue
            try:
                callback(*handle._args)
            except Exception as exc:
                self._report(exc, callback, "callback")

    # -- internals ----------------------------------------------------------

    def _report(self, exc: Exception, callback: Any, what: str) -> None:
        report(self._exception_handler, self, {
            "message": "%s %s raised %s: %s" % (what, callback_name(callback),
                                                 type(exc).__name__, exc),
            "exception": exc, "callback": callback})

    def _enter(self, what: str) -> None:
        """Become the running loop of this thread, or say why not."""
        self._check_usable(what)
        if self._state is _RUNNING:
            raise LoopRunningError("%s() called while the loop is already running" % what)
        self._thread_id = claim_thread(self, what)
        self._state = _RUNNING

    def _leave(self) -> None:
        self._stopping = False
        self._state = _IDLE
        self._thread_id = None
        release_thread()

    def _check_usable(self, what: str) -> None:
        """Raise if the loop is closed, inherited through fork(), or (debug) on a foreign thread."""
        if self._state is _CLOSED:
            raise LoopClosedError("%s() on a closed loop; create a new loop" % what)
        if self._forked_from is not None:
            raise forked_error(what, self._forked_from)
        self._check_thread(what)

    def _check_thread(self, what: str) -> None:
        if self._debug:
            check_thread(self._thread_id, what)

    def _stop_on_signal(self, sig: int) -> None:
        logger.info("received %s, stopping", signal.Signals(sig).name)
        self.stop()

