"""Hostile input costs bounded work and memory: frames per pass, rates paid first, budgets."""

import time

import pytest

import reactor
from reactor import FramedProtocol, Limits, Rate
from reactor.framing import LineFramer

from .support.loops import advance, run_until
from .support.peers import Peer


class Work(FramedProtocol):
    """Counts frames, answers b"ping" with b"pong"; records how it ended."""

    framer = LineFramer(max_length=1_000_000)
    made = []

    def __init__(self):
        self.frames = 0
        self.batches = []
        self.lost = "open"
        Work.made.append(self)

    def frames_received(self, frames):
        self.batches.append(len(frames))
        super().frames_received(frames)

    def frame_received(self, frame):
        self.frames += 1
        if frame == b"ping":
            self.send_frame(b"pong")
        elif frame == b"/quit":
            self.transport.close()

    def connection_lost(self, exc):
        self.lost = exc


@pytest.fixture(autouse=True)
def fresh():
    Work.made = []
    yield


def serve(loop, **limits):
    server = loop.listen_tcp(Work, "127.0.0.1", 0, limits=Limits(**limits))
    return server, server.addresses[0][:2]


def test_one_read_of_32000_frames_is_handed_over_64_per_pass(net):
    """32,000 lines in one write reach the app in batches of at most 64, one batch per pass,
    and another client's ping is answered while the flood is still being worked through."""
    server, address = serve(net)
    attacker = Peer(net, address)
    run_until(net, lambda: len(Work.made) == 1)
    probe = Peer(net, address)
    run_until(net, lambda: len(Work.made) == 2)
    attacker.sock.sendall(b"a\n" * 32000)
    probe.send(b"ping\n")
    probe.wait(lambda: probe.received == b"pong\n")
    flood = Work.made[0]
    assert flood.frames < 32000                    # answered before the flood was through
    run_until(net, lambda: flood.frames == 32000, timeout=20)
    assert max(flood.batches) <= 64
    assert flood.transport.is_reading()            # the backlog is empty: reading again
    attacker.close()
    probe.close()
    server.close()


def test_frames_per_pass_is_a_limit_field(net):
    """Limits(frames_per_pass=8) hands at most 8 frames to the app per pass."""
    server, address = serve(net, frames_per_pass=8)
    peer = Peer(net, address)
    run_until(net, lambda: Work.made)
    peer.sock.sendall(b"x\n" * 100)
    run_until(net, lambda: Work.made[0].frames == 100)
    assert max(Work.made[0].batches) == 8
    peer.close()
    server.close()


def test_a_message_rate_holds_a_flood_to_rate_times_time_plus_burst(fake_net):
    """With rate_messages 10/s (burst 10), 32,000 lines in one write: at most 10 + 10 t frames
    reach the app by time t, each paid for before delivery."""
    server, address = serve(fake_net, rate_messages=Rate(10, burst=10), max_rate_debt_seconds=1e6)
    peer = Peer(fake_net, address)
    run_until(fake_net, lambda: Work.made)
    peer.sock.sendall(b"a\n" * 32000)
    run_until(fake_net, lambda: Work.made[0].frames == 10)
    peer.pump(20)
    assert Work.made[0].frames == 10
    for second in range(1, 6):
        advance(fake_net, fake_net.clock, 1.0, passes=20)
        assert Work.made[0].frames <= 10 + 10 * second + 1
    assert Work.made[0].frames >= 50
    peer.close()
    server.close()


def test_input_queued_past_the_debt_cap_disconnects(fake_net):
    """65,536 empty lines in one read at 1 message/s would take hours to pay for: the
    connection is closed with RateLimitError and counted, not held."""
    server, address = serve(fake_net, rate_messages=Rate(1, burst=1), max_rate_debt_seconds=60)
    peer = Peer(fake_net, address)
    run_until(fake_net, lambda: Work.made)
    peer.sock.sendall(b"\n" * 65536)
    peer.wait_closed()
    run_until(fake_net, lambda: Work.made[0].lost != "open")
    assert isinstance(Work.made[0].lost, reactor.RateLimitError)
    assert server.stats()["rejected_rate"] == 1
    peer.close()
    server.close()


def test_quit_inside_a_burst_does_not_spend_the_addresses_bucket_for_free(fake_net):
    """nick + 1,000 lines + /quit in one write at 1 message/s per address, then a reconnect:
    the new connection gets nothing before the bucket refills (the old one paid first)."""
    server, address = serve(fake_net, ip_rate_messages=Rate(1, burst=1))
    first = Peer(fake_net, address, "127.0.0.2")
    first.sock.sendall(b"nick\n" + b"hello\n" * 1000 + b"/quit\n")
    run_until(fake_net, lambda: Work.made and Work.made[0].frames == 1)
    first.close()
    advance(fake_net, fake_net.clock, 1.0)
    run_until(fake_net, lambda: len(server) == 0)
    again = Peer(fake_net, address, "127.0.0.2")
    again.sock.sendall(b"more\n" * 1000)
    run_until(fake_net, lambda: len(Work.made) == 2)
    again.pump(20)
    assert Work.made[1].frames <= 1
    again.close()
    server.close()


def test_a_held_connection_notices_its_peer_closed_within_a_second(net):
    """A connection held by its address's byte rate sees the peer's FIN within about a second:
    its fd is back, although it never reads again."""
    server, address = serve(net, ip_rate_bytes=Rate(1000, burst=1000))
    peers = [Peer(net, address, "127.0.0.2") for _ in range(20)]
    run_until(net, lambda: len(Work.made) == 20)
    for peer in peers:
        peer.sock.sendall(b"z" * 60000 + b"\n")
    net.run_once(0.05)
    for peer in peers:
        peer.close()
    started = time.monotonic()
    run_until(net, lambda: len(server) == 0, timeout=5)
    assert time.monotonic() - started < 1.6
    server.close()


def test_reconnect_churn_gets_no_more_than_the_address_rate(net):
    """Connect, send 64 KB, read the echo, close, again and again: the bytes echoed stay
    within ip_rate_bytes x elapsed + one burst (129x the rate got through before)."""

    class Echo(reactor.Protocol):
        def data_received(self, data):
            self.transport.write(data)
    rate = 20000
    server = net.listen_tcp(Echo, "127.0.0.1", 0,
                             limits=Limits(ip_rate_bytes=Rate(rate, burst=rate)))
    address = server.addresses[0][:2]
    echoed = 0
    started = time.monotonic()
    while time.monotonic() - started < 1.5:
        peer = Peer(net, address)
        peer.sock.sendall(b"z" * 65536)
        peer.pump(5)
        echoed += len(peer.received)
        peer.close()
    elapsed = time.monotonic() - started
    assert echoed <= rate * elapsed + rate + rate / 16 + 1
    server.close()


def test_a_frame_must_finish_within_the_progress_timeout(fake_net):
    """A frame begun and then trickled a byte every 10 s is closed at 30 s (FrameTimeoutError);
    a connection whose frames keep completing is not."""
    server, address = serve(fake_net, frame_progress_timeout_seconds=30)
    trickler = Peer(fake_net, address)
    steady = Peer(fake_net, address)
    run_until(fake_net, lambda: len(Work.made) == 2)
    for tick in range(4):
        trickler.send(b"x")
        steady.send(b"line\npart")                     # a frame completes, a new one begins
        advance(fake_net, fake_net.clock, 9.9)
        steady.send(b"ial\n")
        advance(fake_net, fake_net.clock, 0.1)
    trickler.wait_closed()
    run_until(fake_net, lambda: Work.made[0].lost != "open")
    assert isinstance(Work.made[0].lost, reactor.FrameTimeoutError)
    assert Work.made[1].lost == "open" and Work.made[1].frames == 8
    assert server.stats()["rejected_timeout"] == 1
    trickler.close()
    steady.close()
    server.close()


def test_partial_frames_past_the_input_budget_close_the_largest_holders(net):
    """Three connections hold partial frames; past the server's budget the largest is closed
    (InputBudgetError, counted) and the others go on."""
    server, address = serve(net, max_buffered_input_bytes=250_000)
    peers = [Peer(net, address) for _ in range(3)]
    run_until(net, lambda: len(Work.made) == 3)
    peers[0].send(b"a" * 50_000)
    peers[1].send(b"b" * 90_000)
    run_until(net, lambda: server.stats()["bytes_in"] == 140_000)
    peers[2].send(b"c" * 120_000)                       # 260,000 held: over the budget
    peers[2].wait_closed()
    run_until(net, lambda: Work.made[2].lost != "open")
    assert isinstance(Work.made[2].lost, reactor.InputBudgetError)
    assert server.stats()["rejected_input_budget"] == 1
    peers[0].send(b"\nping\n")
    peers[0].wait(lambda: peers[0].received == b"pong\n")
    assert server.input_budget.total == 90_000
    for peer in peers:
        peer.close()
    run_until(net, lambda: len(server) == 0)
    assert server.input_budget.total == 0
    server.close()


def test_input_budget_is_given_back_when_connections_close(net):
    """A connection that closes with a partial frame gives its bytes back to the budget."""
    server, address = serve(net, max_buffered_input_bytes=1_000_000)
    peer = Peer(net, address)
    run_until(net, lambda: Work.made)
    peer.send(b"p" * 5000)
    run_until(net, lambda: server.input_budget.total == 5000)
    peer.close()
    run_until(net, lambda: len(server) == 0)
    assert server.input_budget.total == 0
    server.close()
