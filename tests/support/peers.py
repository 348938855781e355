"""The raw-socket client of the tests, and facts about this machine's loopback.

:class:`Peer` is a plain socket on the other end of a server under test. It
never blocks the loop: with ``loop`` given, every wait runs loop passes
between non-blocking reads, so the server and its raw client share one
thread and no test needs a reader thread. With ``loop=None`` (a server in
another process) it waits on the socket alone.

What it read stays in ``received`` (a ``bytearray``) until ``line()`` takes a
line off the front; ``closed`` tells that the server ended the connection
(EOF or reset). Every wait is bounded in real seconds.
"""

import select
import socket
import struct
import time

#: How long one pump waits for the loop (or, without one, for the socket).
PUMP_WAIT_SECONDS = 0.002


class Peer:
    """A raw client socket connected to ``address`` (``(host, port)`` or a Unix path).

    ``source`` binds the client to a chosen address first (127.0.0.2, ...),
    so one machine can stand in for many clients. Connecting blocks for at
    most ``timeout`` seconds and raises ``OSError`` if it fails.
    """

    def __init__(self, loop, address, source=None, timeout=5.0):
        self.loop = loop
        if isinstance(address, str):
            family = socket.AF_UNIX
        else:
            family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if source:
                self.sock.bind((source, 0))
            self.sock.settimeout(timeout)
            self.sock.connect(address)
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)
        self.received = bytearray()
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def send(self, data, timeout=5.0):
        """Send all of ``data`` (bytes, or a str as one line), pumping while the kernel is full."""
        if isinstance(data, str):
            data = data.encode() + b"\n"
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            try:
                view = view[self.sock.send(view):]
            except BlockingIOError:
                assert time.monotonic() < deadline, "could not send within %.1f s" % timeout
                self.pump()

    def exchange(self, data, timeout=5.0):
        """Send ``data``; pump until as many bytes came back (or the end); return those bytes."""
        start = len(self.received)
        self.send(data, timeout)
        self.wait(lambda: len(self.received) - start >= len(data) or self.closed, timeout)
        return bytes(self.received[start:])

    def shutdown_write(self):
        """Half-close: the server reads EOF, and we can still read its answer."""
        self.sock.shutdown(socket.SHUT_WR)

    def reset(self):
        """Close with SO_LINGER 0, so the kernel sends RST instead of FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def pump(self, passes=1):
        """Run a loop pass (or wait on the socket), then read what came; ``passes`` times."""
        for _ in range(passes):
            if self.loop is not None:
                self.loop.run_once(PUMP_WAIT_SECONDS)
            elif not self.closed:
                select.select([self.sock], [], [], PUMP_WAIT_SECONDS)
            self._read_available()

    def wait(self, predicate, timeout=5.0):
        """Pump until ``predicate()`` is true; fail after ``timeout`` real seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out; received %r" % self.received[-200:]
            self.pump()

    def wait_closed(self, timeout=5.0):
        """Pump until the server ends the connection (EOF or reset)."""
        self.wait(lambda: self.closed, timeout)

    def line(self, timeout=5.0):
        """Take the next line off the front of ``received``; return it without its newline."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.received:
            assert not self.closed, "connection closed; had %r" % self.received
            assert time.monotonic() < deadline, "no line within %.1f s; had %r" % (
                timeout, self.received)
            self.pump()
        end = self.received.index(b"\n")
        line = bytes(self.received[:end])
        del self.received[:end + 1]
        return line.decode()

    def quiet(self, passes=20):
        """Pump ``passes`` times and return what is in ``received`` (expected: nothing new)."""
        self.pump(passes)
        return bytes(self.received)

    def close(self):
        """Close the socket (idempotent)."""
        self.sock.close()

    def _read_available(self):
        while not self.closed and self.sock.fileno() != -1:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return
            self.received += chunk


def free_port():
    """Return a port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def has_ipv6_loopback():
    """Tell whether this machine can bind ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False
