"""Unix socket files: replace a stale one safely, remove our own on close.

A Unix socket lives at a path in the filesystem, and the file outlives a
server that crashed. Binding again fails with EADDRINUSE, so servers remove
a *stale* file first, carefully: only if it is a socket, and only if
nobody answers on it (a live server's file is never taken). On close a
server removes its file only if the path still holds the very file it
created (same device and inode), never one another process put there since.
"""

import errno
import os
import socket
import stat
from typing import Optional, Tuple

Inode = Tuple[int, int]


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
