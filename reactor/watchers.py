"""The watchers of fds added with ``add_reader`` / ``add_writer``, and stale registrations.

A watched fd's *watcher* is the object whose ``on_readable`` /
``on_writable`` the loop calls (the poller's ``watchers[fd]``, also the
``data`` of its selector key; see ``poller.py``). Transports and listening sockets are their
own watchers; an fd the user adds with ``add_reader`` gets an
:class:`FdCallbacks`, which holds the callbacks.

An fd closed while registered (behind the loop's back) looks different on
each selector, and this module is where the loop recognises it::

    select        select() raises EBADF           -> sweep every key (is_stale)
    poll          POLLNVAL: reported ready forever -> FdCallbacks checks its file
    epoll/kqueue  forgotten by the kernel; the     -> register() of the new file
                  number is soon reused               finds the old key (loop._watch)

``is_stale(key)`` tells a closed file from a live one: an object's
``fileno()`` is -1 after ``close()``, and a number is checked with
``fstat``. (A bare number whose file was closed and reused cannot be told
apart; pass objects when you can.)
"""

import logging
import os
import selectors
from typing import Any, Optional

from .errors import BadFileDescriptorError
from .timers import Handle

logger = logging.getLogger("reactor")

EVENT_READ = selectors.EVENT_READ


class Watchers:
    """The loop's registrations with its poller: one key per fd, its data the watcher.

    Transports and listeners register themselves (``watch`` / ``rewatch`` /
    ``unwatch``, which the loop exposes as ``_watch`` ...); read and write
    interest are merged with ``modify()``, never unregister + register.
    User fds get an :class:`FdCallbacks` (``add_callback``).
    """

    def __init__(self, poller: Any, loop: Any) -> None:
        self._poller = poller
        self._loop = loop

    def watch(self, fileobj: Any, events: int, watcher: Any) -> None:
        """Register ``watcher`` for ``fileobj`` (a socket, not yet watched) with ``events``."""
        try:
            self._poller.register(fileobj, events, watcher)
        except KeyError:
            # The number is registered already, so its old file was closed
            # behind our back and the kernel handed the number out again.
            fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
            self.drop_stale(self._poller.get_key(fd))
            self._poller.register(fileobj, events, watcher)

    def rewatch(self, fd: int, events: int, watcher: Any) -> None:
        """Change the interest of a watched ``fd`` (``events`` non-zero)."""
        try:
            self._poller.modify(fd, events, watcher)
        except OSError as exc:        # epoll/kqueue: the fd is gone (EBADF) or not ours (ENOENT)
            try:
                key = self._poller.get_key(fd)
            except KeyError:          # selectors forgot it already when modify() failed
                key = selectors.SelectorKey(fd, fd, 0, watcher)
            self.drop_stale(key, exc.strerror)

    def unwatch(self, fd: int) -> None:
        """Stop watching ``fd`` (its transport closed it, or is about to)."""
        try:
            self._poller.unregister(fd)
        except KeyError:
            pass                      # already dropped as stale

    def add_callback(self, fileobj: Any, event: int, handle: Handle) -> None:
        """Set ``handle`` as the reader or writer of ``fileobj``, registering it if new."""
        poller = self._poller
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        try:
            key = poller.get_key(fd)
        except KeyError:
            key = None
        if key is not None and is_stale(key):
            self.drop_stale(key)
            key = None
        if key is None:
            watch = FdCallbacks(self, fileobj, fd)
            watch.set(event, handle)
            poller.register(fileobj, event, watch)
            return
        watch = key.data
        if not isinstance(watch, FdCallbacks):
            raise BadFileDescriptorError(
                "fd %d is owned by a transport; close the transport first" % fd)
        watch.set(event, handle)
        poller.modify(fd, key.events | event, watch)

    def remove_callback(self, fileobj: Any, event: int) -> bool:
        """Clear the reader or writer of ``fileobj``; return False if it had none."""
        poller = self._poller
        try:
            key = poller.get_key(fileobj)     # finds a closed socket object too
        except (KeyError, ValueError):
            return False
        watch = key.data
        if not isinstance(watch, FdCallbacks) or not key.events & event:
            return False
        watch.set(event, None)
        remaining = key.events & ~event
        if remaining and not is_stale(key):
            poller.modify(key.fd, remaining, watch)
        else:
            poller.unregister(key.fd)
        return True

    def drop_closed(self) -> None:
        """Unregister every fd closed behind the selector's back (select() said EBADF)."""
        for key in list(self._poller.get_map().values()):
            if is_stale(key):
                self.drop_stale(key)

    def drop_stale(self, key: Any, why: Optional[str] = None) -> None:
        """Forget a registration whose fd was closed behind the loop's back; tell its owner."""
        logger.error("fd %d was closed while the loop watched it (%s); dropping %r. Close "
                     "transports with close(), and call remove_reader()/remove_writer() "
                     "before closing an fd you added", key.fd, why or "closed or reused",
                     key.data)
        try:
            self._poller.unregister(key.fd)
        except (KeyError, ValueError, OSError):
            pass
        lost = getattr(key.data, "fd_closed_behind_our_back", None)
        if lost is not None:
            lost(BadFileDescriptorError("fd %d was closed behind the loop's back" % key.fd))


class FdCallbacks:
    """The watcher for an fd added with ``add_reader`` / ``add_writer``."""

    __slots__ = ("watchers", "fileobj", "fd", "reader", "writer")

    def __init__(self, watchers: Watchers, fileobj: Any, fd: int) -> None:
        self.watchers = watchers
        self.fileobj = fileobj
        self.fd = fd
        self.reader: Optional[Handle] = None
        self.writer: Optional[Handle] = None

    def set(self, event: int, handle: Optional[Handle]) -> None:
        if event == EVENT_READ:
            self.reader = handle
        else:
            self.writer = handle

    def on_readable(self) -> None:
        handle = self.reader
        if handle is not None and not self._gone():
            handle._callback(*handle._args)

    def on_writable(self) -> None:
        handle = self.writer
        if handle is not None and not self._gone():
            handle._callback(*handle._args)

    def _gone(self) -> bool:
        """Drop this watcher if its file was closed (poll reports a closed fd as ready)."""
        fileobj = self.fileobj
        if isinstance(fileobj, int) or fileobj.fileno() == self.fd:
            return False
        self.watchers.drop_stale(selectors.SelectorKey(fileobj, self.fd, 0, self))
        return True

    def __repr__(self) -> str:
        return "<fd %d callbacks reader=%r writer=%r>" % (self.fd, self.reader, self.writer)


def is_stale(key: Any) -> bool:
    """Tell whether a selector key's file was closed (or its number reused) behind our back."""
    fileobj = key.fileobj
    if not isinstance(fileobj, int):
        try:
            return bool(fileobj.fileno() != key.fd)
        except (OSError, ValueError):
            return True
    try:
        os.fstat(key.fd)
    except OSError:
        return True
    return False


def checked_fileobj(fileobj: Any) -> Any:
    """Return ``fileobj`` (an fd number or an object with ``fileno()``) if it is open."""
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError, OSError):
            raise BadFileDescriptorError(
                "expected an fd number or an object with fileno(), got %r" % (fileobj,)) from None
    if fd < 0:
        raise BadFileDescriptorError("fd %d is negative (a closed socket?)" % fd)
    try:
        os.fstat(fd)
    except OSError as exc:
        raise BadFileDescriptorError("fd %d is not open: %s" % (fd, exc.strerror)) from None
    return fileobj
