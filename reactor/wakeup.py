"""The loop and the world outside its thread: the self-pipe, signals, thread ownership.

A loop asleep in ``select()`` hears only its file descriptors. Two things
must wake it that are not sockets of its own: another thread calling
``call_soon_threadsafe``, and a signal. Both write a byte into one end of a
socketpair whose other end the selector watches (the *self-pipe trick*,
D. J. Bernstein's name for it; trio keeps it in ``_wakeup_socketpair.py``,
asyncio in ``selector_events.py``)::

    other thread --call_soon_threadsafe--> writer.send(b"\\0") --+
    kernel --signal--> C handler --set_wakeup_fd--> signal number  +--> reader
                                                                        |
    loop pass: reader readable -> drain(): b"\\0" dropped, each signal
               number queues its handler in the ready queue (step 3)

So a signal handler runs as an ordinary callback, between two passes, never
inside whatever frame the signal interrupted: the loop's data structures are
never seen half-updated. ``signal.set_wakeup_fd`` makes the C-level handler
write the byte; the Python-level handler installed here does nothing, except
for the loop's own Ctrl-C handler (below).

A second Ctrl-C. While a callback blocks the loop (``time.sleep``, a busy
loop), the wake-up byte waits unread and a clean stop cannot happen. The
first SIGINT is handled as usual; if a second arrives before the loop has
handled the first, the Python-level handler raises ``KeyboardInterrupt``
right there, in the stuck callback, and it propagates out of ``run()``. A
stuck server can always be interrupted, as with asyncio's runner.

Wake-ups are coalesced: one byte per sleep however many threads call
``wake()``, so a busy producer thread cannot fill the socketpair.

Thread ownership. A loop is single-threaded: only ``call_soon_threadsafe``
may be called from another thread. While a loop runs it is registered as
its thread's running loop (``get_running_loop()`` returns it, which is how
any callback can reach its loop), and a second loop refuses to ``run()``
inside the first one's callback on the same thread (it would freeze the
first). In debug mode the loop's other methods check the calling thread
(``check_thread``) and raise :class:`~reactor.errors.WrongThreadError`.
Transport methods (``write`` ...) are not checked, even in debug mode: the
check would cost on every write. From another thread, hand the write to
the loop: ``loop.call_soon_threadsafe(transport.write, data)``.
"""

import signal
import socket
import threading
from typing import Any, Callable, Deque, Dict, List, Optional

from .errors import LoopRunningError, NoRunningLoopError, SignalHandlerError, WrongThreadError
from .timers import Handle

_WAKE_BYTE = b"\0"          # never a signal number, so it cannot be mistaken for one

#: The loop running on each thread, if any.
_running = threading.local()


def get_running_loop() -> Any:
    """Return the loop running on this thread; the way a callback reaches its loop.

    Raises :class:`~reactor.errors.NoRunningLoopError` outside a loop's
    ``run()`` / ``run_once()``. (A protocol can also use ``self.transport.loop``.)
    """
    loop = getattr(_running, "loop", None)
    if loop is None:
        raise NoRunningLoopError("no reactor loop is running on this thread; call this from "
                                 "a callback, or pass the loop in (e.g. lambda: App(loop))")
    return loop


def claim_thread(loop: Any, what: str) -> int:
    """Make ``loop`` this thread's running loop and return the thread's id, or raise."""
    outer = getattr(_running, "loop", None)
    if outer is not None:
        raise LoopRunningError(
            "%s(): another loop (%r) is running on this thread, and running this one "
            "inside its callback would freeze it; use one loop per thread" % (what, outer))
    _running.loop = loop
    return threading.get_ident()


def release_thread() -> None:
    """Forget this thread's running loop (its run() returned)."""
    _running.loop = None


def check_thread(owner: Optional[int], what: str) -> None:
    """Raise :class:`WrongThreadError` unless called from thread ``owner`` (None: not running)."""
    if owner is not None and threading.get_ident() != owner:
        raise WrongThreadError(
            "%s() called from a thread other than the one running the loop; only "
            "call_soon_threadsafe() may be called from other threads" % what)


class Wakeup:
    """The loop's self-pipe and its signal handlers; the loop owns exactly one."""

    def __init__(self, ready: Deque[Handle]) -> None:
        self._ready = ready
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        self._pending = False
        self._handlers: Dict[int, Handle] = {}
        self._previous_handlers: Dict[int, Any] = {}
        self._previous_wakeup_fd: Optional[int] = None
        #: A SIGINT is waiting to be handled by the loop (see the module docstring).
        self.interrupt_pending = False

    def wake(self) -> None:
        """Make the loop's next (or current) ``select()`` return; callable from any thread."""
        if not self._pending:
            self._pending = True
            try:
                self._writer.send(_WAKE_BYTE)
            except OSError:          # full (a wake-up is pending anyway) or closing
                pass

    def drain(self) -> None:
        """Read the self-pipe: wake-up bytes are dropped, signal numbers queue their handlers."""
        self._pending = False
        while True:
            try:
                data = self.reader.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            for signal_number in data:
                if signal_number:
                    handle = self._handlers.get(signal_number)
                    if handle is not None:
                        self._ready.append(handle)

    def has_handler(self, sig: int) -> bool:
        """Tell whether a loop handler is installed for ``sig``."""
        return sig in self._handlers

    def add_signal_handler(self, sig: int, handle: Handle,
                           python_handler: Optional[Callable[[int, Any], None]] = None) -> None:
        """Run ``handle`` as a loop callback whenever ``sig`` arrives (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            raise SignalHandlerError("signal handlers can only be added from the main thread")
        if sig not in signal.valid_signals() or sig in (signal.SIGKILL, signal.SIGSTOP):
            raise SignalHandlerError("cannot handle signal %r" % (sig,))
        if self._previous_wakeup_fd is None:
            self._previous_wakeup_fd = signal.set_wakeup_fd(
                self._writer.fileno(), warn_on_full_buffer=False)
        if sig not in self._previous_handlers:
            self._previous_handlers[sig] = signal.getsignal(sig)
        # The C-level handler has already written the signal number to the
        # wake-up fd by the time any Python-level handler runs.
        signal.signal(sig, python_handler or _ignore_signal)
        self._handlers[sig] = handle

    def remove_signal_handler(self, sig: int) -> bool:
        """Restore the handler ``sig`` had before; return False if none was added."""
        if self._handlers.pop(sig, None) is None:
            return False
        previous = self._previous_handlers.pop(sig)
        signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        if not self._handlers and self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None
        return True

    def install_stop_handlers(self, stop: Callable[[int], None]) -> List[int]:
        """Make SIGINT and SIGTERM call ``stop(sig)``, where no loop handler exists yet.

        Only from the main thread (elsewhere nothing is installed). Returns
        the signals installed, for ``remove_signal_handler`` when ``run()``
        returns. SIGINT gets the second-Ctrl-C escape of ``interrupt``.
        """
        if threading.current_thread() is not threading.main_thread():
            return []
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            if sig not in self._handlers:
                self.add_signal_handler(sig, Handle(self._stop_on, (stop, sig)),
                                        self.interrupt if sig == signal.SIGINT else None)
                installed.append(sig)
        return installed

    def _stop_on(self, stop: Callable[[int], None], sig: int) -> None:
        self.interrupt_pending = False           # the loop is responsive again
        stop(sig)

    def interrupt(self, signum: int, frame: Any) -> None:
        """The Python-level SIGINT handler of ``run()``: a second Ctrl-C raises at once."""
        if self.interrupt_pending:
            self.interrupt_pending = False
            raise KeyboardInterrupt
        self.interrupt_pending = True

    def close(self) -> None:
        """Remove every signal handler and close the socketpair."""
        for sig in list(self._handlers):
            self.remove_signal_handler(sig)
        self.reader.close()
        self._writer.close()


def _ignore_signal(signum: int, frame: Any) -> None:
    """Python-level handler for loop signals; the work happens via the wake-up fd."""
