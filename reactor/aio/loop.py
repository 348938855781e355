"""ReactorEventLoop: asyncio's event loop interface on reactor's loop.

asyncio splits an event loop in two: *policy* written once in pure Python
(``base_events.BaseEventLoop``: futures, tasks, ``run_until_complete``,
executors, ``create_connection``'s address juggling, ``create_server``,
``start_tls``, exception handlers) and *mechanism* each loop provides: a
pass (``_run_once``), timers, fd callbacks, transports. uvloop replaces the
mechanism with libuv; we replace it with reactor. One pass of this loop is
one pass of a ``reactor.Reactor`` (``reactor/loop.py``), and the pieces map
one to one:

============================  =========================================
asyncio                       here
============================  =========================================
``_ready`` deque              the reactor's ready deque (the same object)
``_scheduled`` heap           the reactor's timer wheel: O(1) schedule
                              and cancel; a timer never fires early, at
                              most one tick (1 ms) late
selector + ``(r, w)`` keys    reactor's poller (epoll called directly)
``_SelectorSocketTransport``  ``AioStreamTransport`` (``transports.py``)
self-pipe, signal wakeup fd   reactor's ``Wakeup``
============================  =========================================

What runs where in one pass: the reactor waits, dispatches I/O (a
transport's ``on_readable`` calls ``data_received`` at once; an
``add_reader`` callback is queued, as asyncio does), expires due timers
into the ready deque, then runs what was queued before that step. The
ready deque holds two kinds of entries, and ``_Core._run_ready`` tells them
apart by class: an ``asyncio.Handle`` runs with its ``contextvars`` context
and asyncio's error report (``Handle._run``); a reactor entry (a wheel
timer, whose callback is an asyncio ``TimerHandle._run``, or a callback of
a reactor protocol served through ``loop.reactor``) is called directly.

Sockets, servers and Unix/pipe/subprocess support live in ``sockets.py``
and ``unix.py``, mixed into the class.
"""

import asyncio
import logging
import signal
from asyncio import base_events, events, format_helpers, futures, sslproto
from typing import Any, Callable, Dict, Optional

from ..network import Reactor
from ..timers import Timer as WheelTimer
from .sockets import SocketOps
from .transports import AioDatagramTransport, AioStreamTransport, file_size
from .unix import UnixOps

logger = logging.getLogger("asyncio")    # asyncio's slow-callback warnings go where asyncio's do

_AioHandle = events.Handle
_INF = float("inf")
#: The block ``loop.sendfile``'s fallback reads and writes at a time.
SENDFILE_BLOCK_BYTES = 16 * 1024


class _Core(Reactor):
    """The reactor under a ReactorEventLoop: runs asyncio handles and its own in one deque."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.aio_debug = False
        self.current_handle: Any = None

    def _run_ready(self, count: int) -> None:
        """Run the first ``count`` ready entries: asyncio handles in their context, ours directly."""
        # Hot path: once per pass; one class test per callback.
        if self.aio_debug:
            self._run_ready_debug(count)
            return
        # asyncio's Handle._run is inlined: one frame less for every task
        # step and future callback; its error report is _report_handle.
        popleft = self._ready.popleft
        for _ in range(count):
            handle = popleft()
            if handle.__class__ is _AioHandle:
                if handle._cancelled:
                    continue
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    _report_handle(handle, exc)
                continue
            callback = handle._callback
            if callback is None:                 # a cancelled wheel entry or reactor handle
                continue
            try:
                callback(*handle._args)
            except Exception as exc:
                self._report(exc, callback, "callback")

    def _run_ready_debug(self, count: int) -> None:
        """The debug twin: asyncio's slow-callback warning and ``_current_handle``."""
        popleft = self._ready.popleft
        clock = self._clock
        for _ in range(count):
            handle = popleft()
            started = clock()
            if handle.__class__ is _AioHandle:
                if handle._cancelled:
                    continue
                self.current_handle = handle
                try:
                    handle._run()
                finally:
                    self.current_handle = None
            else:
                callback = handle._callback
                if callback is None:
                    continue
                try:
                    callback(*handle._args)
                except Exception as exc:
                    self._report(exc, callback, "callback")
            took = clock() - started
            if took >= self.slow_callback_seconds:
                logger.warning("Executing %s took %.3f seconds", handle, took)


def _report_handle(handle: events.Handle, exc: BaseException) -> None:
    """Report an exception from an asyncio handle's callback as ``Handle._run`` does."""
    context = {"message": "Exception in callback %s" % (
                   format_helpers._format_callback_source(handle._callback, handle._args),),
               "exception": exc, "handle": handle}
    if handle._source_traceback:
        context["source_traceback"] = handle._source_traceback
    handle._loop.call_exception_handler(context)


class ReactorEventLoop(SocketOps, UnixOps, base_events.BaseEventLoop):
    """An ``asyncio`` event loop whose mechanism is reactor: its poller, wheel and transports.

    Use it like any asyncio loop (``reactor.aio.run(main())``,
    ``reactor.aio.install()`` then ``asyncio.run``). ``loop.reactor`` is the
    ``reactor.Reactor`` underneath: its ``listen_tcp`` and ``call_later``
    work on the same thread, in the same passes, beside coroutines.

    Parameters are the reactor's (all optional): ``selector`` (any
    ``selectors.BaseSelector``), ``clock`` (a zero-argument monotonic time
    function), ``tick_seconds`` (the wheel's granularity, 1 ms).
    """

    def __init__(self, selector: Any = None, clock: Optional[Callable[[], float]] = None,
                 tick_seconds: float = 0.001) -> None:
        core = self._core = _Core(selector=selector, clock=clock, tick_seconds=tick_seconds,
                                  debug=False)
        super().__init__()
        self._ready = core._ready                    # one deque: asyncio's and the reactor's
        self._timers = core._timers
        self._clock = core._clock
        watchers = core._watchers
        self._watchers = watchers
        # Reactor transports register through these three, as on a Reactor.
        self._watch, self._rewatch = watchers.watch, watchers.rewatch
        self._unwatch = watchers.unwatch
        self._serving: Dict[int, Any] = {}
        core.set_exception_handler(self._core_exception)

    @property
    def _selector(self) -> Any:
        """The reactor's poller (asyncio's loops name their selector so; None once closed)."""
        return None if self._closed else self._core._poller

    @property
    def reactor(self) -> Reactor:
        """The reactor under this loop: reactor protocols and coroutines share its passes."""
        return self._core

    # -- time and timers ----------------------------------------------------------

    def time(self) -> float:
        """Return the loop's monotonic time (the reactor's clock)."""
        return self._clock()

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: Any = None) -> asyncio.TimerHandle:
        """Schedule ``callback(*args)`` at loop time ``when`` on the timer wheel."""
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()
        if self._debug:
            self._check_thread()
            self._check_callback(callback, "call_at")
        timer = WheelTimerHandle(when, callback, args, self, context)
        if when < _INF:                  # a deadline at infinity never fires: keep no entry
            timer._entry = self._timers.schedule(when, timer._run, ())
        return timer

    def call_soon(self, callback: Callable[..., Any], *args: Any,
                  context: Any = None) -> asyncio.Handle:
        """Queue ``callback(*args)`` on the reactor's ready deque (FIFO), in ``context``."""
        # Hot path: every future's done-callbacks and every task step come
        # through here. asyncio's own is two calls deep; debug mode takes it.
        if self._closed or self._debug:
            return super().call_soon(callback, *args, context=context)
        handle = _AioHandle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def _timer_handle_cancelled(self, handle: Any) -> None:
        """asyncio counts cancelled heap entries; the wheel frees them at once."""

    # -- running --------------------------------------------------------------------

    def run_forever(self) -> None:
        """Run until ``stop()``; the reactor underneath counts as running on this thread too."""
        self._check_closed()
        self._check_running()
        self._core._enter("run_forever")   # reactor.get_running_loop() is the core, meanwhile
        try:
            super().run_forever()
        finally:
            self._core._leave()

    def _run_once(self) -> None:
        """One reactor pass: wait (not at all if stopping), I/O, timers, ready callbacks."""
        self._core._run_once(0.0 if self._stopping else None)

    def _write_to_self(self) -> None:
        self._core._wakeup.wake()

    def _process_events(self, event_list: Any) -> None:
        """Unused: the reactor dispatches I/O itself (asyncio's abstract hook)."""

    def set_debug(self, enabled: bool) -> None:
        """Turn asyncio's debug mode on or off (slow-callback warnings, thread checks)."""
        super().set_debug(enabled)
        self._core.aio_debug = bool(enabled)

    @property
    def slow_callback_duration(self) -> float:
        """Callbacks slower than this (seconds) are logged in debug mode."""
        return self._core.slow_callback_seconds

    @slow_callback_duration.setter
    def slow_callback_duration(self, seconds: float) -> None:
        self._core.slow_callback_seconds = seconds

    @property
    def _current_handle(self) -> Any:
        return self._core.current_handle

    @_current_handle.setter
    def _current_handle(self, handle: Any) -> None:
        self._core.current_handle = handle

    def close(self) -> None:
        """Close the loop: drop pending callbacks, stop the executor, release the reactor."""
        if self.is_running():
            raise RuntimeError("Cannot close a running event loop")
        if self._closed:
            return
        super().close()
        for fd in list(self._serving):
            self._stop_serving_fd(fd)
        self._core.close()

    def _core_exception(self, core: Any, context: Dict[str, Any]) -> None:
        self.call_exception_handler(context)

    # -- signals ------------------------------------------------------------------------

    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` as a callback whenever ``sig`` arrives (main thread only)."""
        if asyncio.iscoroutine(callback) or asyncio.iscoroutinefunction(callback):
            raise TypeError("coroutines cannot be used with add_signal_handler()")
        self._check_signal(sig)
        self._check_closed()
        handle = _AioHandle(callback, args, self, None)
        try:
            self._core._wakeup.add_signal_handler(sig, handle)
        except (RuntimeError, ValueError, OSError) as exc:
            raise RuntimeError("sig %s cannot be caught: %s" % (sig, exc)) from None

    def remove_signal_handler(self, sig: int) -> bool:
        """Restore ``sig``'s previous handler; return False if none was added."""
        self._check_signal(sig)
        if self._closed:
            return False
        removed = self._core._wakeup.remove_signal_handler(sig)
        if removed and sig == signal.SIGINT and signal.getsignal(sig) in (None, signal.SIG_DFL):
            signal.signal(sig, signal.default_int_handler)
        return removed

    @staticmethod
    def _check_signal(sig: int) -> None:
        if not isinstance(sig, int):
            raise TypeError("sig must be an int, not %r" % (sig,))
        if sig not in signal.valid_signals():
            raise ValueError("invalid signal number %s" % sig)

    # -- transports ----------------------------------------------------------------------

    def _make_socket_transport(self, sock: Any, protocol: Any, waiter: Any = None, *,
                               extra: Any = None, server: Any = None) -> AioStreamTransport:
        transport = AioStreamTransport(self, sock, protocol, extra, server)
        self.call_soon(transport.start)          # connection_made, then read
        if waiter is not None:
            self.call_soon(futures._set_result_unless_cancelled, waiter, None)
        return transport

    def _make_ssl_transport(self, rawsock: Any, protocol: Any, sslcontext: Any,
                            waiter: Any = None, *, server_side: bool = False,
                            server_hostname: Optional[str] = None, extra: Any = None,
                            server: Any = None, **timeouts: Any) -> Any:
        """TLS is asyncio's own ``SSLProtocol`` riding on our stream transport."""
        ssl_protocol = sslproto.SSLProtocol(self, protocol, sslcontext, waiter, server_side,
                                            server_hostname, **timeouts)
        self._make_socket_transport(rawsock, ssl_protocol, extra=extra, server=server)
        return ssl_protocol._app_transport

    def _make_datagram_transport(self, sock: Any, protocol: Any, address: Any = None,
                                 waiter: Any = None, extra: Any = None) -> AioDatagramTransport:
        transport = AioDatagramTransport(self, sock, protocol, address)
        self.call_soon(transport.start)
        if waiter is not None:
            self.call_soon(futures._set_result_unless_cancelled, waiter, None)
        return transport

    async def _sendfile_native(self, transp: Any, file: Any, offset: int,
                               count: Optional[int]) -> int:
        """``loop.sendfile`` on a plain stream: ``os.sendfile`` between writable waits."""
        if not isinstance(transp, AioStreamTransport):
            raise asyncio.SendfileNotAvailableError("not a reactor.aio stream transport")
        size = file_size(file)
        end = size if not count else min(size, offset + count)
        position = offset
        was_reading = transp.begin_sendfile()
        try:
            while position < end:
                await self._drained(transp)
                try:
                    sent = transp.sendfile(file, position, end - position)
                except (BlockingIOError, InterruptedError):
                    continue
                if not sent:
                    break
                position += sent
        finally:
            transp.end_sendfile(was_reading)
            if position > offset and hasattr(file, "seek"):
                file.seek(position)
        return position - offset

    async def _sendfile_fallback(self, transp: Any, file: Any, offset: int,
                                 count: Optional[int]) -> int:
        """``loop.sendfile`` by reading (in the executor) and writing, one block at a time."""
        if not isinstance(transp, AioStreamTransport):       # sslproto's, a _FlowControlMixin
            return await super()._sendfile_fallback(transp, file, offset, count)
        if offset:
            file.seek(offset)
        total = 0
        was_reading = transp.begin_sendfile()
        try:
            while not count or total < count:
                block = SENDFILE_BLOCK_BYTES if not count else min(SENDFILE_BLOCK_BYTES,
                                                                   count - total)
                data = await self.run_in_executor(None, file.read, block)
                if not data:
                    break
                await self._drained(transp)
                transp.end_sendfile(False)          # our own write, in order
                transp.write(data)
                transp.begin_sendfile()
                total += len(data)
            await self._drained(transp)
        finally:
            transp.end_sendfile(was_reading)
            if total and hasattr(file, "seek"):
                file.seek(offset + total)
        return total

    async def _drained(self, transp: AioStreamTransport) -> None:
        """Wait until ``transp`` has nothing queued and its socket is writable."""
        waiter = self.create_future()
        transp.sendfile_ready(waiter)
        await waiter


class WheelTimerHandle(asyncio.TimerHandle):
    """asyncio's ``TimerHandle`` whose deadline lives in the reactor's timer wheel."""

    __slots__ = ("_entry",)

    def __init__(self, when: float, callback: Callable[..., Any], args: Any, loop: Any,
                 context: Any = None) -> None:
        super().__init__(when, callback, args, loop, context)
        self._entry: Optional[WheelTimer] = None

    def cancel(self) -> None:
        """Cancel the callback and free its wheel slot at once (O(1))."""
        entry = self._entry
        if entry is not None:
            self._entry = None
            entry.cancel()
        super().cancel()

