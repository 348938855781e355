"""When callbacks misbehave: where their exceptions go, and debug mode's slow-callback log.

Exceptions. The loop catches what escapes a callback, once, around each
dispatch, and hands it to ``report``: to the handler set with
``loop.set_exception_handler`` if any (it gets the loop and a context dict:
``message``, ``exception``, and ``callback`` or ``transport`` and
``protocol``), else to the ``reactor`` logger with the traceback. A
handler that itself raises is logged too, and the original error with it.

Slowness. A callback that blocks (a ``time.sleep``, a CPU-bound loop, a blocking
``socket.recv``) freezes every connection: the classic reactor bug. In debug
mode (``Reactor(debug=True)`` or ``REACTOR_DEBUG=1``) the loop runs these
twins of its dispatch and callback steps instead, which time each call and
log the ones slower than ``loop.slow_callback_seconds``, naming the
*user's* method rather than the transport's::

    WARNING slow callback Echo.data_received (via StreamTransport.on_readable) took 0.300 s

They are separate functions so the normal path pays nothing for them:
``_run_once`` tests ``loop._debug`` once per step, not once per call.
"""

import logging
import time
from typing import Any, Callable, Dict, Optional, Tuple

from .poller import READABLE, WRITABLE
from .protocols import innermost_protocol
from .timers import callback_name

logger = logging.getLogger("reactor")


def report(handler: Optional[Callable[[Any, Dict[str, Any]], None]], loop: Any,
           context: Dict[str, Any]) -> None:
    """Send an error ``context`` to ``handler(loop, context)``, or to the log without one."""
    if handler is not None:
        try:
            handler(loop, context)
            return
        except Exception as exc:                # the handler itself failed: log both
            logger.error("exception handler %s failed", callback_name(handler), exc_info=exc)
    logger.error("%s", context.get("message", "unhandled error in a callback"),
                 exc_info=context.get("exception"))


def watcher_failed(loop: Any, watcher: Any, exc: Exception) -> None:
    """An exception escaped ``on_readable`` / ``on_writable``: the watcher's policy decides.

    A transport's ``callback_failed`` ends that one connection (``transports.py``);
    a watcher without one (a user's ``add_reader`` callback) is just reported.
    """
    handler = getattr(watcher, "callback_failed", None)
    if handler is None:
        loop._report(exc, watcher, "I/O callback")
        return
    try:
        handler(exc)
    except Exception as second:
        loop._report(second, handler, "callback_failed")


def dispatch_timed(loop: Any, events: Any) -> None:
    """Step 2 in debug mode: dispatch I/O as ``_run_once`` does, timing each call."""
    watchers = loop._poller.watchers
    for fd, bits in events:
        watcher = watchers.get(fd)
        if watcher is None:
            continue
        try:
            if bits & READABLE:
                call_timed(loop, watcher.on_readable, (), watcher, "read")
            if bits & WRITABLE:
                call_timed(loop, watcher.on_writable, (), watcher, "write")
        except Exception as exc:
            watcher_failed(loop, watcher, exc)


def run_ready_timed(loop: Any, count: int) -> None:
    """Step 3 in debug mode: run the first ``count`` ready callbacks, timing each."""
    popleft = loop._ready.popleft
    for _ in range(count):
        handle = popleft()
        callback = handle._callback
        if callback is None:
            continue
        try:
            call_timed(loop, callback, handle._args)
        except Exception as exc:
            loop._report(exc, callback, "callback")


def call_timed(loop: Any, callback: Callable[..., Any], args: Tuple[Any, ...],
               watcher: Any = None, event: str = "") -> None:
    """Call ``callback(*args)``; log it by name if it took too long (exceptions pass through)."""
    started = time.perf_counter()
    try:
        callback(*args)
    finally:
        elapsed = time.perf_counter() - started
        if elapsed >= loop.slow_callback_seconds:
            name = (watcher_callback_name(watcher, event) if watcher is not None
                    else callback_name(callback))
            logger.warning("slow callback %s took %.3f s", name, elapsed)


def watcher_callback_name(watcher: Any, event: str) -> str:
    """Name the user's method behind a watcher's event, for the slow-callback warning."""
    get_protocol = getattr(watcher, "get_protocol", None)
    if get_protocol is None:
        handle = getattr(watcher, "reader" if event == "read" else "writer", None)
        return callback_name(handle._callback) if handle is not None else repr(watcher)
    protocol = innermost_protocol(get_protocol())
    if event == "read":
        method = "datagram_received" if hasattr(protocol, "datagram_received") else "data_received"
    else:
        method = "resume_writing"
    return "%s.%s (via %s.%s)" % (type(protocol).__qualname__, method, type(watcher).__name__,
                                  "on_readable" if event == "read" else "on_writable")
