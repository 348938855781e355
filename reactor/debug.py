"""Debug mode: the loop's steps 2 and 3 with every call timed, and slow ones named.

A callback that blocks (a ``time.sleep``, a CPU-bound loop, a blocking
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
import selectors
import time
from typing import Any, Callable, Tuple

from .protocols import innermost_protocol
from .timers import callback_name

logger = logging.getLogger("reactor")

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


def dispatch_timed(loop: Any, events: Any) -> None:
    """Step 2 in debug mode: dispatch I/O as ``_run_once`` does, timing each call."""
    for key, mask in events:
        watcher = key.data
        try:
            if mask & EVENT_READ:
                call_timed(loop, watcher.on_readable, (), watcher, "read")
            if mask & EVENT_WRITE:
                call_timed(loop, watcher.on_writable, (), watcher, "write")
        except Exception as exc:
            loop._watcher_failed(watcher, exc)


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
    return "%s.%s (via %s.on_%sable)" % (type(protocol).__qualname__, method,
                                         type(watcher).__name__, event)
