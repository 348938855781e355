"""The transport contract: what every stream stack promises the application protocol.

CPython's ``test_selectors`` is the model: one class of tests,
:class:`TransportContract`, and a subclass per stack that says only how to
listen and connect. A new transport or layer starts by adding a subclass
here (STYLE.md, "Tests").

==================  ==========================================  ==============================
class               the application's transport (both sides)    how
==================  ==========================================  ==============================
``TestTCP``         ``StreamTransport``                         127.0.0.1, port 0
``TestUnix``        ``StreamTransport``                         a socket file in a tmp dir
``TestTLS``         ``TLSTransport`` over TCP                   ``tests/certs``, "localhost"
``TestGuarded``     ``Guard`` over TCP                          an idle timeout of 300 s
``TestTLSGuarded``  ``Guard`` over ``TLSTransport`` over TCP    both
``TestFake``        ``StreamTransport``                         ``reactor.testing``'s fake
                                                                network, autojumping clock
==================  ==========================================  ==============================

Every test runs on every selector class (the ``loop`` fixture), with the
server and its clients on that one loop in this process, over real
loopback sockets; waits are bounded (``run_until``). The claims are about
what the application sees: the transport its protocol was given in
``connection_made``, and the callbacks it gets, recorded as tuples
(``support.recorders.EventRecorder``) and compared whole.

A stack that breaks a contract item today lists it in ``KNOWN_FAILURES``
(test name -> reason); that test is then a strict xfail on that stack, so
the day the bug is fixed the suite says so.
"""

import collections
import select
import socket

import pytest

from reactor import FakeClock, FramedProtocol, Limits, Reactor, TransportClosedError
from reactor.framing import LineFramer
from reactor.testing import FakeNetwork, FakeSocket

from .support.certs import SERVER_HOSTNAME, client_ctx, server_ctx
from .support.loops import run_passes, run_until
from .support.recorders import EventRecorder

#: The sender's kernel buffer in the tests that need bytes to wait in ours.
SMALL_SNDBUF_BYTES = 16 * 1024
#: Piece sizes written in turn by ``Producer``: tiny, odd, and over any socket buffer.
PIECE_SIZES = (1, 7, 1000, 300_000, 4096, 65_537)
GUARD_LIMITS = Limits(idle_timeout_seconds=300)



# -- protocols ---------------------------------------------------------------------

class Producer(EventRecorder):
    """Writes ``payload`` in ``PIECE_SIZES`` pieces while not paused; closes once all is written."""

    def __init__(self, payload):
        super().__init__()
        self.payload = payload
        self.position = 0
        self.pieces = 0
        self.paused = False

    def produce(self):
        while self.position < len(self.payload) and not self.paused:
            size = PIECE_SIZES[self.pieces % len(PIECE_SIZES)]
            self.transport.write(self.payload[self.position:self.position + size])
            self.position += size
            self.pieces += 1
        if self.position >= len(self.payload) and not self.transport.is_closing():
            self.transport.close()

    def pause_writing(self):
        super().pause_writing()
        self.paused = True

    def resume_writing(self):
        super().resume_writing()
        self.paused = False
        self.produce()


class SaysByeOnEof(EventRecorder):
    """Answers the peer's EOF with b"bye", then lets the transport close (returns False)."""

    def eof_received(self):
        super().eof_received()
        self.transport.write(b"bye")
        return False


class Failing(EventRecorder):
    """Records like ``EventRecorder``; raises ``self.error`` in the callback named ``callback``."""

    def __init__(self, callback):
        super().__init__()
        self.callback = callback
        self.error = ValueError("failed on purpose")

    def connection_made(self, transport):
        super().connection_made(transport)
        if self.callback == "connection_made":
            raise self.error

    def data_received(self, data):
        super().data_received(data)
        if self.callback == "data_received":
            raise self.error

    def eof_received(self):
        super().eof_received()
        if self.callback == "eof_received":
            raise self.error
        return False

    def pause_writing(self):
        super().pause_writing()
        if self.callback == "pause_writing":
            raise self.error

    def resume_writing(self):
        super().resume_writing()
        if self.callback == "resume_writing":
            raise self.error


class FailsOnFrameA(FramedProtocol):
    """Records each line; raises on the line b"a"."""

    framer = LineFramer(max_length=100)

    def __init__(self):
        self.transport = None
        self.frames = []
        self.lost_with = "not yet"
        self.error = ValueError("frame a failed on purpose")

    def frame_received(self, frame):
        self.frames.append(bytes(frame))
        if frame == b"a":
            raise self.error

    def connection_lost(self, exc):
        self.lost_with = exc


class PausesItself(EventRecorder):
    """On data, notes ``transport.is_reading()``, then pauses its own reading."""

    def __init__(self):
        super().__init__()
        self.reading_at_data = []

    def data_received(self, data):
        super().data_received(data)
        self.reading_at_data.append(self.transport.is_reading())
        self.transport.pause_reading()


class PausesItsPartner(EventRecorder):
    """On data, notes ``(name, transport.is_reading())``, then pauses its partner's reading."""

    def __init__(self, name, seen):
        super().__init__()
        self.name = name
        self.seen = seen
        self.partner = None

    def data_received(self, data):
        super().data_received(data)
        self.seen.append((self.name, self.transport.is_reading()))
        self.partner.transport.pause_reading()


# -- one test's servers and connections ----------------------------------------------

class Pair:
    """The two application protocols of one connection."""

    def __init__(self, server_app, client_app):
        self.server_app = server_app
        self.client_app = client_app


class Net:
    """One test's server and clients on one loop, through one stack; closes them all at the end.

    The server's protocol factory hands out the protocols queued by
    ``connect`` in accept order (an ``EventRecorder`` when none is queued).
    """

    def __init__(self, loop, stack, tmp_path):
        self.loop = loop
        self.stack = stack
        self.server_apps = collections.deque()
        self.connectors = []
        self.connect_errors = []
        self.server = stack.listen(loop, self._make_server_app, tmp_path)

    def connect(self, server_app=None, client_app=None):
        """Start a connection between ``server_app`` and ``client_app``; return the pair at once."""
        server_app = server_app or EventRecorder()
        client_app = client_app or EventRecorder()
        self.server_apps.append(server_app)
        self.connectors.append(self.stack.connect(self.loop, lambda: client_app, self.server,
                                                  on_error=self.connect_errors.append))
        return Pair(server_app, client_app)

    def pair(self, server_app=None, client_app=None):
        """Connect ``server_app`` and ``client_app``; return once both saw ``connection_made``."""
        pair = self.connect(server_app, client_app)
        run_until(self.loop, lambda: (pair.server_app.transport is not None
                                      and pair.client_app.transport is not None
                                      or self.connect_errors))
        assert self.connect_errors == []
        return pair

    def close(self):
        """Abort every connection left, cancel pending connects, close the server."""
        for connector in self.connectors:
            connector.cancel()
            if connector.transport is not None:
                connector.transport.abort()
        for top in self.server.connections():
            top.abort()
        run_passes(self.loop, 3)                     # connection_lost runs; sockets are closed
        self.server.close()

    def _make_server_app(self):
        return self.server_apps.popleft() if self.server_apps else EventRecorder()


def small_send_buffer(transport):
    """Shrink the kernel send buffer under ``transport``, so our own buffer has to hold bytes."""
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                  SMALL_SNDBUF_BYTES)


def wait_readable(*socks, timeout=5.0):
    """Block (no loop pass) until every socket in ``socks`` has bytes to read.

    A fake socket has them already: a fake send lands in the peer at once.
    """
    pending = [sock for sock in socks if not isinstance(sock, FakeSocket)]
    while pending:
        readable, _, _ = select.select(pending, [], [], timeout)
        assert readable, "no bytes arrived within %.1f s" % timeout
        pending = [sock for sock in pending if sock not in readable]


def alternates(flow):
    """Tell whether flow-control events go pause, resume, pause, ... (never two pauses in a row)."""
    return flow == (["pause_writing", "resume_writing"] * len(flow))[:len(flow)]


# -- the contract -----------------------------------------------------------------------

class TransportContract:
    """The tests every stack passes; a subclass per stack provides ``listen`` and ``connect``."""

    #: Whether the stack can half-close (``can_write_eof()``).
    half_close = True
    #: Contract items this stack breaks today: {test name: why} (strict xfails).
    KNOWN_FAILURES = {}

    def listen(self, loop, factory, tmp_path):
        """Return a server on ``loop`` whose connections run ``factory()`` through this stack."""
        raise NotImplementedError

    def connect(self, loop, factory, server, on_error):
        """Return a connector to ``server`` whose connection runs ``factory()`` on this stack."""
        raise NotImplementedError

    @pytest.fixture
    def net(self, loop, tmp_path, request):
        """A server on ``loop`` through this stack; every connection is closed afterwards."""
        reason = self.KNOWN_FAILURES.get(request.node.originalname)
        if reason:
            request.node.add_marker(pytest.mark.xfail(strict=True, reason=reason))
        net = Net(loop, self, tmp_path)
        yield net
        net.close()

    # (a) order and backpressure

    def test_bytes_arrive_in_order_byte_exact_with_alternating_backpressure(self, net):
        """Writes, some over the socket buffer, arrive in order; pause and resume alternate."""
        payload = bytes(range(256)) * 2048                       # 512 KiB
        pair = net.pair(Producer(payload))
        producer, transport = pair.server_app, pair.server_app.transport
        small_send_buffer(transport)
        transport.set_write_buffer_limits(high=32 * 1024)
        producer.produce()
        run_until(net.loop, lambda: pair.client_app.lost() and producer.lost())
        assert pair.client_app.history() == [("made",), ("data", payload), ("eof",),
                                             ("lost", None)]
        assert producer.flow()[:1] == ["pause_writing"] and alternates(producer.flow())
        assert producer.history() == [("made",), ("lost", None)]

    # (b) the callback grammar

    def test_callback_grammar_made_data_eof_lost(self, net):
        """connection_made, data_received*, eof_received, then connection_lost once and last."""
        pair = net.pair(SaysByeOnEof())
        client = pair.client_app.transport
        assert client.can_write_eof() is self.half_close
        assert pair.server_app.transport.can_write_eof() is self.half_close
        client.write(b"hel")
        client.write(b"lo")
        if self.half_close:
            client.write_eof()                    # the server still answers, then closes
        else:
            with pytest.raises(NotImplementedError):
                client.write_eof()
            client.close()                        # close_notify: the peer's EOF, both ways
        run_until(net.loop, lambda: pair.server_app.lost() and pair.client_app.lost())
        run_passes(net.loop, 3)                   # nothing comes after connection_lost
        assert pair.server_app.history() == [("made",), ("data", b"hello"), ("eof",),
                                             ("lost", None)]
        if self.half_close:
            assert pair.client_app.history() == [("made",), ("data", b"bye"), ("eof",),
                                                 ("lost", None)]
        else:
            assert pair.client_app.history() == [("made",), ("lost", None)]

    # (c), (d), (e) closing

    def test_close_flushes_queued_bytes_then_the_peer_sees_eof(self, net):
        """close() sends what is queued first; the peer then gets EOF and connection_lost(None)."""
        pair = net.pair()
        transport = pair.server_app.transport
        small_send_buffer(transport)
        payload = bytes(range(256)) * 1024                       # 256 KiB
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.close()
        transport.close()                                        # idempotent
        run_until(net.loop, lambda: pair.client_app.lost() and pair.server_app.lost())
        assert pair.client_app.history() == [("made",), ("data", payload), ("eof",),
                                             ("lost", None)]
        assert pair.server_app.history() == [("made",), ("lost", None)]

    def test_abort_drops_the_buffer_and_connection_lost_none_follows(self, net):
        """abort() drops what is queued; connection_lost(None) comes in a later step, once."""
        pair = net.pair()
        transport = pair.server_app.transport
        small_send_buffer(transport)
        payload = bytes(1024 * 1024)
        transport.write(payload)
        assert transport.get_write_buffer_size() > 0
        transport.abort()
        transport.abort()                                        # idempotent
        assert transport.get_write_buffer_size() == 0
        assert pair.server_app.history() == [("made",)]         # not from inside abort()
        run_until(net.loop, lambda: pair.client_app.lost() and pair.server_app.lost())
        run_passes(net.loop, 3)
        assert pair.server_app.history() == [("made",), ("lost", None)]
        assert len(pair.client_app.received()) < len(payload)

    def test_is_closing_at_once_after_close_and_after_abort(self, net):
        """is_closing() turns true in the call to close() or abort(), not when the socket goes."""
        closed, aborted = net.pair(), net.pair()
        assert not closed.server_app.transport.is_closing()
        closed.server_app.transport.close()
        aborted.server_app.transport.abort()
        assert closed.server_app.transport.is_closing()
        assert aborted.server_app.transport.is_closing()

    def test_write_after_close_raises(self, net):
        """write() after close() raises TransportClosedError."""
        pair = net.pair()
        pair.server_app.transport.close()
        with pytest.raises(TransportClosedError):
            pair.server_app.transport.write(b"too late")

    def test_write_after_abort_raises(self, net):
        """write() after abort() raises TransportClosedError."""
        pair = net.pair()
        pair.server_app.transport.abort()
        with pytest.raises(TransportClosedError):
            pair.server_app.transport.write(b"too late")

    # (f) reading paused

    def test_pause_reading_holds_data_until_resume_reading(self, net):
        """No data_received while reading is paused; everything arrives after resume_reading()."""
        pair = net.pair()
        transport = pair.server_app.transport
        transport.pause_reading()
        assert not transport.is_reading()
        pair.client_app.transport.write(b"held back")
        run_passes(net.loop, 10, 0.005)
        assert pair.server_app.history() == [("made",)]
        transport.resume_reading()
        assert transport.is_reading()
        run_until(net.loop, lambda: pair.server_app.received() == b"held back")
        assert pair.server_app.history() == [("made",), ("data", b"held back")]

    def test_a_protocol_that_pauses_itself_gets_one_delivery_per_resume(self, net):
        """A protocol pausing itself in data_received gets nothing more until resume_reading()."""
        payload = bytes(range(256)) * 1024                       # 256 KiB: many reads, records
        pair = net.pair(PausesItself())
        pair.client_app.transport.write(payload)
        app = pair.server_app
        deliveries = 0
        while len(app.received()) < len(payload):
            run_until(net.loop, lambda: len(app.reading_at_data) > deliveries)
            run_passes(net.loop, 2)
            deliveries += 1
            assert len(app.reading_at_data) == deliveries          # nothing while paused
            assert not app.transport.is_reading()
            app.transport.resume_reading()
        assert app.received() == payload and all(app.reading_at_data)

    def test_a_connection_paused_earlier_in_the_same_pass_gets_no_data(self, net):
        """Two connections pausing each other in one pass: neither gets data while not reading."""
        seen = []
        first, second = PausesItsPartner("first", seen), PausesItsPartner("second", seen)
        first.partner, second.partner = second, first
        pairs = [net.pair(first), net.pair(second)]
        for pair in pairs:
            pair.client_app.transport.write(b"ping")
        wait_readable(*[pair.server_app.transport.get_extra_info("socket") for pair in pairs])
        net.loop.run_once(0)                     # both are ready in this one pass
        assert len(seen) == 1, seen              # the second one's read was refused
        paused = second if seen[0][0] == "first" else first
        paused.transport.resume_reading()
        run_until(net.loop, lambda: len(seen) == 2)
        assert sorted(name for name, _ in seen) == ["first", "second"]
        assert seen == [(name, True) for name, _ in seen]
        assert first.received() == second.received() == b"ping"

    # (g), (h) the failure policy

    @pytest.mark.parametrize("side", ["server", "client"])
    @pytest.mark.parametrize("callback", ["connection_made", "data_received", "eof_received",
                                          "pause_writing", "resume_writing"])
    def test_an_exception_in_a_callback_ends_only_that_connection(self, net, side, callback):
        """A callback raises: connection_lost gets it, the peer sees the end, the loop serves on."""
        contexts = []
        net.loop.set_exception_handler(lambda loop, context: contexts.append(context))
        failing = Failing(callback)
        pair = (net.connect(server_app=failing) if side == "server"
                else net.connect(client_app=failing))
        peer = pair.client_app if side == "server" else pair.server_app
        run_until(net.loop, lambda: failing.transport is not None and peer.transport is not None
                  or failing.lost())
        if callback == "data_received":
            peer.transport.write(b"boom")
        elif callback == "eof_received":
            if self.half_close:
                peer.transport.write_eof()
            else:
                peer.transport.close()
        elif callback in ("pause_writing", "resume_writing"):
            small_send_buffer(failing.transport)
            failing.transport.set_write_buffer_limits(high=1024)
            failing.transport.write(bytes(256 * 1024))        # pauses at once, resumes once read
        run_until(net.loop, lambda: failing.lost() and peer.lost())
        assert failing.events[-1] == ("lost", failing.error)
        assert [event for event in failing.events if event[0] == "lost"] == [failing.events[-1]]
        assert [context["exception"] for context in contexts] == [failing.error]
        message = contexts[0]["message"]
        assert contexts[0]["protocol"] is failing and "Failing." + callback in message
        peername = failing.transport.get_extra_info("peername")
        if isinstance(peername, tuple):
            assert ":%d" % peername[1] in message                  # logged with the peer
        assert net.server.stats()["callback_errors"] == (1 if side == "server" else 0)
        after = net.pair()
        after.client_app.transport.write(b"still serving")
        run_until(net.loop, lambda: after.server_app.received() == b"still serving")

    def test_a_frame_that_raises_ends_the_connection_and_later_frames_are_dropped(self, net):
        """A frame_received that raises on b"a" of b"a\\nb\\nc\\n" ends it; b and c never come."""
        net.loop.set_exception_handler(lambda loop, context: None)
        framed = FailsOnFrameA()
        pair = net.pair(framed)
        pair.client_app.transport.write(b"a\nb\nc\n")
        run_until(net.loop, lambda: framed.lost_with != "not yet" and pair.client_app.lost())
        run_passes(net.loop, 3)
        assert framed.lost_with is framed.error
        assert framed.frames == [b"a"]
        assert framed.transport.is_closing()
        assert net.server.stats()["callback_errors"] == 1

    # (i), (j) the server's view

    def test_server_connections_are_the_transports_the_apps_got(self, net):
        """server.connections() holds the app's own transport; writing to it reaches the client."""
        pair = net.pair()
        tops = net.server.connections()
        assert len(tops) == 1 and tops[0] is pair.server_app.transport
        tops[0].write(b"from the server")
        run_until(net.loop, lambda: pair.client_app.received() == b"from the server")

    def test_shutdown_drains_then_ends_every_client_cleanly(self, net):
        """server.shutdown(grace) serves open connections both ways until the grace ends (a
        client may leave sooner); then each one left sees EOF and connection_lost(None)."""
        pairs = [net.pair() for _ in range(3)]
        done = []
        net.server.shutdown(grace_seconds=0.5, on_done=lambda: done.append(True))
        pairs[0].client_app.transport.write(b"during the drain")
        run_until(net.loop, lambda: pairs[0].server_app.received() == b"during the drain")
        pairs[0].server_app.transport.write(b"answered")
        run_until(net.loop, lambda: pairs[0].client_app.received() == b"answered")
        pairs[1].client_app.transport.close()
        run_until(net.loop, lambda: pairs[1].server_app.lost())
        assert not done and not pairs[2].client_app.lost()
        run_until(net.loop, lambda: done and all(pair.client_app.lost() for pair in pairs))
        for pair in (pairs[0], pairs[2]):
            assert pair.client_app.history()[-2:] == [("eof",), ("lost", None)]
            assert pair.server_app.history()[-1] == ("lost", None)
        assert net.server.stats()["closed_at_grace"] == 2
        assert net.server.stats()["aborted_at_shutdown"] == 0

    # (k)

    def test_transport_loop_is_the_loop(self, net):
        """transport.loop is the loop the connection runs on, on both sides."""
        pair = net.pair()
        assert pair.server_app.transport.loop is net.loop
        assert pair.client_app.transport.loop is net.loop


# -- the stacks ----------------------------------------------------------------------------

class TCPStack(TransportContract):
    """TCP on 127.0.0.1; subclasses add server and client options."""

    def server_options(self):
        return {}

    def client_options(self):
        return {}

    def listen(self, loop, factory, tmp_path):
        return loop.listen_tcp(factory, "127.0.0.1", 0, **self.server_options())

    def connect(self, loop, factory, server, on_error):
        return loop.connect_tcp(factory, "127.0.0.1", server.addresses[0][1], on_error=on_error,
                                **self.client_options())


class TestTCP(TCPStack):
    """A StreamTransport over TCP."""


class TestUnix(TransportContract):
    """A StreamTransport over a Unix stream socket."""

    def listen(self, loop, factory, tmp_path):
        return loop.listen_unix(factory, str(tmp_path / "contract.sock"))

    def connect(self, loop, factory, server, on_error):
        return loop.connect_unix(factory, server.addresses[0], on_error=on_error)


class TestTLS(TCPStack):
    """A TLSTransport over TCP, on both sides."""

    half_close = False

    def server_options(self):
        return {"ssl": server_ctx()}

    def client_options(self):
        return {"ssl": client_ctx(), "server_hostname": SERVER_HOSTNAME}


class TestGuarded(TCPStack):
    """A Guard (idle timeout) over TCP, on both sides."""

    def server_options(self):
        return {"limits": GUARD_LIMITS}

    def client_options(self):
        return {"limits": GUARD_LIMITS}


class TestTLSGuarded(TCPStack):
    """A Guard over a TLSTransport over TCP, on both sides."""

    half_close = False

    def server_options(self):
        return {"limits": GUARD_LIMITS, "ssl": server_ctx()}

    def client_options(self):
        return {"limits": GUARD_LIMITS, "ssl": client_ctx(), "server_hostname": SERVER_HOSTNAME}


class FakeConnector:
    """The part of a ``Connector`` the contract uses, for a fake connection (made at once)."""

    def __init__(self, transport):
        self.transport = transport

    def cancel(self):
        """Nothing to cancel: a fake connect completes in the call."""


class TestFake(TransportContract):
    """A StreamTransport over reactor.testing's fake sockets, time jumping when the loop idles.

    64 KiB windows, so that the contract's large writes queue bytes in the
    transport as a small kernel buffer would (``setsockopt`` is ignored).
    """

    @pytest.fixture
    def loop(self):
        """A loop on a fake network (this stack's ``loop``: no selector classes, no kernel)."""
        clock = FakeClock(1000.0)
        network = FakeNetwork(clock, window_bytes=64 * 1024, autojump=True)
        fake_loop = Reactor(selector=network.selector, clock=clock)
        fake_loop.network = network
        yield fake_loop
        fake_loop.close()

    def listen(self, loop, factory, tmp_path):
        return loop.network.serve(loop, factory)

    def connect(self, loop, factory, server, on_error):
        return FakeConnector(loop.network.connect(loop, server, factory()))
