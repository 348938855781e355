"""How the loop waits: which fds are ready, and who watches each one.

Step 1 of a pass (``loop.py``) needs two things from whatever waits for I/O:

* ``wait(timeout)``: the ready fds, as a list of ``(fd, events)`` pairs;
* ``watchers``: a dict from each watched fd to its *watcher*, the object
  whose ``on_readable`` / ``on_writable`` the loop calls.

Two pollers give them, with the registration calls of ``selectors``
(``register``, ``modify``, ``unregister``, ``get_key``, ``get_map``), so
``watchers.py`` works with either::

    EpollPoller     Linux's epoll, called directly. epoll.poll() returns
                    (fd, events) pairs already: the loop iterates over what
                    the kernel said. The loop uses it when it picks its own
                    selector on Linux.
    SelectorPoller  any selectors.BaseSelector (select, poll, kqueue, a test
                    double): select()'s (key, mask) pairs become (fd, events).

Why not ``selectors`` everywhere: for each ready fd, ``EpollSelector.select``
converts the mask with two tests, looks the key up through a method call,
and builds a ``(key, mask)`` tuple in a new list, which the loop then
unpacks to reach ``key.data``. Measured on 100 ready sockets, that is
0.42 µs per ready fd against 0.19 µs for ``epoll.poll`` plus one dict
lookup: a twentieth of an echo request's whole cost, kernel included.
``selectors`` stays the portable seam: pass any selector and it is used.

Events are epoll's bits. As in ``selectors``, an error or a hang-up counts
as both readable and writable (``recv`` or ``send`` then says what went
wrong), so a watcher may be called for a direction it is not watching and
must ignore that: a transport tests its interest, ``FdCallbacks`` its
handles, a listener has no ``on_writable`` work.
"""

import select
import selectors
from typing import Any, Dict, List, Mapping, Optional, Tuple

#: epoll's event bits (the same numbers on every Linux); other pollers use them too.
IN, OUT, ERR, HUP, RDHUP = 0x001, 0x004, 0x008, 0x010, 0x2000
#: Bits that call ``on_readable`` / ``on_writable``.
READABLE = IN | ERR | HUP | RDHUP
WRITABLE = OUT | ERR | HUP

_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE


def make_poller(selector: Optional[selectors.BaseSelector] = None) -> Any:
    """Return the poller for a loop: epoll directly when we choose and can, else ``selector``."""
    if isinstance(selector, EpollPoller):
        return selector
    if selector is None:
        if hasattr(select, "epoll"):
            return EpollPoller()
        selector = selectors.DefaultSelector()
    return SelectorPoller(selector)


class EpollPoller(selectors.BaseSelector):
    """epoll without the ``selectors`` wrapping on the way out; a full selector otherwise.

    ``_keys`` holds a ``SelectorKey`` per fd (for ``get_key``, as
    ``selectors`` does) and ``watchers`` the same keys' data, so the loop's
    per-event lookup is one dict access.
    """

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._keys: Dict[int, selectors.SelectorKey] = {}
        self.watchers: Dict[int, Any] = {}

    def wait(self, timeout: Optional[float]) -> List[Tuple[int, int]]:
        """Wait up to ``timeout`` seconds (None: no limit) and return the ready ``(fd, events)``."""
        # Hot path: once per pass. epoll rounds the timeout up to whole
        # milliseconds, so a wait never ends just before a timer is due.
        return self._epoll.poll(-1 if timeout is None else timeout, len(self._keys) or 1)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = _fd_of(fileobj, self._keys)
        if fd in self._keys:
            raise KeyError("%r (fd %d) is already registered" % (fileobj, fd))
        self._epoll.register(fd, _epoll_bits(events))
        key = self._keys[fd] = selectors.SelectorKey(fileobj, fd, events, data)
        self.watchers[fd] = data
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self.get_key(fileobj)
        if events != key.events:
            try:
                self._epoll.modify(key.fd, _epoll_bits(events))
            except OSError:
                self.unregister(key.fd)      # as selectors does: the fd is gone
                raise
        key = self._keys[key.fd] = selectors.SelectorKey(key.fileobj, key.fd, events, data)
        self.watchers[key.fd] = data
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self.get_key(fileobj)
        del self._keys[key.fd]
        del self.watchers[key.fd]
        try:
            self._epoll.unregister(key.fd)
        except OSError:                      # closed already: the kernel forgot it
            pass
        return key

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            return self._keys[_fd_of(fileobj, self._keys)]
        except KeyError:
            raise KeyError("%r is not registered" % (fileobj,)) from None

    def get_map(self) -> Mapping[int, selectors.SelectorKey]:
        return self._keys

    def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
        """The ``selectors`` interface, for code that wants keys; the loop calls ``wait``."""
        ready = []
        for fd, bits in self.wait(None if timeout is None else max(timeout, 0.0)):
            key = self._keys.get(fd)
            if key is not None:
                mask = (_EVENT_READ if bits & READABLE else 0) | (
                    _EVENT_WRITE if bits & WRITABLE else 0)
                ready.append((key, mask & key.events))
        return ready

    def close(self) -> None:
        self._epoll.close()
        self._keys.clear()
        self.watchers.clear()


class SelectorPoller:
    """Any ``selectors.BaseSelector`` behind the poller interface."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.watchers: Dict[int, Any] = {}

    def wait(self, timeout: Optional[float]) -> List[Tuple[int, int]]:
        return [(key.fd, (IN if mask & _EVENT_READ else 0) | (OUT if mask & _EVENT_WRITE else 0))
                for key, mask in self.selector.select(timeout)]

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self.selector.register(fileobj, events, data)
        self.watchers[key.fd] = data
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        try:
            key = self.selector.modify(fileobj, events, data)
        except OSError:                      # selectors unregistered it before raising
            registered = self.selector.get_map()
            for fd in [fd for fd in self.watchers if fd not in registered]:
                del self.watchers[fd]
            raise
        self.watchers[key.fd] = data
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self.selector.unregister(fileobj)
        self.watchers.pop(key.fd, None)
        return key

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self.selector.get_key(fileobj)

    def get_map(self) -> Mapping[int, selectors.SelectorKey]:
        return self.selector.get_map()

    def close(self) -> None:
        self.selector.close()
        self.watchers.clear()


def _epoll_bits(events: int) -> int:
    """``selectors``' EVENT_READ / EVENT_WRITE as epoll bits."""
    return (IN if events & _EVENT_READ else 0) | (OUT if events & _EVENT_WRITE else 0)


def _fd_of(fileobj: Any, keys: Mapping[int, selectors.SelectorKey]) -> int:
    """The fd of ``fileobj``: a number, or an object's ``fileno()``.

    A socket closed while registered says -1; like ``selectors``, find it
    among the registered objects so that it can still be unregistered.
    """
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError("invalid file object: %r" % (fileobj,)) from None
        if fd < 0:
            for key in keys.values():
                if key.fileobj is fileobj:
                    return key.fd
    if fd < 0:
        raise ValueError("invalid file descriptor: %d" % fd)
    return fd
