"""reactor.testing: each scripted fault, seen through a real reactor transport on the fake network.

Every test runs a real ``Reactor`` and real ``StreamTransport`` s; only the
sockets and the selector are fake, so what is asserted is what an
application would see. Nothing here touches the kernel's network or sleeps.
"""

import errno
import pathlib

import pytest

from reactor import FakeClock, FramedProtocol, Limits, Reactor
from reactor.framing import LineFramer
from reactor.testing import FIRST_FAKE_FD, FakeNetwork, FakeNetworkStuckError

from .support.recorders import EventRecorder

PAYLOAD = bytes(range(256)) * 40                      # 10,240 bytes, every value, ordered


@pytest.fixture
def clock():
    """The fake clock the network and its loop share."""
    return FakeClock(1000.0)


@pytest.fixture
def net(clock):
    """A fake network with a loop on it (``net.loop``), closed afterwards."""
    network = FakeNetwork(clock)
    network.loop = Reactor(selector=network.selector, clock=clock)
    yield network
    network.loop.close()


class Lines(FramedProtocol):
    """Records each line, whether EOF came, what the framer held then, and how it ended."""

    framer = LineFramer(max_length=100)

    def __init__(self):
        self.frames = []
        self.held_at_eof = None
        self.lost_with = "not yet"

    def frame_received(self, frame):
        self.frames.append(bytes(frame))

    def eof_received(self):
        self.held_at_eof = self.framer.buffered
        return False

    def connection_lost(self, exc):
        self.lost_with = exc


def test_partial_sends_and_eagain_still_deliver_every_byte_in_order(net):
    """Sends of 1 and 7 bytes and EAGAIN in between: the peer gets the payload whole, in order."""
    sender, receiver = EventRecorder(), EventRecorder()
    client, _ = net.pair(net.loop, sender, receiver)
    script = client.get_extra_info("socket").script
    script.partial_send(1, times=3).eagain(times=2).partial_send(7, times=5).eagain()
    client.write(PAYLOAD)
    assert client.get_write_buffer_size() == len(PAYLOAD) - 1     # the kernel took one byte
    net.run_until(net.loop, lambda: receiver.received() == PAYLOAD)
    assert not script.sends                                        # every step was used
    assert client.get_write_buffer_size() == 0
    assert receiver.history() == [("made",), ("data", PAYLOAD)]


def test_a_spurious_readable_event_with_eagain_delivers_nothing(net):
    """recv raising EAGAIN although select said readable: no data_received, nothing ends."""
    receiver = EventRecorder()
    client, server = net.pair(net.loop, EventRecorder(), receiver)
    server.get_extra_info("socket").script.eagain(times=3, op="recv")
    for _ in range(3):
        net.loop.run_once(0)
    assert receiver.history() == [("made",)] and server.is_reading()
    client.write(b"after all")
    net.run_until(net.loop, lambda: receiver.received() == b"after all")


def test_a_reset_mid_read_ends_the_connection_with_connection_reset_error(net):
    """ECONNRESET after 5 of 11 bytes: the 5 arrive, then connection_lost(ConnectionResetError)."""
    receiver = EventRecorder()
    client, server = net.pair(net.loop, EventRecorder(), receiver)
    server.get_extra_info("socket").script.reset_after(5)
    client.write(b"hello world")
    net.run_until(net.loop, receiver.lost)
    assert receiver.history()[:2] == [("made",), ("data", b"hello")]
    error = receiver.history()[2][1]
    assert isinstance(error, ConnectionResetError) and error.errno == errno.ECONNRESET
    assert len(receiver.history()) == 3 and server.is_closing()


def test_eof_mid_frame_delivers_whole_frames_and_drops_the_partial_one(net):
    """EOF after b"one\\ntw": frame b"one" arrives, 2 bytes are held at EOF, then lost(None)."""
    lines = Lines()
    client, server = net.pair(net.loop, EventRecorder(), lines)
    server.get_extra_info("socket").script.eof_after(6)
    client.write(b"one\ntwo\n")
    net.run_until(net.loop, lambda: lines.lost_with != "not yet")
    assert lines.frames == [b"one"]
    assert lines.held_at_eof == 2
    assert lines.lost_with is None


def test_emfile_on_accept_pauses_accepting_instead_of_spinning_then_recovers(net, clock):
    """EMFILE: the spare fd sheds one pending client, accept pauses for the back-off, no spin."""
    limits = Limits(accept_backoff_seconds=1.0)
    apps = []
    server = net.serve(net.loop, lambda: apps.append(EventRecorder()) or apps[-1], limits)
    listener = server.sockets[0]
    listener.script.emfile(times=1)
    shed, waiting = EventRecorder(), EventRecorder()
    net.connect(net.loop, server, shed)
    net.connect(net.loop, server, waiting)
    net.run_until(net.loop, shed.lost)
    assert listener.accept_calls == 2            # EMFILE, then the spare fd's accept-and-close
    for _ in range(50):
        net.loop.run_once(0)
    assert listener.accept_calls == 2 and apps == []          # paused: no busy accept loop
    stats = server.stats()
    assert (stats["out_of_fds_episodes"], stats["rejected_out_of_fds"]) == (1, 1)
    assert shed.history() == [("made",), ("eof",), ("lost", None)]
    clock.advance(1.0)
    net.run_until(net.loop, lambda: apps)
    assert server.stats()["accepted"] == 1 and not waiting.lost()
    server.close()


def test_delayed_readiness_holds_the_bytes_until_the_clock_gets_there(net, clock):
    """Bytes delayed 2 s: not readable at +1.999 s, delivered once the clock reaches +2 s."""
    receiver = EventRecorder()
    client, server = net.pair(net.loop, EventRecorder(), receiver)
    server.get_extra_info("socket").script.delay_readiness(2.0)
    client.write(b"late")
    for _ in range(10):
        net.loop.run_once(0)
    clock.advance(1.999)
    net.loop.run_once(0)
    assert receiver.received() == b""
    clock.advance(0.001)
    net.loop.run_once(0)
    assert receiver.received() == b"late"


def test_autojump_moves_the_clock_straight_to_the_delayed_bytes(clock):
    """With autojump, an idle pass jumps the clock to when delayed bytes become readable."""
    net = FakeNetwork(clock, autojump=True)
    loop = Reactor(selector=net.selector, clock=clock)
    try:
        receiver = EventRecorder()
        client, server = net.pair(loop, EventRecorder(), receiver)
        server.get_extra_info("socket").script.delay_readiness(30.0)
        client.write(b"late")
        net.run_until(loop, lambda: receiver.received() == b"late", max_passes=5)
        assert clock() == 1030.0
    finally:
        loop.close()


def test_autojump_with_nothing_that_can_happen_raises_instead_of_hanging(clock):
    """An autojump loop with no timer and nothing pending raises FakeNetworkStuckError."""
    net = FakeNetwork(clock, autojump=True)
    loop = Reactor(selector=net.selector, clock=clock)
    try:
        net.pair(loop, EventRecorder(), EventRecorder())
        with pytest.raises(FakeNetworkStuckError):
            loop.run_once(None)
    finally:
        loop.close()


def test_a_full_window_makes_the_writer_buffer_until_the_reader_drains_it(net):
    """A 100-byte window takes 100 bytes; the rest waits in our buffer and follows as it drains."""
    sender, receiver = EventRecorder(), EventRecorder()
    client_sock, server_sock = net.socketpair(window_bytes=100)
    client = net.start(net.loop, client_sock, sender)
    client.write(PAYLOAD)
    assert client.get_write_buffer_size() == len(PAYLOAD) - 100
    net.start(net.loop, server_sock, receiver)
    net.run_until(net.loop, lambda: receiver.received() == PAYLOAD)
    assert client.get_write_buffer_size() == 0


def test_fake_fds_sit_above_real_ones_and_the_lowest_free_one_is_reused(net):
    """Fake fds start at FIRST_FAKE_FD; a closed socket's number goes to the next new socket."""
    first, second = net.socketpair()
    assert (first.fileno(), second.fileno()) == (FIRST_FAKE_FD, FIRST_FAKE_FD + 1)
    first.close()
    assert first.fileno() == -1
    third, fourth = net.socketpair()
    assert (third.fileno(), fourth.fileno()) == (FIRST_FAKE_FD, FIRST_FAKE_FD + 2)


def test_the_worked_example_in_docs_testing_md_passes():
    """docs/TESTING.md's example runs as written and its two tests pass."""
    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "TESTING.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {}
    exec(compile(code, "docs/TESTING.md", "exec"), namespace)
    tests = [name for name in namespace if name.startswith("test_")]
    assert len(tests) == 2
    for name in tests:
        fixture = namespace["net"].__wrapped__()           # the example's own fixture
        network = next(fixture)
        try:
            namespace[name](network)
        finally:
            fixture.close()
