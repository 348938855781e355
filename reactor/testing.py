"""A fake network the loop can run on: deterministic sockets with scripted faults.

On real sockets a test depends on the kernel: how much one ``send`` takes,
when bytes arrive, whether ``accept`` fails. The bugs that matter (partial
sends, resets, a full fd table) are the ones loopback almost never shows.
Here the network is a Python object, and the test scripts its faults::

    net = FakeNetwork(FakeClock())
    loop = Reactor(selector=net.selector, clock=net.clock)
    client, server = net.pair(loop, ClientProtocol(), ServerProtocol())
    server.get_extra_info("socket").script.partial_send(3).eagain()
    net.run_until(loop, lambda: ...)

    FakeSelector  a selectors.BaseSelector that computes readiness from the
                  buffers: readable when bytes, EOF or an error wait for recv,
                  writable when the peer's window has room. It never sleeps.
    FakeSocket    one end of a connected pair: send, sendmsg, recv, shutdown,
                  close; a receive window (``window_bytes``) instead of kernel
                  buffers; a ``script`` of faults.
    FakeListener  ``accept()`` hands out what ``net.connect`` queued.

Faults, each consumed in order by the operation it names (``FaultScript``)::

    partial_send(n, times=1)   the next send/sendmsg takes at most n bytes
    eagain(times=1, op="send") the next send (or "recv": a spurious wake-up,
                               reported readable) raises BlockingIOError
    reset_after(n)             after n more bytes are read, recv raises ECONNRESET
    eof_after(n)               after n more bytes are read, recv returns b""
                               (the rest is lost: EOF in the middle of a frame)
    delay_readiness(seconds)   nothing is readable until the clock reaches now+seconds
    emfile(times=1)            (listeners) the next accepts of a pending
                               connection raise OSError(EMFILE)

How time moves: only when the test moves the ``FakeClock``. An empty
``select()`` returns ``[]`` at once and the pass ends. With ``autojump=True``
it first jumps the clock to the nearer of its timeout and the next delayed
readiness (trio's ``MockClock(autojump_threshold=0)``), so ``loop.run()``
and timeouts work with no test driving the clock.

Discussion: faults could be injected into real socketpairs instead (a proxy
splits or drops bytes). That keeps the kernel's semantics, and its timing.
A small model is deterministic and easy to read; the price is what it does
not model (docs/TESTING.md): TLS, UDP, kernel buffer sizes, RST for unread
data at close, ``os.sendfile``, ``add_reader`` on a fake fd,
``sockets.peer_has_closed`` (it polls the fd), and wake-ups through the
loop's real socketpair, which is never reported ready (signals are not
heard; another thread's ``call_soon_threadsafe`` callback still runs, as
nothing sleeps).
"""

import collections
import errno
import itertools
import selectors
import socket
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, Union

from .clock import FakeClock
from .errors import ReactorError
from .policy import DEFAULT_LIMITS, Limits
from .server import Server
from .streams import StreamTransport

#: The lowest fake fd number; real fds of a test process stay far below it. The
#: lowest free number is reused after ``close()``, as the kernel does, so a test
#: can reproduce a registration left behind by a closed fd.
FIRST_FAKE_FD = 100_000
#: Unread bytes a FakeSocket holds before its peer's send() gets EAGAIN.
DEFAULT_WINDOW_BYTES = 256 * 1024
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_INF = float("inf")


class FakeNetworkStuckError(ReactorError, RuntimeError):
    """Nothing can ever become ready: the loop would block forever on a real network."""


class FaultScript:
    """The faults scripted for one fake socket; each method returns the script, for chaining."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self.sends: Deque[Optional[int]] = collections.deque()   # None: EAGAIN, n: at most n
        self.recv_eagains = 0
        self.accept_emfiles = 0

    def partial_send(self, n_bytes: int, times: int = 1) -> "FaultScript":
        """Let each of the next ``times`` sends take at most ``n_bytes`` (0 acts as EAGAIN)."""
        self.sends.extend([n_bytes] * times)
        return self

    def eagain(self, times: int = 1, op: str = "send") -> "FaultScript":
        """Make the next ``times`` calls of ``op`` ("send" or "recv") raise BlockingIOError."""
        if op == "send":
            self.sends.extend([None] * times)
        elif op == "recv":
            self.recv_eagains += times
        else:
            raise ValueError("eagain(op=%r): op is 'send' or 'recv'" % (op,))
        return self

    def reset_after(self, n_bytes: int) -> "FaultScript":
        """After ``n_bytes`` more bytes are read, make recv (and send) fail with ECONNRESET."""
        self._sock.reset_at_bytes = self._sock.bytes_read + n_bytes
        return self

    def eof_after(self, n_bytes: int) -> "FaultScript":
        """After ``n_bytes`` more bytes are read, make recv return b"" (the rest is lost)."""
        self._sock.eof_at_bytes = self._sock.bytes_read + n_bytes
        return self

    def delay_readiness(self, seconds: float) -> "FaultScript":
        """Hide everything from recv and select until the clock reaches now + ``seconds``."""
        self._sock.readable_at = self._sock.net.clock() + seconds
        return self

    def emfile(self, times: int = 1) -> "FaultScript":
        """Make the next ``times`` accepts of a pending connection raise OSError(EMFILE)."""
        self.accept_emfiles += times
        return self


class _FakeFd:
    """What fake sockets and listeners share: a fake fd number, a script, an address."""

    family = socket.AF_INET
    type = socket.SOCK_STREAM

    def __init__(self, net: "FakeNetwork", address: Tuple[str, int]) -> None:
        self.net = net
        self._fd = net._allocate_fd(self)
        self.address = address
        self.script = FaultScript(self)
        self._options: Dict[Tuple[int, int], Any] = {}

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Close; the fd number is free for the next fake socket (as the kernel would reuse it)."""
        if self._fd != -1:
            del self.net._owners[self._fd]
            self._fd = -1

    def getsockname(self) -> Tuple[str, int]:
        self._check_open()
        return self.address

    def setblocking(self, flag: bool) -> None:
        """Accepted and ignored: a fake socket never blocks."""

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        """Remember the option (``getsockopt`` returns it); it changes nothing else."""
        self._options[(level, option)] = value

    def getsockopt(self, level: int, option: int, buflen: int = 0) -> Any:
        return self._options.get((level, option), 0)

    def _check_open(self) -> None:
        if self._fd == -1:
            raise OSError(errno.EBADF, "Bad file descriptor (fake socket closed)")

    def __repr__(self) -> str:
        return "<%s fd=%d %s:%d>" % ((type(self).__name__, self._fd) + self.address)


class FakeSocket(_FakeFd):
    """One end of a fake connected stream; see the module docstring for its faults.

    ``window_bytes`` is how many unread bytes this end holds before its
    peer's ``send`` gets EAGAIN (0: a consumer that never reads); change it
    at any time. ``bytes_read`` counts what ``recv`` returned.
    """

    def __init__(self, net: "FakeNetwork", address: Tuple[str, int],
                 window_bytes: int) -> None:
        super().__init__(net, address)
        self.peer: Optional["FakeSocket"] = None
        self.window_bytes = window_bytes
        self.inbox = bytearray()          # bytes sent by the peer, not yet read
        self.eof_received = False         # the peer shut its sending side or closed
        self.write_shut = False
        self.bytes_read = 0
        self.reset_at_bytes = self.eof_at_bytes = _INF
        self.readable_at = -_INF
        self._reset = False

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        """Return up to ``bufsize`` waiting bytes; b"" at EOF; raise per the script."""
        self._check_open()
        if self.script.recv_eagains:
            self.script.recv_eagains -= 1
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable (scripted)")
        if self._reset or self.bytes_read >= self.reset_at_bytes:
            self._reset = True
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer (scripted)")
        if self.bytes_read >= self.eof_at_bytes:
            return b""
        if self.net.clock() < self.readable_at:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable (delayed)")
        count = min(bufsize, len(self.inbox), self.reset_at_bytes - self.bytes_read,
                    self.eof_at_bytes - self.bytes_read)
        if count <= 0:
            if self.eof_received:
                return b""
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        data = bytes(self.inbox[:count])
        if not flags & socket.MSG_PEEK:
            del self.inbox[:count]
            self.bytes_read += count
        return data

    def send(self, data: Any, flags: int = 0) -> int:
        """Put what the peer's window (and the script) allows into the peer's inbox."""
        self._check_open()
        if self._reset:
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer (scripted)")
        if self.write_shut:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe (sending side shut down)")
        limit = _INF
        if self.script.sends:
            step = self.script.sends.popleft()
            if step is None:
                raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable (scripted)")
            limit = step
        peer = self.peer
        if peer is None or peer._fd == -1:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe (the peer closed)")
        view = memoryview(data).cast("B")
        count = int(min(len(view), limit, peer.window_bytes - len(peer.inbox)))
        if count <= 0:
            if not len(view):
                return 0
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable (window full)")
        peer.inbox += view[:count]
        return count

    def sendmsg(self, buffers: Any, ancdata: Any = (), flags: int = 0, address: Any = None) -> int:
        """Send the buffers as one send (one script step, as one syscall)."""
        return self.send(b"".join(buffers))

    def shutdown(self, how: int) -> None:
        """SHUT_WR (or SHUT_RDWR): the peer reads EOF once it has read what was sent."""
        self._check_open()
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self.write_shut = True
            if self.peer is not None:
                self.peer.eof_received = True

    def close(self) -> None:
        """Close; the peer reads EOF after what was sent (a clean FIN, never a reset)."""
        if self._fd != -1 and self.peer is not None:
            self.peer.eof_received = True
        super().close()

    def getpeername(self) -> Tuple[str, int]:
        self._check_open()
        return self.peer.address   # type: ignore[union-attr]

    def readiness(self, now: float) -> int:
        # Hot path of the fake: once per registered socket per select().
        if self._fd == -1:
            return 0               # like epoll: a closed fd is forgotten, never reported
        events = 0
        failed = self._reset or self.bytes_read >= self.reset_at_bytes
        if (failed or self.script.recv_eagains or self.bytes_read >= self.eof_at_bytes
                or now >= self.readable_at and (self.inbox or self.eof_received)):
            events = _READ
        peer = self.peer
        if failed or not self.write_shut and (
                peer is None or peer._fd == -1 or len(peer.inbox) < peer.window_bytes):
            events |= _WRITE
        return events


class FakeListener(_FakeFd):
    """A fake listening socket: ``accept()`` returns connections queued by ``net.connect``."""

    def __init__(self, net: "FakeNetwork", address: Tuple[str, int]) -> None:
        super().__init__(net, address)
        self.backlog: Deque[FakeSocket] = collections.deque()
        self.accept_calls = 0
        self._options[(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)] = 1

    def accept(self) -> Tuple[FakeSocket, Tuple[str, int]]:
        """Return the oldest pending connection and its peer's address, or raise."""
        self._check_open()
        self.accept_calls += 1
        if not self.backlog:
            raise BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        if self.script.accept_emfiles:
            self.script.accept_emfiles -= 1
            raise OSError(errno.EMFILE, "Too many open files (scripted)")
        conn = self.backlog.popleft()
        return conn, conn.getpeername()

    def close(self) -> None:
        for conn in self.backlog:
            conn.close()
        self.backlog.clear()
        super().close()

    def readiness(self, now: float) -> int:
        return _READ if self.backlog else 0          # close() empties the backlog


class FakeSelector(selectors.BaseSelector):
    """A selector whose fake fds' readiness is computed; real fds are never reported ready."""

    def __init__(self, net: "FakeNetwork") -> None:
        self._net = net
        self._keys: Dict[int, selectors.SelectorKey] = {}
        #: select() calls so far: a test can tell a busy loop from an idle one.
        self.select_calls = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        fd = self._fd_of(fileobj)
        if fd in self._keys:
            raise KeyError("%r (fd %d) is already registered" % (fileobj, fd))
        key = self._keys[fd] = selectors.SelectorKey(fileobj, fd, events, data)
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = self.get_key(fileobj)
        del self._keys[key.fd]
        return key

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = self.get_key(fileobj)
        key = self._keys[key.fd] = selectors.SelectorKey(key.fileobj, key.fd, events, data)
        return key

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        try:
            return self._keys[self._fd_of(fileobj)]
        except (KeyError, ValueError):
            raise KeyError("%r is not registered" % (fileobj,)) from None

    def get_map(self) -> Dict[int, selectors.SelectorKey]:
        return self._keys

    def select(self, timeout: Optional[float] = None) -> List[Tuple[selectors.SelectorKey, int]]:
        """Return what is ready now; never sleep (see the module docstring for autojump)."""
        self.select_calls += 1
        net = self._net
        now = net.clock()
        ready = []
        for key in list(self._keys.values()):
            events = key.fileobj.readiness(now) & key.events if key.fd >= FIRST_FAKE_FD else 0
            if events:
                ready.append((key, events))
        if not ready and net.autojump:
            net.jump(timeout, [key.fileobj for key in self._keys.values()])
        return ready

    def close(self) -> None:
        self._keys.clear()

    def _fd_of(self, fileobj: Any) -> int:
        """The fd of ``fileobj`` (a number, or a fake socket: the loop never adds fake numbers)."""
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd < 0:
            raise ValueError("invalid file descriptor: %d (a closed socket?)" % fd)
        return fd


class FakeNetwork:
    """Fake sockets, listeners and the selector that watches them; see the module docstring.

    ``clock`` (default a new ``FakeClock``) is the time delayed readiness
    is measured on; give the loop the same one. ``window_bytes`` is each new
    socket's receive window. ``autojump`` moves the clock when nothing is ready.
    """

    def __init__(self, clock: Optional[Callable[[], float]] = None,
                 window_bytes: int = DEFAULT_WINDOW_BYTES, autojump: bool = False) -> None:
        self.clock = clock if clock is not None else FakeClock()
        if autojump and not callable(getattr(self.clock, "set", None)):
            raise TypeError("autojump moves the clock, so it needs a FakeClock, got %r"
                            % (self.clock,))
        self.window_bytes = window_bytes
        self.autojump = autojump
        self.selector = FakeSelector(self)
        self._owners: Dict[int, _FakeFd] = {}
        self._ports = itertools.count(40001)

    def socketpair(self, window_bytes: Optional[int] = None) -> Tuple[FakeSocket, FakeSocket]:
        """Return two connected fake sockets (client end first, at 192.0.2.2, a test address)."""
        window = self.window_bytes if window_bytes is None else window_bytes
        first = FakeSocket(self, ("192.0.2.2", next(self._ports)), window)
        second = FakeSocket(self, ("192.0.2.1", next(self._ports)), window)
        first.peer, second.peer = second, first
        return first, second

    def listener(self, port: int = 80) -> FakeListener:
        """Return a fake listening socket at 192.0.2.1:``port``."""
        return FakeListener(self, ("192.0.2.1", port))

    def start(self, loop: Any, sock: FakeSocket, protocol: Any,
              limits: Limits = DEFAULT_LIMITS) -> StreamTransport:
        """Run ``protocol`` on ``sock`` in a StreamTransport; ``connection_made`` runs now."""
        transport = StreamTransport(loop, sock, protocol, sock.getpeername(), limits=limits)
        transport.start()
        return transport

    def pair(self, loop: Any, client_protocol: Any, server_protocol: Any,
             limits: Limits = DEFAULT_LIMITS) -> Tuple[StreamTransport, StreamTransport]:
        """Connect two protocols through a fake socketpair; return both transports, client first."""
        client_sock, server_sock = self.socketpair()
        return (self.start(loop, client_sock, client_protocol, limits),
                self.start(loop, server_sock, server_protocol, limits))

    def serve(self, loop: Any, protocol_factory: Callable[[], Any],
              limits: Limits = DEFAULT_LIMITS, listener: Optional[FakeListener] = None) -> Server:
        """Return a ``Server`` accepting on a fake listener (a new one unless given)."""
        return Server(loop, protocol_factory, [listener or self.listener()], limits,
                      tcp_nodelay=False)

    def connect(self, loop: Any, to: Union[Server, FakeListener], protocol: Any,
                limits: Limits = DEFAULT_LIMITS) -> StreamTransport:
        """Queue a connection in ``to``'s backlog and start ``protocol`` on the client end now."""
        listener = to.sockets[0] if isinstance(to, Server) else to
        client_sock, server_sock = self.socketpair()
        listener.backlog.append(server_sock)
        return self.start(loop, client_sock, protocol, limits)

    def run_until(self, loop: Any, predicate: Callable[[], Any], max_passes: int = 1000) -> int:
        """Run loop passes until ``predicate()`` is true; return how many it took.

        Raises ``AssertionError`` (a test failure) after ``max_passes``. The
        clock moves only with ``autojump`` (each pass may then wait for the
        next timer or delayed byte); without it, advance the clock yourself.
        """
        max_wait = None if self.autojump else 0.0
        for passes in range(max_passes + 1):
            if predicate():
                return passes
            loop.run_once(max_wait)
        raise AssertionError("condition not reached in %d loop passes" % max_passes)

    def jump(self, timeout: Optional[float], watched: List[Any]) -> None:
        """Autojump: move the clock to the next timer (``timeout`` away) or delayed readiness."""
        now = self.clock()
        wake = now + timeout if timeout is not None else _INF
        for sock in watched:
            readable_at = getattr(sock, "readable_at", _INF)
            if now < readable_at < wake and (sock.inbox or sock.eof_received):
                wake = readable_at
        if wake == _INF:
            raise FakeNetworkStuckError("the loop waits with no timer and nothing that can "
                                        "become ready: on a real network it would block forever")
        self.clock.set(wake)   # type: ignore[attr-defined]

    def _allocate_fd(self, owner: _FakeFd) -> int:
        """The lowest free fake fd number, as the kernel hands out the lowest free fd."""
        fd = FIRST_FAKE_FD
        while fd in self._owners:
            fd += 1
        self._owners[fd] = owner
        return fd
