"""What the model servers share: the "ready" line, SIGTERM, idle-memory reports, paths, and
the event loop an asyncio program runs on.

One asyncio program (the Protocol echo, the streams echo, aiohttp's hello)
is written once and run on each of ``ASYNCIO_LOOPS``: asyncio's own loop,
uvloop (libuv, C) and ``reactor.aio`` (reactor's loop behind asyncio's
API). ``use_loop(loop)`` installs that loop's policy before the program
starts, as ``uvloop.install()`` does, so ``asyncio.run`` and
``aiohttp.web.run_app`` create it without knowing which it is.
"""

import os
import signal
import sys

#: the repository (reactor is imported from here) and its test certificates
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CERTS = os.path.join(ROOT, "tests", "certs")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

#: loop -> the packages it needs beyond the standard library (a model's ``needs``)
ASYNCIO_LOOPS = {"asyncio": (), "uvloop": ("uvloop",), "reactor.aio": ()}


def use_loop(loop):
    """Make asyncio's new event loops ``loop``'s (one of ``ASYNCIO_LOOPS``): install its
    policy, as ``uvloop.install()`` does; "asyncio" leaves the default alone."""
    if loop == "uvloop":
        import uvloop
        uvloop.install()
    elif loop == "reactor.aio":
        import reactor.aio
        reactor.aio.install()
    elif loop != "asyncio":
        raise ValueError("no asyncio loop named %r (known: %s)"
                         % (loop, ", ".join(ASYNCIO_LOOPS)))


def ready():
    """Say the server accepts: the harness's start_server waits for this line."""
    print("ready", flush=True)


def start_tracing(options):
    """Start tracemalloc for ``--measure-idle`` (``options.trace``); ``--measure-rss``
    does not, since tracing inflates the resident memory it would then measure."""
    if options.trace:
        import tracemalloc
        tracemalloc.start()


def report_idle(count):
    """Print "idle HEAP RSS COUNT": the traced Python heap (0 untraced), the
    resident set from /proc and the open connections, after a collection."""
    import gc
    import tracemalloc
    gc.collect()
    with open("/proc/self/statm") as handle:
        resident = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    print("idle %d %d %d" % (heap, resident, count()), flush=True)


def run_asyncio_until_sigterm(start, on_ready=None, loop="asyncio"):
    """Run ``await start(loop)`` (which returns a server or transport) on ``loop``'s event
    loop (``use_loop``), print ready, and serve until SIGTERM; then close what ``start``
    returned."""
    import asyncio
    use_loop(loop)

    async def main():
        loop = asyncio.get_running_loop()
        served = await start(loop)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        if on_ready is not None:
            on_ready(loop)
        ready()
        await stop
        served.close()
    asyncio.run(main())


def blocking_echo(sock):
    """Echo on a blocking socket until the peer closes (or the connection fails)."""
    import socket
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(data)
    except OSError:
        return
    finally:
        sock.close()


def listening_socket(port, backlog=1024):
    """A blocking TCP socket listening on 127.0.0.1:``port``."""
    import socket
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(backlog)
    return listener
