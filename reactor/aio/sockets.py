"""File-descriptor callbacks, ``sock_*`` coroutines and accepting, for ReactorEventLoop.

asyncio's low-level socket API, on reactor's poller. Every ``sock_*``
coroutine has the same shape, so it is written once (``_when_ready``)::

    try the operation at once       -> done (the common case: no future)
    EAGAIN: add_reader / add_writer -> each readiness retries it, until it
                                       stops saying EAGAIN or fails
    the future resolves             -> remove the reader / writer

``add_reader`` follows asyncio, not reactor: the callback is *queued* when
the fd is ready and runs in the callback step with its ``contextvars``
context, rather than inside the I/O step.

Servers (``create_server`` is asyncio's own ``base_events`` code) accept
through reactor's ``Acceptor``: bounded batches per readiness event, and the
spare-fd trick when the process runs out of file descriptors, which
asyncio's loop handles with a one-second pause.
"""

import collections
import selectors
import socket
import ssl
from asyncio import events
from typing import Any, Callable, Optional, Tuple

from ..accept import Acceptor
from ..policy import Limits
from ..timers import Handle as ReactorHandle
from ..watchers import FdCallbacks, checked_fileobj

EVENT_READ, EVENT_WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_SERVER_LIMITS = Limits()


class SocketOps:
    """The fd and socket half of ReactorEventLoop (a mixin: it uses the loop's attributes)."""

    # -- add_reader / add_writer ------------------------------------------------

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> events.Handle:
        """Queue ``callback(*args)`` each time ``fd`` is readable, until ``remove_reader``."""
        return self._add_fd_callback(fd, EVENT_READ, callback, args)

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> events.Handle:
        """Queue ``callback(*args)`` each time ``fd`` is writable, until ``remove_writer``."""
        return self._add_fd_callback(fd, EVENT_WRITE, callback, args)

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading; return False if no reader was set."""
        return self._remove_fd_callback(fd, EVENT_READ)

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing; return False if no writer was set."""
        return self._remove_fd_callback(fd, EVENT_WRITE)

    # asyncio's own pipe and subprocess transports call the underscored names.
    _add_reader, _add_writer = add_reader, add_writer
    _remove_reader, _remove_writer = remove_reader, remove_writer

    def _add_fd_callback(self, fd: Any, event: int, callback: Callable[..., Any],
                         args: Tuple[Any, ...]) -> events.Handle:
        self._check_closed()
        if self._debug:
            self._check_callback(callback, "add_reader" if event == EVENT_READ else "add_writer")
        self._ensure_fd_no_transport(fd)
        handle = events.Handle(callback, args, self, None)
        old = self._fd_handle(fd, event)
        self._watchers.add_callback(checked_fileobj(fd), event,
                                    ReactorHandle(self._ready.append, (handle,)))
        if old is not None:
            old.cancel()
        return handle

    def _remove_fd_callback(self, fd: Any, event: int) -> bool:
        if self.is_closed():
            return False
        old = self._fd_handle(fd, event)
        removed = self._watchers.remove_callback(fd, event)
        if old is not None:
            old.cancel()
        return removed

    def _fd_handle(self, fd: Any, event: int) -> Optional[events.Handle]:
        """The asyncio handle registered for ``fd`` and ``event``, if any."""
        key = self._fd_key(fd)
        if key is None or not isinstance(key.data, FdCallbacks):
            return None
        queued = key.data.reader if event == EVENT_READ else key.data.writer
        return None if queued is None else queued._args[0]

    def _fd_key(self, fd: Any) -> Any:
        try:
            return self._core._poller.get_key(fd)
        except (KeyError, ValueError):
            return None

    def _ensure_fd_no_transport(self, fd: Any) -> None:
        """Refuse an fd a transport owns, as asyncio does (RuntimeError)."""
        key = self._fd_key(fd)
        if key is not None and not isinstance(key.data, FdCallbacks):
            raise RuntimeError("File descriptor %r is used by transport %r" % (fd, key.data))

    # -- sock_* coroutines -----------------------------------------------------------

    async def sock_recv(self, sock: socket.socket, n: int) -> bytes:
        """Receive up to ``n`` bytes from a non-blocking socket."""
        self._check_sock(sock)
        try:
            return sock.recv(n)
        except (BlockingIOError, InterruptedError):
            return await self._when_ready(sock, EVENT_READ, "recv", n)

    async def sock_recv_into(self, sock: socket.socket, buf: Any) -> int:
        """Receive into ``buf``; return the number of bytes written."""
        self._check_sock(sock)
        try:
            return sock.recv_into(buf)
        except (BlockingIOError, InterruptedError):
            return await self._when_ready(sock, EVENT_READ, "recv_into", buf)

    async def sock_recvfrom(self, sock: socket.socket, bufsize: int) -> Tuple[bytes, Any]:
        """Receive one datagram of up to ``bufsize`` bytes: ``(data, address)``."""
        self._check_sock(sock)
        try:
            return sock.recvfrom(bufsize)
        except (BlockingIOError, InterruptedError):
            return await self._when_ready(sock, EVENT_READ, "recvfrom", bufsize)

    async def sock_recvfrom_into(self, sock: socket.socket, buf: Any,
                                 nbytes: int = 0) -> Tuple[int, Any]:
        """Receive one datagram into ``buf``: ``(nbytes, address)``."""
        self._check_sock(sock)
        nbytes = nbytes or len(buf)
        try:
            return sock.recvfrom_into(buf, nbytes)
        except (BlockingIOError, InterruptedError):
            return await self._when_ready(sock, EVENT_READ, "recvfrom_into", buf,
                                          nbytes)

    async def sock_sendto(self, sock: socket.socket, data: Any, address: Any) -> int:
        """Send one datagram to ``address``; return the bytes sent."""
        self._check_sock(sock)
        try:
            return sock.sendto(data, address)
        except (BlockingIOError, InterruptedError):
            return await self._when_ready(sock, EVENT_WRITE, "sendto", data, address)

    async def sock_sendall(self, sock: socket.socket, data: Any) -> None:
        """Send all of ``data``, waiting for the socket to take each part."""
        self._check_sock(sock)
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        view = memoryview(data).cast("B")
        if sent == len(view):
            return
        position = [sent]

        def send_rest() -> None:
            position[0] += sock.send(view[position[0]:])
            if position[0] < len(view):
                raise BlockingIOError             # not yet: wait for the next writable

        await self._when_ready(sock, EVENT_WRITE, send_rest)

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        """Connect a non-blocking socket; a host name is resolved off the loop first."""
        self._check_sock(sock)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            resolved = await self._ensure_resolved(address, family=sock.family, type=sock.type,
                                                   proto=sock.proto, loop=self)
            address = resolved[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        await self._when_ready(sock, EVENT_WRITE, _connect_result, sock, address)

    async def sock_accept(self, sock: socket.socket) -> Tuple[socket.socket, Any]:
        """Accept one connection: ``(conn, address)``, ``conn`` non-blocking."""
        self._check_sock(sock)
        try:
            return _accept(sock)
        except (BlockingIOError, InterruptedError):
            return await self._when_ready(sock, EVENT_READ, _accept, sock)

    async def _when_ready(self, sock: socket.socket, event: int, operation: Any,
                          *args: Any) -> Any:
        """Retry an operation each time ``sock`` is ready, until it stops saying EAGAIN.

        ``operation`` is a socket method's name, looked up on each try (as
        asyncio does: a test may swap the method), or a function.
        """
        future = self.create_future()
        fd = sock.fileno()
        handle = self._add_fd_callback(fd, event, _attempt, (future, sock, operation, args))
        try:
            return await future
        finally:
            # Cancelled, another sock_* call may have registered the fd since: leave it be.
            if not self.is_closed() and self._fd_handle(fd, event) is handle:
                self._remove_fd_callback(fd, event)

    def _check_sock(self, sock: socket.socket) -> None:
        if isinstance(sock, ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if self._debug and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    # -- servers ------------------------------------------------------------------------

    def _start_serving(self, protocol_factory: Callable[[], Any], sock: socket.socket,
                       sslcontext: Any = None, server: Any = None, backlog: int = 100,
                       ssl_handshake_timeout: Any = None,
                       ssl_shutdown_timeout: Any = None) -> None:
        """Accept on ``sock`` for asyncio's ``Server`` (its ``_start_serving`` calls this)."""
        timeouts = {"ssl_handshake_timeout": ssl_handshake_timeout}
        if ssl_shutdown_timeout is not None:
            timeouts["ssl_shutdown_timeout"] = ssl_shutdown_timeout

        def accepted(conn: socket.socket, address: Any) -> None:
            self._accepted(conn, address, protocol_factory, sslcontext, server, timeouts)

        self._serving[sock.fileno()] = Acceptor(self._core, [sock], _SERVER_LIMITS, accepted,
                                                collections.Counter())

    def _stop_serving(self, sock: socket.socket) -> None:
        """Stop accepting on ``sock`` and close it (asyncio's ``Server.close``)."""
        if not self._stop_serving_fd(sock.fileno()):
            sock.close()

    def _stop_serving_fd(self, fd: int) -> bool:
        acceptor = self._serving.pop(fd, None)
        if acceptor is None:
            return False
        acceptor.close()
        return True

    def _accepted(self, conn: socket.socket, address: Any, protocol_factory: Callable[[], Any],
                  sslcontext: Any, server: Any, timeouts: Any) -> None:
        """Make the protocol and transport for one accepted connection."""
        conn.setblocking(False)
        extra = {"peername": address}
        try:
            protocol = protocol_factory()
            if sslcontext:
                waiter = self.create_future()
                self._make_ssl_transport(conn, protocol, sslcontext, waiter, server_side=True,
                                         extra=extra, server=server, **timeouts)
                waiter.add_done_callback(self._handshake_done)
            else:
                self._make_socket_transport(conn, protocol, extra=extra, server=server)
        except Exception as exc:
            conn.close()
            self.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": exc})

    def _handshake_done(self, waiter: Any) -> None:
        """A server-side TLS handshake ended; in debug mode, report a failure as asyncio does."""
        if not waiter.cancelled() and waiter.exception() is not None and self._debug:
            self.call_exception_handler({
                "message": "Error on transport creation for incoming connection",
                "exception": waiter.exception()})


def _attempt(future: Any, sock: socket.socket, operation: Any, args: Tuple[Any, ...]) -> None:
    """One readiness event of a ``sock_*`` call: try again; settle the future unless EAGAIN."""
    if future.done():
        return
    try:
        if operation.__class__ is str:
            result = getattr(sock, operation)(*args)
        else:
            result = operation(*args)
    except (BlockingIOError, InterruptedError):
        return
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _connect_result(sock: socket.socket, address: Any) -> None:
    """A connecting socket became writable: raise the connect error, if there was one."""
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, "Connect call failed %s" % (address,))


def _accept(sock: socket.socket) -> Tuple[socket.socket, Any]:
    conn, address = sock.accept()
    conn.setblocking(False)
    return conn, address
