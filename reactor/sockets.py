"""Sockets: making listening and datagram sockets, Unix socket files, asking a socket about its peer.

Everything here runs once per server or client, before the loop is
involved: create a socket, set its options, bind, listen, and make it
non-blocking. Each function closes what it created when a step fails, and
says which address failed.

Unix sockets live at a path in the filesystem, and the file outlives a
server that crashed. Binding again fails with EADDRINUSE, so servers remove
a *stale* file first, carefully: only if it is a socket, and only if nobody
answers on it (a live server's file is never taken). On close a server
removes its file only if the path still holds the very file it created
(same device and inode), never one another process put there since.
"""

import errno
import os
import select
import socket
import stat
from typing import Any, List, Optional, Tuple

from .errors import InvalidAddressError
from .policy import Limits

Inode = Tuple[int, int]
#: Linux's "the peer shut its sending side" poll event (0 where there is none).
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)


def bind_tcp(host: Optional[str], port: int, limits: Limits,
             reuse_port: bool = False) -> List[socket.socket]:
    """Create, bind and listen on a socket per address of ``host`` (IPv4 and/or IPv6).

    With port 0, every socket gets the port the first one was given.
    Raises ``OSError`` naming the address when binding fails.
    """
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM,
                                   0, socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InvalidAddressError("listen_tcp: cannot resolve %r: %s" % (host, exc.strerror)) \
            from None
    unique: List[Tuple[int, Any]] = []
    for family, _, _, _, address in infos:
        if (family, address) not in unique:
            unique.append((family, address))
    sockets: List[socket.socket] = []
    try:
        for family, address in unique:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                set_reuse_port(sock)
            if family == socket.AF_INET6 and len(unique) > 1:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:
                address = (address[0], sockets[0].getsockname()[1]) + tuple(address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, "cannot listen on %s port %s: %s"
                              % (address[0], address[1], exc.strerror)) from None
            sock.listen(limits.backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def bind_unix(path: str, limits: Limits) -> socket.socket:
    """Create, bind and listen on a Unix stream socket at ``path``.

    A stale socket file (nobody accepts on it) is removed first. A live
    one raises ``OSError(EADDRINUSE)``; a path that is not a socket raises
    ``FileExistsError``: we never delete what we did not create.
    """
    remove_stale_socket(path, socket.SOCK_STREAM)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(limits.backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_datagram(family: int, address: Any, reuse_port: bool = False) -> socket.socket:
    """Create a non-blocking datagram socket bound to ``address``."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            set_reuse_port(sock)
        if address is not None:
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(exc.errno, "cannot bind datagram socket to %s: %s"
                              % (address, exc.strerror)) from None
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def set_reuse_port(sock: socket.socket) -> None:
    """Let several processes bind the same port, the kernel spreading connections over them.

    Raises ``ValueError`` where the platform has no ``SO_REUSEPORT``.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port is not supported on this platform")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)


def peer_has_closed(sock: socket.socket) -> bool:
    """Tell, without reading, whether the peer of a connected stream socket closed or reset it.

    A peek finds a reset, or an EOF with nothing pending before it. Behind
    pending data a peek sees only the data; there Linux's ``POLLRDHUP``
    tells that the peer shut its sending side (elsewhere: False until the
    data is read).
    """
    try:
        pending = sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    if not pending:
        return True
    if _POLLRDHUP:
        poller = select.poll()
        poller.register(sock.fileno(), _POLLRDHUP)
        return bool(poller.poll(0))
    return False


def remove_stale_socket(path: str, kind: int = socket.SOCK_STREAM) -> None:
    """Unlink ``path`` if it is a Unix socket of ``kind`` that nobody serves.

    Raises ``FileExistsError`` if ``path`` is not a socket (we never delete
    what we did not create) and ``OSError(EADDRINUSE)`` if a server answers.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise FileExistsError(errno.EEXIST, "%s exists and is not a socket; "
                              "refusing to replace it" % path)
    probe = socket.socket(socket.AF_UNIX, kind)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except ConnectionRefusedError:
        os.unlink(path)                      # a leftover from a dead server
        return
    except OSError:
        return                               # let bind() report the real problem
    finally:
        probe.close()
    raise OSError(errno.EADDRINUSE, "another server is listening on %s" % path)


def inode(path: str) -> Optional[Inode]:
    """Return ``(device, inode)`` of ``path``, or None if it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def unlink_if_ours(path: str, ours: Optional[Inode]) -> None:
    """Remove ``path`` if it is still the file we created (same device and inode)."""
    if ours is not None and inode(path) == ours:
        os.unlink(path)
