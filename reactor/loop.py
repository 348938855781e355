"""The reactor: one thread, one selector, a ready queue and a timer backend.

This is the whole event loop. Each *pass* does three things, in this order
(Twisted's ``mainLoop`` and Redis's ``aeProcessEvents`` have the same shape)::

    1. wait    selector.select(timeout)  -- timeout 0 if work is ready, else
                                            until the next timer deadline
    2. I/O     for each ready fd: watcher.on_readable() / on_writable()
    3. run     expire due timers into the ready queue, then run the callbacks
               that were queued *before* this step began

Callbacks queued during step 3 run in the next pass, after the next select:
a callback that keeps re-queueing itself cannot starve the sockets.

The selector key's ``data`` is the *watcher* itself (a transport, or a small
holder of ``add_reader`` callbacks), called directly: from ``select`` to a
protocol's ``data_received`` is two calls. Exceptions are caught once, around
each dispatch; one failing callback is logged and the loop goes on.

Waking up: another thread's ``call_soon_threadsafe`` and every signal write a
byte into a socketpair the selector watches (the self-pipe trick). Signals
arrive there through ``signal.set_wakeup_fd``, so a signal handler runs as an
ordinary callback in step 3, never inside an interrupted frame.

Only this module reads the clock (``Reactor(clock=...)``); timers and
everything else are handed ``now``.
"""

import collections
import enum
import errno
import logging
import os
import selectors
import signal
import socket
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from .clock import monotonic
from .errors import (BadFileDescriptorError, LoopClosedError, LoopRunningError,
                     SignalHandlerError)
from .timers import (Handle, Timer, callback_name, check_callable, check_deadline,
                     check_delay)
from .wheel import TimerWheel

logger = logging.getLogger("reactor")

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

#: Cap on one select() wait: a far timer in the wheel's overflow must not ask
#: the kernel for a timeout it cannot represent.
MAX_SELECT_SECONDS = 24 * 3600.0
#: Callbacks slower than this are logged by name in debug mode.
SLOW_CALLBACK_SECONDS = 0.1
_INF = float("inf")
_WAKE_BYTE = b"\0"          # never a signal number, so it cannot be mistaken for one


class LoopState(enum.Enum):
    """Where a loop is in its life: IDLE -> RUNNING -> IDLE ... -> CLOSED."""

    IDLE = "idle"
    RUNNING = "running"
    CLOSED = "closed"


class EventLoop:
    """A single-threaded event loop; see the module docstring for one pass.

    Applications use its subclass ``reactor.Reactor``, which adds
    ``listen_tcp``, ``connect_tcp`` and friends (``reactor/network.py``).

    Parameters (all optional):

    ``selector``
        any ``selectors.BaseSelector``; default ``DefaultSelector()`` (epoll,
        kqueue, poll or select, the best the platform has).
    ``clock``
        a zero-argument function returning monotonic seconds; inject a
        ``FakeClock`` to test timers without sleeping.
    ``timers``
        a timer backend (``TimerWheel`` or ``HeapTimers``); default a wheel
        with ``tick_seconds`` granularity (1 ms).
    ``debug``
        log callbacks slower than ``slow_callback_seconds``; default from the
        ``REACTOR_DEBUG`` environment variable.
    """

    def __init__(self, selector: Optional[selectors.BaseSelector] = None,
                 clock: Optional[Callable[[], float]] = None,
                 timers: Any = None, debug: Optional[bool] = None,
                 tick_seconds: float = 0.001,
                 slow_callback_seconds: float = SLOW_CALLBACK_SECONDS) -> None:
        self._clock = clock if clock is not None else monotonic
        self._selector = selector if selector is not None else selectors.DefaultSelector()
        now = self._clock()
        self._timers = timers if timers is not None else TimerWheel(tick_seconds, now)
        self._timers.clock = self._clock
        self._ready: Deque[Handle] = collections.deque()
        self._state = LoopState.IDLE
        self._closed = False                    # mirrors state, read on hot paths
        self._stopping = False
        if debug is None:
            debug = os.environ.get("REACTOR_DEBUG", "") not in ("", "0")
        self._debug = bool(debug)
        self.slow_callback_seconds = slow_callback_seconds
        self._exception_handler: Optional[Callable[["EventLoop", Dict[str, Any]], None]] = None
        self._iterations = 0
        self._events = 0
        self._timers_fired = 0
        self._signal_handlers: Dict[int, Handle] = {}
        self._previous_signal_handlers: Dict[int, Any] = {}
        self._previous_wakeup_fd: Optional[int] = None
        self._thread_id: Optional[int] = None
        # The self-pipe: one end watched by the selector, the other written by
        # call_soon_threadsafe and by the C-level signal handler.
        self._wakeup_reader, self._wakeup_writer = socket.socketpair()
        self._wakeup_reader.setblocking(False)
        self._wakeup_writer.setblocking(False)
        self._wake_pending = False
        self._add_fd_callback(self._wakeup_reader.fileno(), EVENT_READ,
                              Handle(self._drain_wakeup, ()))
        self._timers.expire(now, self._ready)    # align a fresh backend with our clock

    # -- time and callbacks -------------------------------------------------

    def time(self) -> float:
        """Return the loop's current time in seconds (monotonic, maybe fake)."""
        return self._clock()

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Queue ``callback(*args)`` to run in the next callback step, in FIFO order."""
        if not callable(callback):
            check_callable(callback)
        if self._closed:
            raise LoopClosedError("call_soon() on a closed loop")
        handle = Handle(callback, args)
        self._ready.append(handle)
        return handle

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> Handle:
        """Queue ``callback(*args)`` from any thread and wake the loop if it sleeps.

        Wake-ups are coalesced: one byte is written per sleep, however many
        threads call this before the loop drains it.
        """
        handle = self.call_soon(callback, *args)
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._wakeup_writer.send(_WAKE_BYTE)
            except OSError:          # full (a wake-up is pending anyway) or closing
                pass
        return handle

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, no sooner than ``delay`` seconds from now.

        ``delay`` must be finite and >= 0 (0 means the next pass that expires
        timers). Returns a :class:`~reactor.timers.Timer` with ``cancel()``,
        ``reset(delay)``, ``when()`` and ``cancelled()``.
        """
        if not 0.0 <= delay < _INF:
            check_delay(delay)
        if not callable(callback):
            check_callable(callback)
        if self._closed:
            raise LoopClosedError("call_later() on a closed loop")
        return self._timers.schedule(self._clock() + delay, callback, args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run ``callback(*args)`` once, no sooner than loop time ``when``."""
        check_deadline(when)
        check_callable(callback)
        if self._closed:
            raise LoopClosedError("call_at() on a closed loop")
        return self._timers.schedule(when, callback, args)

    # -- file descriptors ---------------------------------------------------

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is readable, until ``remove_reader``."""
        check_callable(callback)
        self._check_open("add_reader")
        self._add_fd_callback(_checked_fd(fd), EVENT_READ, Handle(callback, args))

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:
        """Call ``callback(*args)`` whenever ``fd`` is writable, until ``remove_writer``."""
        check_callable(callback)
        self._check_open("add_writer")
        self._add_fd_callback(_checked_fd(fd), EVENT_WRITE, Handle(callback, args))

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading; return False if no reader was set."""
        return self._remove_fd_callback(_fd_number(fd), EVENT_READ)

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing; return False if no writer was set."""
        return self._remove_fd_callback(_fd_number(fd), EVENT_WRITE)

    # The transport seam: transports register themselves as the watcher, so
    # dispatch calls transport.on_readable() with no wrapper in between.
    # Each fd has one registration; read and write interest are merged with
    # modify(), never unregister + register.

    def _watch(self, fd: int, events: int, watcher: Any) -> None:
        """Register ``watcher`` for ``fd`` with interest ``events`` (fd not yet watched)."""
        self._selector.register(fd, events, watcher)

    def _rewatch(self, fd: int, events: int, watcher: Any) -> None:
        """Change the interest of a watched ``fd``; 0 unregisters it."""
        if events:
            self._selector.modify(fd, events, watcher)
        else:
            self._selector.unregister(fd)

    # -- signals ------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` as a loop callback whenever signal ``sig`` arrives.

        Only the main thread may install signal handlers (a Python rule).
        Raises :class:`SignalHandlerError` otherwise, or for an invalid signal.
        """
        check_callable(callback)
        self._check_open("add_signal_handler")
        if threading.current_thread() is not threading.main_thread():
            raise SignalHandlerError("signal handlers can only be added from the main thread")
        if sig not in signal.valid_signals() or sig in (signal.SIGKILL, signal.SIGSTOP):
            raise SignalHandlerError("cannot handle signal %r" % (sig,))
        if self._previous_wakeup_fd is None:
            self._previous_wakeup_fd = signal.set_wakeup_fd(
                self._wakeup_writer.fileno(), warn_on_full_buffer=False)
        if sig not in self._previous_signal_handlers:
            self._previous_signal_handlers[sig] = signal.getsignal(sig)
        # The Python-level handler does nothing: the C-level handler has
        # already written the signal number to the wake-up fd.
        signal.signal(sig, _ignore_signal)
        self._signal_handlers[sig] = Handle(callback, args)

    def remove_signal_handler(self, sig: int) -> bool:
        """Restore the handler ``sig`` had before; return False if none was added."""
        if self._signal_handlers.pop(sig, None) is None:
            return False
        previous = self._previous_signal_handlers.pop(sig)
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        if not self._signal_handlers and self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        return True

    # -- errors -------------------------------------------------------------

    def set_exception_handler(self,
                              handler: Optional[Callable[["EventLoop", Dict[str, Any]], None]]) -> None:
        """Route callback exceptions to ``handler(loop, context)``; None restores logging.

        ``context`` has ``message``, ``exception`` and ``callback``.
        """
        if handler is not None:
            check_callable(handler)
        self._exception_handler = handler

    def call_exception_handler(self, context: Dict[str, Any]) -> None:
        """Report an error from a callback: to the custom handler, else to the log."""
        handler = self._exception_handler
        if handler is not None:
            try:
                handler(self, context)
                return
            except Exception as exc:            # the handler itself failed: log both
                logger.error("exception handler %s failed", callback_name(handler),
                             exc_info=exc)
        logger.error("%s", context.get("message", "unhandled error in a callback"),
                     exc_info=context.get("exception"))

    # -- running ------------------------------------------------------------

    def run(self, stop_on_signals: bool = True) -> None:
        """Run passes until ``stop()``; SIGINT and SIGTERM stop it cleanly too.

        The signal handlers are installed only from the main thread, only
        for signals that have no loop handler yet, and removed on return.
        Raises :class:`LoopRunningError` if already running and
        :class:`LoopClosedError` after ``close()``.
        """
        self._check_open("run")
        if self._state is LoopState.RUNNING:
            raise LoopRunningError("run() called while the loop is already running")
        installed = []
        if stop_on_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if sig not in self._signal_handlers:
                    self.add_signal_handler(sig, self._stop_on_signal, sig)
                    installed.append(sig)
        self._state = LoopState.RUNNING
        self._thread_id = threading.get_ident()
        try:
            while True:
                self._run_once(None)
                if self._stopping:
                    break
        finally:
            self._stopping = False
            self._state = LoopState.IDLE
            self._thread_id = None
            for sig in installed:
                self.remove_signal_handler(sig)

    def run_once(self, max_wait_seconds: Optional[float] = 0.0) -> None:
        """Run a single pass, waiting at most ``max_wait_seconds`` (None: until work).

        For tests and for embedding the loop in another one; with a
        ``FakeClock``, advance the clock and call ``run_once()``.
        """
        self._check_open("run_once")
        if self._state is LoopState.RUNNING:
            raise LoopRunningError("run_once() called while the loop is already running")
        self._state = LoopState.RUNNING
        try:
            self._run_once(max_wait_seconds)
        finally:
            self._stopping = False
            self._state = LoopState.IDLE

    def stop(self) -> None:
        """Make ``run()`` return after the current pass (or after one pass, if not running)."""
        self._stopping = True

    def is_running(self) -> bool:
        """Tell whether ``run()`` or ``run_once()`` is on the stack."""
        return self._state is LoopState.RUNNING

    def is_closed(self) -> bool:
        """Tell whether ``close()`` was called."""
        return self._closed

    def close(self) -> None:
        """Release the selector, the wake-up socketpair and the signal handlers.

        Idempotent. Pending callbacks and timers are dropped. File
        descriptors added by the user or owned by transports are not closed
        (the loop does not own them), only forgotten.
        """
        if self._state is LoopState.RUNNING:
            raise LoopRunningError("close() called on a running loop; call stop() first")
        if self._closed:
            return
        for sig in list(self._signal_handlers):
            self.remove_signal_handler(sig)
        self._closed = True
        self._state = LoopState.CLOSED
        self._ready.clear()
        self._selector.close()
        self._wakeup_reader.close()
        self._wakeup_writer.close()

    def stats(self) -> Dict[str, int]:
        """Return counters: loop passes, I/O events dispatched, timers fired, pending work."""
        return {
            "iterations": self._iterations,
            "events": self._events,
            "timers_fired": self._timers_fired,
            "timers_pending": len(self._timers),
            "ready": len(self._ready),
            "fds": len(self._selector.get_map()) if not self._closed else 0,
        }

    def get_debug(self) -> bool:
        """Tell whether slow callbacks are being logged."""
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        """Turn slow-callback logging on or off."""
        self._debug = bool(enabled)

    # -- one pass (the loop itself) ---------------------------------------------

    def _run_once(self, max_wait: Optional[float]) -> None:
        """Wait for I/O or the next deadline, dispatch I/O, then run what is ready."""
        # Hot path: once per pass. No allocation beyond what select() returns.
        ready = self._ready
        if ready or self._stopping:
            timeout: Optional[float] = 0.0
        else:
            deadline = self._timers.next_deadline()
            if deadline is None:
                timeout = max_wait
            else:
                timeout = deadline - self._clock()
                if timeout < 0.0:
                    timeout = 0.0
                elif timeout > MAX_SELECT_SECONDS:
                    timeout = MAX_SELECT_SECONDS
                if max_wait is not None and timeout > max_wait:
                    timeout = max_wait
        try:
            events = self._selector.select(timeout)
        except OSError as exc:
            if exc.errno != errno.EBADF:
                raise
            self._drop_closed_fds()
            events = []
        debug = self._debug
        if debug:
            self._dispatch_timed(events)
        else:
            for key, mask in events:
                watcher = key.data
                try:
                    if mask & EVENT_READ:
                        watcher.on_readable()
                    if mask & EVENT_WRITE:
                        watcher.on_writable()
                except Exception as exc:
                    self._report(exc, watcher, "I/O callback")
        queued = len(ready)
        self._timers.expire(self._clock(), ready)
        due = len(ready)
        self._timers_fired += due - queued
        self._iterations += 1
        self._events += len(events)
        popleft = ready.popleft
        for _ in range(due):
            handle = popleft()
            callback = handle._callback
            if callback is None:                    # cancelled while queued
                continue
            try:
                if debug:
                    self._call_timed(callback, handle._args)
                else:
                    callback(*handle._args)
            except Exception as exc:
                self._report(exc, callback, "callback")

    def _report(self, exc: Exception, callback: Any, what: str) -> None:
        self.call_exception_handler({
            "message": "%s %s raised %s: %s" % (what, callback_name(callback),
                                                 type(exc).__name__, exc),
            "exception": exc,
            "callback": callback,
        })

    def _call_timed(self, callback: Callable[..., Any], args: Tuple[Any, ...]) -> None:
        started = time.perf_counter()
        try:
            callback(*args)
        finally:
            elapsed = time.perf_counter() - started
            if elapsed >= self.slow_callback_seconds:
                logger.warning("slow callback %s took %.3f s",
                               callback_name(callback), elapsed)

    def _dispatch_timed(self, events: Any) -> None:
        """Debug mode's I/O step: the same dispatch, with each call timed."""
        for key, mask in events:
            watcher = key.data
            try:
                if mask & EVENT_READ:
                    self._call_timed(watcher.on_readable, ())
                if mask & EVENT_WRITE:
                    self._call_timed(watcher.on_writable, ())
            except Exception as exc:
                self._report(exc, watcher, "I/O callback")

    # -- internals ----------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise LoopClosedError("%s() on a closed loop; create a new loop" % what)

    def _stop_on_signal(self, sig: int) -> None:
        logger.info("received %s, stopping", signal.Signals(sig).name)
        self.stop()

    def _add_fd_callback(self, fd: int, event: int, handle: Handle) -> None:
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            watch = _FdCallbacks()
            watch.set(event, handle)
            self._selector.register(fd, event, watch)
            return
        watch = key.data
        if not isinstance(watch, _FdCallbacks):
            raise BadFileDescriptorError(
                "fd %d is owned by a transport; close the transport first" % fd)
        watch.set(event, handle)
        self._selector.modify(fd, key.events | event, watch)

    def _remove_fd_callback(self, fd: int, event: int) -> bool:
        if self._closed:
            return False
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            return False
        watch = key.data
        if not isinstance(watch, _FdCallbacks) or not key.events & event:
            return False
        watch.set(event, None)
        self._rewatch(fd, key.events & ~event, watch)
        return True

    def _drain_wakeup(self) -> None:
        """Read the self-pipe: wake-up bytes are dropped, signal numbers queue handlers."""
        self._wake_pending = False
        while True:
            try:
                data = self._wakeup_reader.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signal_number in data:
                if signal_number:
                    handle = self._signal_handlers.get(signal_number)
                    if handle is not None:
                        self._ready.append(handle)

    def _drop_closed_fds(self) -> None:
        """Unregister fds closed behind the selector's back (select() said EBADF)."""
        for key in list(self._selector.get_map().values()):
            try:
                os.fstat(key.fd)
            except OSError:
                logger.error("fd %d was closed while registered; dropping its watcher %r",
                             key.fd, key.data)
                self._selector.unregister(key.fd)



class _FdCallbacks:
    """The watcher for an fd added with ``add_reader`` / ``add_writer``."""

    __slots__ = ("reader", "writer")

    def __init__(self) -> None:
        self.reader: Optional[Handle] = None
        self.writer: Optional[Handle] = None

    def set(self, event: int, handle: Optional[Handle]) -> None:
        if event == EVENT_READ:
            self.reader = handle
        else:
            self.writer = handle

    def on_readable(self) -> None:
        handle = self.reader
        if handle is not None:
            handle._callback(*handle._args)

    def on_writable(self) -> None:
        handle = self.writer
        if handle is not None:
            handle._callback(*handle._args)

    def __repr__(self) -> str:
        return "<fd callbacks reader=%r writer=%r>" % (self.reader, self.writer)


def _fd_number(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        return fileobj
    try:
        return int(fileobj.fileno())
    except (AttributeError, TypeError, ValueError, OSError):
        raise BadFileDescriptorError(
            "expected an fd number or an object with fileno(), got %r" % (fileobj,)) from None


def _checked_fd(fileobj: Any) -> int:
    fd = _fd_number(fileobj)
    if fd < 0:
        raise BadFileDescriptorError("fd %d is negative (a closed socket?)" % fd)
    try:
        os.fstat(fd)
    except OSError as exc:
        raise BadFileDescriptorError("fd %d is not open: %s" % (fd, exc.strerror)) from None
    return fd


def _ignore_signal(signum: int, frame: Any) -> None:
    """Python-level handler for loop signals; the work happens via the wake-up fd."""
