"""reactor.aio: async/await on reactor, as asyncio's event loop.

asyncio programs (coroutines, ``asyncio.open_connection``, ``wait_for``,
``TaskGroup``, aiohttp, websockets ...) run unchanged on reactor's loop,
the way they run on uvloop::

    import reactor.aio

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", 7000)
        ...

    reactor.aio.run(main())          # or: reactor.aio.install(); asyncio.run(main())

The story for a student, bottom to top: reactor calls callbacks when
sockets are ready (``reactor/loop.py``); a *future* is a callback slot
filled later (``Future.add_done_callback``); a *task* steps a coroutine
each time the future it awaits is done, by queueing its next step with
``call_soon`` on the very ready deque reactor runs (``loop.py`` here,
then CPython's ``asyncio/tasks.py``). Nothing else is needed: coroutines
are callbacks that remember where they were.

What is whose: asyncio's pure-Python policy (futures, tasks, executors,
``create_connection``, ``create_server``, TLS's ``SSLProtocol``, pipe and
subprocess transports) runs as written; the mechanism under it (the pass,
the timer wheel, the poller, the stream and datagram transports, signals)
is reactor's. See docs/ASYNC.md for what differs from asyncio's own loop.
"""

import asyncio
import sys
from typing import Any, Coroutine, Optional, TypeVar

from .loop import ReactorEventLoop, WheelTimerHandle
from .transports import AioBufferedStreamTransport, AioDatagramTransport, AioStreamTransport

__all__ = ["ReactorEventLoop", "EventLoopPolicy", "new_event_loop", "install", "run",
           "AioStreamTransport", "AioBufferedStreamTransport", "AioDatagramTransport",
           "WheelTimerHandle"]

T = TypeVar("T")


def new_event_loop() -> ReactorEventLoop:
    """Return a new asyncio event loop running on reactor."""
    return ReactorEventLoop()


class EventLoopPolicy(asyncio.DefaultEventLoopPolicy):  # type: ignore[misc,valid-type]
    """asyncio's default policy, making reactor loops (``asyncio.set_event_loop_policy``)."""

    _loop_factory = ReactorEventLoop


def install() -> None:
    """Make reactor asyncio's loop from now on: ``asyncio.run`` and ``new_event_loop`` use it."""
    asyncio.set_event_loop_policy(EventLoopPolicy())


def run(main: Coroutine[Any, Any, T], *, debug: Optional[bool] = None) -> T:
    """Run coroutine ``main`` on a new reactor loop and close it: ``asyncio.run`` for reactor.

    Like ``asyncio.run``: refuses to run inside a running loop; at the end,
    cancels the tasks left, finishes async generators and the default
    executor, and closes the loop. Ctrl-C cancels ``main`` (Python 3.11+).
    """
    if asyncio._get_running_loop() is not None:
        raise RuntimeError("reactor.aio.run() cannot be called from a running event loop")
    if sys.version_info >= (3, 11):
        with asyncio.Runner(debug=debug, loop_factory=new_event_loop) as runner:  # novermin
            return runner.run(main)
    return _run_before_311(main, debug)


def _run_before_311(main: Coroutine[Any, Any, T], debug: Optional[bool]) -> T:
    """``asyncio.run``'s steps, for Pythons whose asyncio has no ``Runner``."""
    if not asyncio.iscoroutine(main):
        raise ValueError("a coroutine was expected, got %r" % (main,))
    loop = new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all_tasks(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            if hasattr(loop, "shutdown_default_executor"):
                loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all_tasks(loop: ReactorEventLoop) -> None:
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler({"message": "unhandled exception during "
                                         "reactor.aio.run() shutdown",
                                         "exception": task.exception(), "task": task})
