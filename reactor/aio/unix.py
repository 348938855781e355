"""Unix sockets, pipes, subprocesses and ``sock_sendfile`` for ReactorEventLoop.

Discussion: for these, asyncio's own Unix code is already a pure *user* of
a loop. Its pipe transports (``unix_events._UnixReadPipeTransport`` ...)
need only ``call_soon`` and ``_add_reader`` / ``_add_writer``, which our
loop provides on reactor's poller; its subprocess support needs a child
watcher (a thread per child, or a pidfd on the poller) and those
transports. Rewriting them would add a few hundred lines and a second
place for subprocess bugs, for no gain in speed: a subprocess is not a hot
path. So the functions below are the interpreter's own, bound to our loop,
which keeps them matched to the running Python version. What is reactor's
here is the registration of every pipe and pidfd, and ``os.sendfile``.

On a platform without ``asyncio.unix_events`` (Windows) these methods are
absent and asyncio's ``NotImplementedError`` says so.
"""

import asyncio
import os
import selectors
import socket
from typing import Any, Optional

try:
    from asyncio import unix_events
except ImportError:                        # pragma: no cover - Windows
    unix_events = None                     # type: ignore[assignment]

EVENT_WRITE = selectors.EVENT_WRITE


class UnixOps:
    """The Unix half of ReactorEventLoop (a mixin: it uses the loop's attributes)."""

    if unix_events is not None:
        # The interpreter's own functions, bound to our loop (see the docstring).
        _unix_loop = vars(unix_events._UnixSelectorEventLoop)
        create_unix_connection = _unix_loop["create_unix_connection"]
        create_unix_server = _unix_loop["create_unix_server"]
        _make_subprocess_transport = _unix_loop["_make_subprocess_transport"]
        if "_child_watcher_callback" in _unix_loop:
            _child_watcher_callback = _unix_loop["_child_watcher_callback"]
        del _unix_loop

        def _make_read_pipe_transport(self, pipe: Any, protocol: Any, waiter: Any = None,
                                      extra: Any = None) -> Any:
            return unix_events._UnixReadPipeTransport(self, pipe, protocol, waiter, extra)

        def _make_write_pipe_transport(self, pipe: Any, protocol: Any, waiter: Any = None,
                                       extra: Any = None) -> Any:
            return unix_events._UnixWritePipeTransport(self, pipe, protocol, waiter, extra)

    async def _sock_sendfile_native(self, sock: socket.socket, file: Any, offset: int,
                                    count: Optional[int]) -> int:
        """``sock_sendfile`` with ``os.sendfile``: the kernel copies, we wait for writable."""
        if not hasattr(os, "sendfile"):
            raise asyncio.SendfileNotAvailableError("os.sendfile() is not available")
        try:
            fileno = file.fileno()
            size = os.fstat(fileno).st_size
        except (AttributeError, OSError, ValueError):
            raise asyncio.SendfileNotAvailableError("not a regular file") from None
        end = size if not count else offset + count
        position = offset
        try:
            while position < end:
                try:
                    sent = os.sendfile(sock.fileno(), fileno, position, end - position)
                except (BlockingIOError, InterruptedError):
                    sent = await self._when_ready(sock, EVENT_WRITE, os.sendfile, sock.fileno(),
                                                  fileno, position, end - position)
                except OSError:
                    if position == offset:       # not a file sendfile() can read: fall back
                        raise asyncio.SendfileNotAvailableError("os.sendfile call failed")
                    raise
                if not sent:
                    break
                position += sent
        finally:
            if position > offset:
                os.lseek(fileno, position, os.SEEK_SET)
        return position - offset
