"""The classic bugs of hand-written event loops, reproduced deterministically on a fake network.

One test per bug (named ``test_<bug>_...``, as in ``python -m reactor lesson``),
each driving a real ``Reactor`` over ``reactor.testing``'s scripted sockets:
the fault that triggers the bug happens on the exact call the test names,
and the assertions are what reactor does instead. Bugs a fake network cannot
stage (a TLS close hang, blocking DNS, a lost cross-thread wake-up, timer
drift, a slow callback) are proved elsewhere, on real sockets or the clock.
"""

import random

import pytest

from reactor import (BadFileDescriptorError, FakeClock, FramedProtocol, Limits, Reactor,
                     SlowConsumerError)
from reactor.framing import LineFramer
from reactor.testing import FakeNetwork

from .support.recorders import EventRecorder

SEED = 19


@pytest.fixture
def clock():
    """The fake clock the network and its loop share."""
    return FakeClock(1000.0)


@pytest.fixture
def net(clock):
    """A fake network with a loop on it (``net.loop``), closed afterwards."""
    network = FakeNetwork(clock, window_bytes=4 * 1024 * 1024)
    network.loop = Reactor(selector=network.selector, clock=clock)
    yield network
    network.loop.close()


def collecting(apps, make=EventRecorder):
    """A protocol factory calling ``make()`` and appending each protocol to ``apps``."""
    def factory():
        apps.append(make())
        return apps[-1]
    return factory


class AnswersAfterEof(EventRecorder):
    """On the peer's EOF, answers b"answer" and lets the transport close once it is sent."""

    def eof_received(self):
        super().eof_received()
        self.transport.write(b"answer")
        return False


class WritesUntilPaused(EventRecorder):
    """Writes 16 KiB chunks until told to pause; ``ignore_pause`` keeps writing regardless."""

    CHUNK = bytes(16 * 1024)

    def __init__(self, ignore_pause=False, max_chunks=100):
        super().__init__()
        self.ignore_pause = ignore_pause
        self.max_chunks = max_chunks
        self.buffered_at_pause = None

    def connection_made(self, transport):
        super().connection_made(transport)
        for _ in range(self.max_chunks):
            if self.flow() and not self.ignore_pause or self.lost() or transport.is_closing():
                break
            transport.write(self.CHUNK)

    def pause_writing(self):
        super().pause_writing()
        self.buffered_at_pause = self.transport.get_write_buffer_size()


class Lines(FramedProtocol):
    """Records each whole line and how the connection ended."""

    framer = LineFramer(max_length=100)

    def __init__(self):
        self.frames = []
        self.lost_with = "not yet"

    def frame_received(self, frame):
        self.frames.append(bytes(frame))

    def connection_lost(self, exc):
        self.lost_with = exc


def test_partial_send_every_byte_arrives_when_the_kernel_takes_a_few_at_a_time(net):
    """Bug: ignoring send()'s return value loses the unsent tail. Here sends of 1-997 bytes
    and EAGAINs, over send() and sendmsg() alike, deliver 1 MiB whole and in order."""
    rng = random.Random(SEED)
    payload = rng.getrandbits(8 * 1024 * 1024).to_bytes(1024 * 1024, "little")
    receiver = EventRecorder()
    client, _ = net.pair(net.loop, EventRecorder(), receiver)
    script = client.get_extra_info("socket").script
    for _ in range(300):
        script.partial_send(rng.randint(1, 997))
        if rng.random() < 0.2:
            script.eagain()
    for start in range(0, len(payload), 100_000):           # several chunks: sendmsg too
        client.write(payload[start:start + 100_000])
    net.run_until(net.loop, lambda: len(receiver.received()) >= len(payload), max_passes=5000)
    assert receiver.received() == payload, "seed %d" % SEED
    assert not script.sends


def test_half_close_the_answer_to_a_half_closed_request_still_arrives(net):
    """Bug: treating the peer's EOF as a full close drops the answer it waits for. Here the
    client shuts its side after asking; the answer arrives, then both ends close cleanly."""
    asker, answerer = EventRecorder(), AnswersAfterEof()
    client, _ = net.pair(net.loop, asker, answerer)
    client.write(b"question")
    client.write_eof()
    net.run_until(net.loop, lambda: asker.lost() and answerer.lost())
    assert answerer.history() == [("made",), ("data", b"question"), ("eof",), ("lost", None)]
    assert asker.history() == [("made",), ("data", b"answer"), ("eof",), ("lost", None)]


def test_emfile_spin_out_of_fds_accept_backs_off_instead_of_busy_looping(net, clock):
    """Bug: accept() failing with EMFILE leaves the connection pending, the listener stays
    readable and the loop spins at 100% CPU. Here 1 s out of fds costs a few accepts a back-off,
    not one per pass, and the waiting clients are served once fds are free."""
    apps = []
    server = net.serve(net.loop, collecting(apps), Limits(accept_backoff_seconds=0.1))
    listener = server.sockets[0]
    listener.script.emfile(times=10 ** 6)                   # out of fds until we say otherwise
    clients = [EventRecorder() for _ in range(3)]
    for client in clients:
        net.connect(net.loop, server, client)
    for _ in range(1000):                                    # 1,000 passes over 1 s of fake time
        clock.advance(0.001)
        net.loop.run_once(0)
    assert listener.accept_calls <= 2 * (1.0 / 0.1 + 1)     # per back-off: EMFILE + spare's try
    assert server.stats()["out_of_fds_episodes"] == 1 and apps == []
    listener.script.accept_emfiles = 0                       # fds are free again
    clock.advance(0.1)
    net.run_until(net.loop, lambda: len(apps) == 3)
    assert not any(client.lost() for client in clients)
    server.close()


def test_greedy_reader_a_flooding_connection_cannot_starve_a_quiet_one(net):
    """Bug: reading a socket until EAGAIN lets one firehose hold the loop. Here one pass reads
    at most max_read_per_event_bytes from the flood and still serves the quiet connection."""
    limits = Limits(read_chunk_bytes=64 * 1024, max_read_per_event_bytes=256 * 1024)
    flood, quiet = EventRecorder(), EventRecorder()
    flood_client, _ = net.pair(net.loop, EventRecorder(), flood, limits)
    quiet_client, _ = net.pair(net.loop, EventRecorder(), quiet, limits)
    flood_client.write(bytes(2 * 1024 * 1024))               # all of it waits to be read
    quiet_client.write(b"ping")
    net.loop.run_once(0)
    assert len(flood.received()) == 256 * 1024
    assert quiet.received() == b"ping"


def test_unbounded_buffer_a_peer_that_never_reads_pauses_the_writer_at_the_high_water_mark(net):
    """Bug: buffering everything for a peer that does not read grows memory without bound.
    Here (window 0) pause_writing comes as the buffer first passes the high-water mark."""
    apps = []
    limits = Limits(high_water_bytes=40 * 1024, low_water_bytes=10 * 1024)
    server = net.serve(net.loop, collecting(apps, WritesUntilPaused), limits)
    client_sock = net.connect(net.loop, server, EventRecorder()).get_extra_info("socket")
    client_sock.window_bytes = 0                            # a consumer that never reads
    net.run_until(net.loop, lambda: apps and apps[0].flow())
    writer = apps[0]
    assert writer.flow() == ["pause_writing"]
    assert writer.buffered_at_pause == 48 * 1024             # the first write past 40 KiB
    client_sock.window_bytes = 4 * 1024 * 1024              # it reads again: resume, once
    net.run_until(net.loop, lambda: len(writer.flow()) == 2)
    assert writer.flow() == ["pause_writing", "resume_writing"]
    server.close()


def test_unbounded_buffer_a_writer_ignoring_pause_is_cut_off_at_the_hard_cap(net):
    """Bug: a protocol that ignores pause_writing still grows the buffer. Here the hard cap
    closes the connection with SlowConsumerError and drops the buffer."""
    apps = []
    limits = Limits(high_water_bytes=40 * 1024, send_buffer_hard_cap_bytes=100 * 1024)
    server = net.serve(net.loop, collecting(apps, lambda: WritesUntilPaused(ignore_pause=True)),
                       limits)
    client = net.connect(net.loop, server, EventRecorder())
    client.get_extra_info("socket").window_bytes = 0
    net.run_until(net.loop, lambda: apps and apps[0].lost())
    writer = apps[0]
    assert isinstance(writer.events[-1][1], SlowConsumerError)
    assert writer.transport.get_write_buffer_size() == 0
    assert server.stats()["rejected_slow_consumer"] == 1
    server.close()


def test_fd_reuse_a_stale_registration_is_dropped_not_handed_the_new_socket(net, caplog):
    """Bug: an fd closed behind the loop's back is reused by a new socket, whose events then
    reach the old watcher. Here the new socket's registration finds the stale one, the old
    transport ends with BadFileDescriptorError, and the new connection gets its own bytes."""
    old_app, new_app = EventRecorder(), EventRecorder()
    _, old = net.pair(net.loop, EventRecorder(), old_app)
    stale_fd = old.get_extra_info("socket").fileno()
    old.get_extra_info("socket").close()                     # behind the transport's back
    new, new_server = net.pair(net.loop, new_app, EventRecorder())
    assert new.get_extra_info("socket").fileno() == stale_fd  # the kernel's lowest-free rule
    new_server.write(b"for the new socket")
    net.run_until(net.loop, lambda: old_app.lost() and new_app.received())
    assert isinstance(old_app.events[-1][1], BadFileDescriptorError)
    assert old_app.received() == b""
    assert new_app.received() == b"for the new socket"
    assert "closed while the loop watched it" in caplog.text


def test_eof_mid_frame_split_frames_are_joined_and_a_truncated_one_is_never_delivered(net):
    """Bug: taking each recv() as one message splits frames, and a frame cut short by EOF is
    handled as if whole. Here 1-byte reads still give whole lines; the cut one is dropped."""
    lines = Lines()
    client, server = net.pair(net.loop, EventRecorder(), lines)
    client.get_extra_info("socket").script.partial_send(1, times=20)
    server.get_extra_info("socket").script.eof_after(len(b"GET a\nGET b\nGET"))
    client.write(b"GET a\nGET b\nGET c\n")
    net.run_until(net.loop, lambda: lines.lost_with != "not yet")
    assert lines.frames == [b"GET a", b"GET b"]
    assert lines.lost_with is None
