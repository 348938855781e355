"""A loop and ``fork()``: what the child inherits, and the rule that keeps the parent safe.

``fork()`` copies a process and its file descriptors, but not the kernel
objects behind them: parent and child hold the *same* epoll instance, the
same wake-up socketpair, the same sockets::

    parent                                   child, just after fork()
    epoll fd 3  ----------+---------------   epoll fd 3     one interest list for both
    wake-up pair 4, 5  ---+---------------   4, 5           one pair of socket buffers
    set_wakeup_fd(5)                         set_wakeup_fd(5): the child's signals
                                               land in the parent's pair

So a child that went on using the loop it inherited would corrupt its
parent: its ``epoll_ctl`` calls add and remove the parent's registrations
(the fd numbers name the same open files in both), its ``epoll_wait``
steals readiness events the parent is waiting for, and a signal sent to
the child wakes the parent's loop and runs the parent's handler.

The rule: **a loop belongs to the process that created it.**
``os.register_at_fork`` runs :func:`_after_fork_in_child` in every child,
which disarms each live loop there, touching nothing the parent uses:

* the poller is swapped for an :class:`InheritedPoller`: the child's copy
  of the epoll fd is closed (closing a copy never changes the interest
  list: that is owned by the epoll instance, which the parent still holds),
  and every later use raises :class:`~reactor.errors.LoopForkedError`;
* the signal handlers the loop installed get their previous disposition
  back and the signal wake-up fd is reset, so the child's SIGTERM does what
  it did before the loop existed; the child's copies of the wake-up pair
  are closed;
* ``run()``, ``run_once()``, ``call_soon()``, ``call_later()``,
  ``add_reader()`` ... raise ``LoopForkedError``, naming the parent's pid;
  ``close()`` still works and releases what is left, and so does closing
  an inherited server or transport (the child's copy of its socket). The
  child then makes its own loop, as a prefork worker does (``workers.py``).

Discussion: rebuild or refuse? libuv's ``uv_loop_fork`` rebuilds the
child's epoll from the loop's registrations, and the child then serves the
parent's connections as well: two processes writing one socket. A prefork
server forks to get a fresh, empty loop, not a copy of its parent's work,
so we refuse, loudly, rather than rebuild. What the rule cannot catch: a
child writing to an inherited socket directly (``sock.send``, or a
``transport.write`` that need not touch the poller) still writes on the
parent's connection. Close what you inherited; do not use it.
"""

import os
import weakref
from typing import Any, Dict, Iterable

from .errors import LoopForkedError

#: Every loop not yet garbage, in this process.
_loops: "weakref.WeakSet[Any]" = weakref.WeakSet()


def track(loop: Any) -> None:
    """Remember ``loop`` so that the child of a later ``fork()`` disarms it."""
    _loops.add(loop)


def forked_error(what: str, parent_pid: int) -> LoopForkedError:
    """Return the error for using, in this child, a loop its parent created."""
    return LoopForkedError(
        "%s(): this loop was created by process %d, and this is its child %d (after "
        "fork()); its poller and wake-up fds belong to the parent. Call loop.close() "
        "here and create a new loop in the child" % (what, parent_pid, os.getpid()))


class InheritedPoller:
    """The poller of a loop in a forked child: closed, and refusing every use."""

    watchers: Dict[int, Any] = {}

    def __init__(self, parent_pid: int) -> None:
        self.parent_pid = parent_pid

    def wait(self, timeout: Any) -> Iterable[Any]:
        raise forked_error("run", self.parent_pid)

    def register(self, fileobj: Any, events: int, data: Any = None) -> Any:
        raise forked_error("register", self.parent_pid)

    modify = register

    def unregister(self, fileobj: Any) -> None:
        """Nothing to do: the child has no registrations of its own.

        This is what lets a child close an inherited server or transport
        (its copy of the socket) without an ``EPOLL_CTL_DEL`` on the
        parent's epoll, which would remove the parent's registration.
        """

    def get_key(self, fileobj: Any) -> Any:
        raise forked_error("get_key", self.parent_pid)

    def get_map(self) -> Any:
        raise forked_error("get_map", self.parent_pid)

    def close(self) -> None:
        """Nothing left to release: the child's copy was closed at the fork."""


def _disarm(loop: Any, parent_pid: int) -> None:
    """Make ``loop``, inherited by this child, harmless to its parent (module docstring)."""
    inherited = loop._poller
    loop._poller = loop._watchers._poller = InheritedPoller(parent_pid)
    loop._forked_from = parent_pid
    loop._strict = True                 # call_soon and call_later take the checked road
    try:
        inherited.close()               # the child's copy of the epoll fd; a kqueue is
    except OSError:                     # not inherited at all, and closing it may fail
        pass
    try:
        loop._wakeup.close()            # restore signal handlers, reset the wake-up fd
    except (OSError, ValueError):
        pass
    if loop.is_running():               # forked inside one of its callbacks
        loop._leave()


def _after_fork_in_child() -> None:
    parent_pid = os.getppid()
    for loop in list(_loops):
        if not loop.is_closed():
            _disarm(loop, parent_pid)


if hasattr(os, "register_at_fork"):     # POSIX; Windows has no fork()
    os.register_at_fork(after_in_child=_after_fork_in_child)
