"""Accepting connections: bounded batches, and the bad day the process runs out of fds.

Accepting is where a public server most often falls over, so this module
is mostly about the bad days. An :class:`Acceptor` watches a server's
listening sockets and hands each accepted connection to the server
(``on_accept(conn, address)``):

* **Bounded batches.** Each readiness event of a listening socket accepts at
  most ``Limits.accept_batch`` connections, then lets the loop serve the
  connections it already has.
* **Out of file descriptors** (EMFILE/ENFILE, or ENOBUFS/ENOMEM). ``accept()``
  fails, but the pending connection stays in the backlog, so a
  level-triggered selector reports the socket readable again at once: the
  classic 100%-CPU spin. We keep one spare fd open for this moment (the
  libev/libuv trick): close it, accept the pending connection and close that
  at once (the client gets a prompt close instead of hanging in the
  backlog), re-open the spare, and stop accepting for
  ``Limits.accept_backoff_seconds`` on the timer wheel. One warning is
  logged per episode, and one info line when accepting works again.
* **A connection that died in the backlog** (ECONNABORTED ...) is skipped;
  any other error pauses accepting for the same back-off, with one log line.
"""

import errno
import logging
import os
import socket
from typing import Any, Callable, Dict, List, Optional

from .addresses import format_address
from .loop import EVENT_READ
from .policy import Limits

logger = logging.getLogger("reactor")

#: accept() errors that mean "the process or system is out of resources".
OUT_OF_RESOURCES_ERRNOS = frozenset(
    getattr(errno, name) for name in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
    if hasattr(errno, name))
#: accept() errors about one connection that died in the backlog: skip it.
ACCEPT_SKIP_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ECONNABORTED", "EPROTO", "EPERM", "ENETDOWN",
                                      "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH",
                                      "EOPNOTSUPP", "ENETUNREACH")
    if hasattr(errno, name))


class Acceptor:
    """Accepts on ``sockets`` for one server; ``counters`` is the server's counter dict."""

    def __init__(self, loop: Any, sockets: List[socket.socket], limits: Limits,
                 on_accept: Callable[[socket.socket, Any], None],
                 counters: Dict[str, int]) -> None:
        self._loop = loop
        self._limits = limits
        self._on_accept = on_accept
        self._counters = counters
        self._listeners = [_Listener(self, sock) for sock in sockets]
        self._spare_fd: Optional[int] = _open_spare_fd()
        self._starved = False
        self._backoff_timer: Any = None
        self._closed = False
        for listener in self._listeners:
            listener.watch()

    def close(self) -> None:
        """Stop accepting, close the listening sockets and the spare fd."""
        self._closed = True
        for listener in self._listeners:
            listener.unwatch()
            listener.sock.close()
        if self._backoff_timer is not None:
            self._backoff_timer.cancel()
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None

    def accept_ready(self, listener: "_Listener") -> None:
        """Accept up to one batch of pending connections on ``listener``."""
        sock = listener.sock
        for _ in range(self._limits.accept_batch):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES_ERRNOS:
                    self._out_of_fds(listener, exc)
                    return
                if exc.errno in ACCEPT_SKIP_ERRNOS:
                    continue
                logger.error("accept() on %s failed: %s; pausing accept for %.3f s",
                             describe_socket(sock), exc, self._limits.accept_backoff_seconds)
                self._pause()
                return
            if self._starved:
                self._starved = False
                logger.info("accepting connections again on %s", describe_socket(sock))
            self._on_accept(conn, address)

    def _out_of_fds(self, listener: "_Listener", exc: OSError) -> None:
        """Shed one pending connection using the spare fd, then pause accepting."""
        if not self._starved:
            self._starved = True
            self._counters["out_of_fds_episodes"] += 1
            logger.warning("out of file descriptors on %s (%s): closing pending connections "
                           "and pausing accept for %.3f s", describe_socket(listener.sock),
                           exc.strerror, self._limits.accept_backoff_seconds)
        if self._spare_fd is not None:
            os.close(self._spare_fd)
            self._spare_fd = None
            try:
                conn, _ = listener.sock.accept()
                conn.close()
                self._counters["rejected_out_of_fds"] += 1
            except OSError:
                pass
            self._spare_fd = _open_spare_fd()
        self._pause()

    def _pause(self) -> None:
        """Stop watching every listener and watch them again after the back-off delay."""
        for listener in self._listeners:
            listener.unwatch()
        if self._backoff_timer is None:
            self._backoff_timer = self._loop.call_later(
                self._limits.accept_backoff_seconds, self._resume)

    def _resume(self) -> None:
        self._backoff_timer = None
        if self._closed:
            return
        if self._spare_fd is None:
            self._spare_fd = _open_spare_fd()
        for listener in self._listeners:
            listener.watch()


class _Listener:
    """The selector watcher for one listening socket."""

    __slots__ = ("acceptor", "sock", "watching")

    def __init__(self, acceptor: Acceptor, sock: socket.socket) -> None:
        self.acceptor = acceptor
        self.sock = sock
        self.watching = False

    def watch(self) -> None:
        if not self.watching:
            self.acceptor._loop._watch(self.sock, EVENT_READ, self)
            self.watching = True

    def unwatch(self) -> None:
        if self.watching:
            self.acceptor._loop._unwatch(self.sock.fileno())
            self.watching = False

    def on_readable(self) -> None:
        self.acceptor.accept_ready(self)

    def on_writable(self) -> None:
        pass


def describe_socket(sock: socket.socket) -> str:
    """Render a listening socket's address for a log line."""
    try:
        return format_address(sock.getsockname())
    except OSError:
        return "a closed socket"


def _open_spare_fd() -> Optional[int]:
    try:
        return os.open(os.devnull, os.O_RDONLY)
    except OSError:
        return None
