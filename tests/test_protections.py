"""Protections on real loopback sockets: admission, timeouts, rates, caps, auth, stats.

Several source addresses in 127.0.0.0/8 stand in for different clients.
Where time matters the loop runs on a FakeClock, so the timeouts are
exact and nothing sleeps; where the kernel matters (shaping a real
sender) the clock is real and the assertions are lower bounds.
"""

import logging
import socket
import time

import pytest

from reactor import FramedProtocol, Limits, StreamTransport
from reactor.protect.auth import FAILURE_MESSAGE, PskAuth, TokenAuth, parse_challenge, psk_answer
from reactor.errors import AuthenticationError, FirstFrameTimeoutError
from reactor.framing import LengthPrefixFramer, LineFramer
from reactor.policy import Rate

from .support.certs import SERVER_HOSTNAME, client_ctx, raw_tls_client, server_ctx
from .support.loops import advance, run_until
from .support.peers import Peer, has_ipv6_loopback
from .support.recorders import Recorder, random_payload

TOKEN = b"test-token-0123456789"
PSK = b"test-psk-0123456789abcdef"


def serve(loop, factory=None, host="127.0.0.1", auth=None, ssl=None, **limit_changes):
    """Listen with ``Limits(**limit_changes)``; return (server, protocols made, address)."""
    made = []

    def make():
        protocol = factory() if factory else Recorder(echo=True)
        made.append(protocol)
        return protocol
    server = loop.listen_tcp(make, host, 0, limits=Limits(**limit_changes), auth=auth, ssl=ssl)
    return server, made, server.addresses[0][:2]


# -- admission: per-IP caps, allow and deny lists ------------------------------

def test_per_ip_cap_refuses_only_the_extra_connection(net):
    """Over max_per_ip from 127.0.0.2 is closed at once; 127.0.0.3 and the first two are served."""
    server, made, address = serve(net, max_per_ip=2)
    first, second = Peer(net, address, "127.0.0.2"), Peer(net, address, "127.0.0.2")
    run_until(net, lambda: len(made) == 2)
    extra = Peer(net, address, "127.0.0.2")
    extra.wait_closed()
    other = Peer(net, address, "127.0.0.3")
    other.send(b"still served\n")
    other.wait(lambda: other.received == b"still served\n")
    assert len(made) == 3 and server.stats()["rejected_per_ip"] == 1
    first.close()
    run_until(net, lambda: len(server) == 2)
    again = Peer(net, address, "127.0.0.2")          # a slot is free again
    again.send(b"back\n")
    again.wait(lambda: again.received == b"back\n")
    assert server.stats()["rejected_per_ip"] == 1
    for peer in (second, extra, other, again):
        peer.close()
    server.close()


def test_deny_list_refuses_before_any_protocol_code_runs(net):
    """A denied source is closed without a protocol ever being made; others are served."""
    server, made, address = serve(net, allow=("127.0.0.0/8",), deny=("127.0.0.2/32",))
    denied = Peer(net, address, "127.0.0.2")
    denied.wait_closed()
    assert made == [] and denied.received == b""
    allowed = Peer(net, address, "127.0.0.3")
    allowed.send(b"hi\n")
    allowed.wait(lambda: allowed.received == b"hi\n")
    assert server.stats()["rejected_filter"] == 1 and len(made) == 1
    denied.close()
    allowed.close()
    server.close()


def test_allow_list_admits_only_its_networks(net):
    """With an allow list, a source outside it is refused."""
    server, made, address = serve(net, allow=("127.0.0.3",))
    outside = Peer(net, address, "127.0.0.4")
    outside.wait_closed()
    inside = Peer(net, address, "127.0.0.3")
    inside.send(b"x")
    inside.wait(lambda: inside.received == b"x")
    assert server.stats()["rejected_filter"] == 1
    outside.close()
    inside.close()
    server.close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv4_client_of_a_dual_stack_listener_meets_the_ipv4_rules(net):
    """On a '::' socket a v4 client is ::ffff:127.0.0.2, and 127.0.0.2/32 still denies it."""
    server, made, address = serve(net, host="::", deny=("127.0.0.2/32",))
    port = address[1]
    denied = Peer(net, ("127.0.0.1", port), "127.0.0.2")
    denied.wait_closed()
    allowed = Peer(net, ("127.0.0.1", port), "127.0.0.3")
    allowed.send(b"ok")
    allowed.wait(lambda: allowed.received == b"ok")
    assert made[0].transport.get_extra_info("peername")[0] == "::ffff:127.0.0.3"
    assert server.stats()["rejected_filter"] == 1
    denied.close()
    allowed.close()
    server.close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_networks_are_filtered(net):
    """An IPv6 deny entry refuses ::1."""
    server, made, address = serve(net, host="::1", deny=("::1/128",))
    peer = Peer(net, address)
    peer.wait_closed()
    assert made == [] and server.stats()["rejected_filter"] == 1
    peer.close()
    server.close()


# -- timeouts -------------------------------------------------------------------

def test_idle_timeout_closes_a_quiet_connection_and_activity_resets_it(fake_net):
    """Data moves the idle deadline; idle_timeout seconds of silence close with IdleTimeoutError."""
    server, made, address = serve(fake_net, idle_timeout_seconds=30)
    peer = Peer(fake_net, address)
    run_until(fake_net, lambda: made)
    advance(fake_net, fake_net.clock, 29.9)
    peer.send(b"ping")
    peer.wait(lambda: peer.received == b"ping")
    advance(fake_net, fake_net.clock, 29.9)          # 59.8 s after connecting: still open
    peer.pump(3)
    assert not peer.closed and not made[0].lost()
    advance(fake_net, fake_net.clock, 0.2)           # 30.1 s after the last byte
    peer.wait_closed()
    run_until(fake_net, made[0].lost)
    assert made[0].events[-1] == ("lost", "IdleTimeoutError")
    assert server.stats()["rejected_timeout"] == 1
    peer.close()
    server.close()


def test_writes_by_the_server_count_as_activity(fake_net):
    """A connection the server keeps writing to is not idle, even if the peer says nothing."""
    server, made, address = serve(fake_net, idle_timeout_seconds=10)
    peer = Peer(fake_net, address)
    run_until(fake_net, lambda: made)
    for _ in range(5):
        advance(fake_net, fake_net.clock, 8)
        made[0].transport.write(b"tick\n")
    peer.wait(lambda: peer.received == b"tick\n" * 5)
    assert not peer.closed
    advance(fake_net, fake_net.clock, 10)
    peer.wait_closed()
    peer.close()
    server.close()


class Lines(FramedProtocol):
    """Records whole lines and the reason it was closed."""

    framer = LineFramer(max_length=100)

    def __init__(self):
        self.lines = []
        self.lost = "open"

    def frame_received(self, frame):
        self.lines.append(bytes(frame))

    def connection_lost(self, exc):
        self.lost = exc


def test_first_frame_timeout_closes_a_slowloris(fake_net):
    """A trickled partial first line is closed at the deadline; a whole line in time lifts it."""
    server, made, address = serve(fake_net, Lines, first_frame_timeout_seconds=5)
    slow = Peer(fake_net, address)
    prompt = Peer(fake_net, address)
    run_until(fake_net, lambda: len(made) == 2)
    slow_protocol, prompt_protocol = made
    for _ in range(4):                               # a byte a second keeps idle timers happy
        slow.send(b"G")
        advance(fake_net, fake_net.clock, 1)
    prompt.send(b"hello\n")
    run_until(fake_net, lambda: prompt_protocol.lines == [b"hello"])
    advance(fake_net, fake_net.clock, 1.01)
    slow.wait_closed()
    run_until(fake_net, lambda: slow_protocol.lost != "open")
    assert isinstance(slow_protocol.lost, FirstFrameTimeoutError)
    advance(fake_net, fake_net.clock, 100)
    prompt.pump(3)
    assert not prompt.closed and prompt_protocol.lost == "open"
    assert server.stats()["rejected_timeout"] == 1
    slow.close()
    prompt.close()
    server.close()


def test_first_frame_of_a_raw_protocol_is_its_first_byte(fake_net):
    """For a raw protocol any byte meets the first-frame deadline; none misses it."""
    server, made, address = serve(fake_net, first_frame_timeout_seconds=5)
    silent, talker = Peer(fake_net, address), Peer(fake_net, address)
    run_until(fake_net, lambda: len(made) == 2)
    talker.send(b"x")
    talker.wait(lambda: talker.received == b"x")
    advance(fake_net, fake_net.clock, 5)
    silent.wait_closed()
    talker.pump(3)
    assert not talker.closed
    silent.close()
    talker.close()
    server.close()


def test_two_thousand_idle_connections_are_dropped_while_a_fresh_client_is_served(fake_net):
    """2,000 silent connections all close at the idle timeout; a client active meanwhile stays."""
    server, made, address = serve(fake_net, idle_timeout_seconds=60)
    idle = []
    for _ in range(2000):
        sock = socket.create_connection(address, timeout=5)
        sock.setblocking(False)
        idle.append(sock)
        if len(idle) % 100 == 0:
            run_until(fake_net, lambda: len(server) == len(idle))
    run_until(fake_net, lambda: len(server) == 2000)
    advance(fake_net, fake_net.clock, 30)
    fresh = Peer(fake_net, address)
    advance(fake_net, fake_net.clock, 29.99)
    fresh.send(b"are you there?")
    fresh.wait(lambda: fresh.received == b"are you there?")
    assert len(server) == 2001
    fake_net.clock.advance(0.011)                   # 60 s since the 2,000 connected, + a tick
    fake_net.run_once(0)
    assert len(server) == 1                         # all 2,000 in one pass
    fresh.send(b"still here")
    fresh.wait(lambda: fresh.received.endswith(b"still here"))
    closed = 0
    for sock in idle:
        sock.setblocking(True)
        sock.settimeout(5)
        try:
            closed += sock.recv(1) == b""
        except ConnectionResetError:
            closed += 1
        sock.close()
    assert closed == 2000 and server.stats()["rejected_timeout"] == 2000
    fresh.close()
    server.close()


# -- rate limits ----------------------------------------------------------------

def test_shaping_delivers_every_byte_at_no_more_than_the_rate(net):
    """A sender far above the byte rate loses nothing; the echo takes at least the rate's time."""
    rate, burst, size = 100_000, 20_000, 200_000
    server, made, address = serve(net, rate_bytes=Rate(rate, burst))
    payload = random_payload(size, seed=7)
    peer = Peer(net, address)
    started = time.monotonic()
    peer.send(payload, timeout=10)                  # push it all; shaping holds it back
    peer.wait(lambda: len(peer.received) >= size, timeout=10)
    elapsed = time.monotonic() - started
    assert peer.received == payload
    # At most burst + one 64 KiB read ahead of the rate: a lower bound on the time taken.
    assert elapsed >= (size - burst - 65536) / rate
    assert server.stats()["rejected_rate"] == 0
    peer.close()
    server.close()


def test_message_rate_is_paid_per_frame_before_the_app_sees_it(fake_net):
    """20 lines at 10/s with a burst of 5: 5 arrive at once, then one per 0.1 s; reading is held
    meanwhile and resumes once every frame has been paid for."""
    server, made, address = serve(fake_net, Lines, rate_messages=Rate(10, burst=5))
    peer = Peer(fake_net, address)
    peer.send(b"".join(b"line %d\n" % i for i in range(20)))
    run_until(fake_net, lambda: made and len(made[0].lines) == 5)
    peer.pump(20)
    transport = made[0].transport
    assert len(made[0].lines) == 5 and not transport.is_reading()
    for paid in range(6, 21):                        # (0.101: wheel ticks round deadlines up)
        advance(fake_net, fake_net.clock, 0.101)
        assert len(made[0].lines) == paid
    assert made[0].lines == [b"line %d" % i for i in range(20)]
    advance(fake_net, fake_net.clock, 0.101)
    assert transport.is_reading()
    peer.close()
    server.close()


def test_app_pause_and_rate_pause_do_not_undo_each_other(fake_net):
    """When the rate hold ends, reading stays off if the app itself paused it."""
    server, made, address = serve(fake_net, Lines, rate_messages=Rate(1, burst=1))
    peer = Peer(fake_net, address)
    peer.send(b"a\nb\n")
    run_until(fake_net, lambda: made and made[0].lines == [b"a"])
    transport = made[0].transport
    transport.pause_reading()                        # the app's own reason
    advance(fake_net, fake_net.clock, 5)
    assert made[0].lines == [b"a", b"b"]             # paid for: delivered
    assert not transport.is_reading()                # but the app's pause stands
    transport.resume_reading()
    assert transport.is_reading()
    peer.close()
    server.close()


def test_per_ip_bucket_is_shared_by_that_clients_connections(fake_net):
    """Two connections from one address share its bucket; another address has its own."""
    server, made, address = serve(fake_net, Lines, ip_rate_messages=Rate(10, burst=10))
    first, second = Peer(fake_net, address, "127.0.0.2"), Peer(fake_net, address, "127.0.0.2")
    other = Peer(fake_net, address, "127.0.0.3")
    run_until(fake_net, lambda: len(made) == 3)
    first.send(b"x\n" * 6)
    run_until(fake_net, lambda: len(made[0].lines) == 6)
    assert made[0].transport.is_reading()            # 6 of the 10 tokens
    second.send(b"y\n" * 6)
    run_until(fake_net, lambda: not made[1].transport.is_reading())
    second.pump(10)
    # What is left of the shared burst (less the first's lease, a sixteenth) gets through.
    assert 3 <= len(made[1].lines) <= 4
    other.send(b"z\n" * 6)
    run_until(fake_net, lambda: len(made[2].lines) == 6)
    assert made[2].transport.is_reading()
    for peer in (first, second, other):
        peer.close()
    server.close()


def test_disconnect_action_closes_a_sender_over_the_rate(net):
    """With rate_action='disconnect', overdrawing the bucket closes with RateLimitError."""
    server, made, address = serve(net, rate_bytes=Rate(1000, burst=1000),
                                  rate_action="disconnect")
    polite = Peer(net, address)
    polite.send(b"p" * 500)
    polite.wait(lambda: len(polite.received) == 500)
    greedy = Peer(net, address)
    greedy.send(b"g" * 5000)
    greedy.wait_closed()
    run_until(net, lambda: made[1].lost())
    assert made[1].events[-1] == ("lost", "RateLimitError")
    assert server.stats()["rejected_rate"] == 1 and not polite.closed
    polite.close()
    greedy.close()
    server.close()


# -- slow consumers ------------------------------------------------------------------

def socketpair_transport(loop, **limit_changes):
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    protocol = Recorder()
    transport = StreamTransport(loop, ours, protocol, limits=Limits(**limit_changes))
    transport.start()
    return transport, protocol, theirs


def test_send_buffer_hard_cap_at_limit_minus_one_limit_and_plus_one(net):
    """Queued bytes may reach the hard cap exactly; one byte more drops them and closes."""
    cap = 1_000_000
    transport, protocol, theirs = socketpair_transport(
        net, send_buffer_hard_cap_bytes=cap, send_buffer_soft_cap_bytes=None,
        high_water_bytes=10 * cap, low_water_bytes=0)
    transport.write(b"a" * (cap // 2))               # the kernel takes part; the rest queues
    queued = transport.get_write_buffer_size()
    assert 0 < queued < cap
    transport.write(b"b" * (cap - queued - 1))       # limit - 1
    transport.write(b"c")                            # the limit exactly
    assert transport.get_write_buffer_size() == cap and not transport.is_closing()
    transport.write(b"d")                            # limit + 1
    assert transport.is_closing() and transport.get_write_buffer_size() == 0
    transport.write(b"ignored after a protection close")   # no exception for the app
    run_until(net, protocol.lost)
    assert protocol.events[-1] == ("lost", "SlowConsumerError")
    theirs.close()


def test_soft_cap_closes_only_if_held_for_the_whole_period(fake_net):
    """Over the soft cap for less than its seconds is fine; for all of them, closed."""
    transport, protocol, theirs = socketpair_transport(
        fake_net, send_buffer_soft_cap_bytes=100_000, send_buffer_soft_cap_seconds=5,
        high_water_bytes=10_000_000, low_water_bytes=0)
    theirs.setblocking(False)
    transport.write(b"x" * 2_000_000)
    assert transport.get_write_buffer_size() > 100_000
    advance(fake_net, fake_net.clock, 4.9)
    assert not transport.is_closing()
    while transport.get_write_buffer_size():         # the peer catches up
        try:
            theirs.recv(1 << 20)
        except BlockingIOError:
            pass
        fake_net.run_once(0)
    advance(fake_net, fake_net.clock, 1)
    assert not transport.is_closing()
    transport.write(b"y" * 2_000_000)                # falls behind again
    advance(fake_net, fake_net.clock, 4.99)
    assert not transport.is_closing()
    advance(fake_net, fake_net.clock, 0.02)
    assert transport.is_closing()
    run_until(fake_net, protocol.lost)
    assert protocol.events[-1] == ("lost", "SlowConsumerError")
    theirs.close()


def test_a_server_counts_and_drops_a_slow_consumer(net):
    """A client that never reads while the server writes is dropped and counted."""
    class Firehose(Recorder):
        def data_received(self, data):
            chunk = b"z" * 65536                     # queued by reference: cheap to repeat
            for _ in range(512):
                self.transport.write(chunk)
    server, made, address = serve(net, Firehose, send_buffer_hard_cap_bytes=1_000_000)
    peer = Peer(net, address)
    peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    peer.send(b"go")
    run_until(net, lambda: made and made[0].lost())
    assert made[0].events[-1] == ("lost", "SlowConsumerError")
    assert server.stats()["rejected_slow_consumer"] == 1
    peer.close()
    server.close()


# -- auth ------------------------------------------------------------------------------

def test_token_auth_lets_the_protocol_see_only_what_follows_the_token(net):
    """The right token (pipelined with data) opens the connection; the app never sees it."""
    server, made, address = serve(net, auth=TokenAuth([TOKEN]))
    peer = Peer(net, address)
    run_until(net, lambda: len(server) == 1)
    assert made[0].events == []                     # no connection_made before auth
    peer.send(TOKEN + b"\nhello")
    peer.wait(lambda: peer.received == b"hello")
    assert made[0].events == [("made",)] and bytes(made[0].received) == b"hello"
    peer.close()
    server.close()


def test_wrong_token_and_silence_fail_with_the_same_generic_reply(fake_net):
    """A wrong token, an overlong line or silence: one generic line, a close; no app sees it."""
    server, made, address = serve(fake_net, auth=TokenAuth([TOKEN]), auth_timeout_seconds=10)
    wrong, overlong, silent = (Peer(fake_net, address) for _ in range(3))
    wrong.send(TOKEN[:-1] + b"X\n")
    overlong.send(b"A" * 5000)
    run_until(fake_net, lambda: len(server) == 1)
    advance(fake_net, fake_net.clock, 10)
    for peer in (wrong, overlong, silent):
        peer.wait_closed()
        assert peer.received == FAILURE_MESSAGE + b"\n"
        peer.close()
    assert all(protocol.events == [] for protocol in made)
    assert server.stats()["rejected_auth"] == 3
    server.close()


def test_token_is_the_first_frame_for_a_length_prefixed_app(net):
    """With length framing the token is a frame, and frames pipelined after it reach the app."""
    framer = LengthPrefixFramer(4)

    class Frames(Lines):
        pass
    Frames.framer = framer
    server, made, address = serve(net, Frames, auth=TokenAuth([TOKEN]))
    peer = Peer(net, address)
    peer.send(framer.encode(TOKEN) + framer.encode(b"one") + framer.encode(b"two")[:5])
    run_until(net, lambda: made and made[0].lines == [b"one"])
    peer.send(b"wo")
    run_until(net, lambda: made[0].lines == [b"one", b"two"])
    assert made[0].frames_in == 2
    peer.close()
    server.close()


def test_token_auth_over_tls(net):
    """The token handshake runs on the decrypted stream, after the TLS handshake."""
    class TLSWitness(Recorder):
        """Notes, when connection_made comes, whether TLS is already up underneath."""

        def connection_made(self, transport):
            super().connection_made(transport)
            self.tls_at_made = (transport.get_extra_info("ssl_object") is not None,
                                transport.get_extra_info("cipher") is not None)

    class Client(TLSWitness):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"over tls")

    server, made, address = serve(net, lambda: TLSWitness(echo=True), auth=TokenAuth([TOKEN]),
                                  ssl=server_ctx())
    client = Client()
    connector = net.connect_tcp(lambda: client, *address, ssl=client_ctx(),
                                server_hostname=SERVER_HOSTNAME, auth_token=TOKEN)
    run_until(net, lambda: bytes(client.received) == b"over tls")
    assert made[0].tls_at_made == (True, True)       # the app came after the TLS handshake
    assert client.tls_at_made == (True, True)
    assert bytes(made[0].received) == b"over tls"    # the token was read, decrypted, by auth
    stats = server.stats()
    assert (stats["rejected_auth"], stats["rejected_tls_handshake"]) == (0, 0)
    assert connector.error is None
    client.transport.close()
    run_until(net, lambda: client.lost() and made[0].lost())
    assert made[0].events == [("made",), ("eof",), ("lost", None)]
    server.close()


def test_psk_client_helper_authenticates_and_hands_over(net):
    """connect_tcp(psk=...) answers the challenge; the app sees only the echo session."""
    server, made, address = serve(net, auth=PskAuth([PSK]))
    client = Recorder()
    connector = net.connect_tcp(lambda: client, *address, psk=PSK)
    run_until(net, lambda: client.events == [("made",)])
    assert client.transport.get_protocol() is client       # the auth layer stepped aside
    client.transport.write(b"after psk")
    run_until(net, lambda: bytes(made[0].received) == b"after psk")
    run_until(net, lambda: bytes(client.received) == b"after psk")
    assert connector.error is None
    client.transport.close()
    run_until(net, client.lost)
    server.close()


def test_psk_wrong_key_is_an_authentication_error_for_the_client(net):
    """A client with the wrong key gets on_error(AuthenticationError); neither app sees it."""
    server, made, address = serve(net, auth=PskAuth([PSK]))
    client = Recorder()
    errors = []
    net.connect_tcp(lambda: client, *address, psk=b"not-the-key-0123456789",
                    on_error=errors.append)
    run_until(net, lambda: errors)
    assert isinstance(errors[0], AuthenticationError) and client.events == []
    run_until(net, lambda: server.stats()["rejected_auth"] == 1)
    assert made[0].events == []
    server.close()


def test_psk_replayed_answer_is_refused(net):
    """An answer recorded from one connection fails on the next (a fresh nonce each time)."""
    server, made, address = serve(net, auth=PskAuth([PSK]))
    first = Peer(net, address)
    first.wait(lambda: first.received.endswith(b"\n"))
    answer = psk_answer(PSK, parse_challenge(first.received)) + b"\n"
    first.send(answer)
    first.wait(lambda: first.received.endswith(b"ok\n"))
    replay = Peer(net, address)
    replay.wait(lambda: replay.received.endswith(b"\n"))
    replay.send(answer)
    replay.wait_closed()
    assert replay.received.endswith(FAILURE_MESSAGE + b"\n")
    assert server.stats()["rejected_auth"] == 1 and not first.closed
    first.close()
    replay.close()
    server.close()


# -- stats and logging --------------------------------------------------------------------

def test_stats_count_bytes_and_frames_both_ways(net):
    """Framed echo of 50 lines: 50 frames and their bytes each way, kept after the close."""
    from reactor.apps.echo import FramedEchoProtocol
    server, made, address = serve(net, FramedEchoProtocol)
    peer = Peer(net, address)
    data = b"".join(b"message %02d\n" % i for i in range(50))
    peer.send(data)
    peer.wait(lambda: peer.received == data)
    stats = server.stats()
    assert (stats["frames_in"], stats["frames_out"]) == (50, 50)
    assert (stats["bytes_in"], stats["bytes_out"]) == (len(data), len(data))
    peer.close()
    run_until(net, lambda: len(server) == 0)
    assert server.stats()["frames_in"] == 50 and server.stats()["bytes_out"] == len(data)
    server.close()


def test_abuse_logging_is_rate_limited(fake_net, caplog):
    """Thirty failed logins make one log line in the interval, then one summary."""
    server, made, address = serve(fake_net, auth=TokenAuth([TOKEN]))
    with caplog.at_level(logging.WARNING, logger="reactor"):
        peers = []
        for _ in range(30):
            peer = Peer(fake_net, address)
            peer.send(b"guess\n")
            peers.append(peer)
        run_until(fake_net, lambda: server.stats()["rejected_auth"] == 30)
        lines = [r.getMessage() for r in caplog.records]
        assert len([line for line in lines if "(auth)" in line]) == 1
        advance(fake_net, fake_net.clock, 10)
        lines = [r.getMessage() for r in caplog.records]
        assert "auth: 29 more like this from 1 client(s) in the last 10 s" in lines
    for peer in peers:
        peer.close()
    server.close()


def test_unix_peers_pass_the_filters_and_still_authenticate(fake_net, tmp_path):
    """A Unix-socket peer has no address: deny-everything lists pass it, auth and idle apply."""
    path = str(tmp_path / "guarded.sock")
    made = []

    def make():
        made.append(Recorder(echo=True))
        return made[-1]
    server = fake_net.listen_unix(make, path, auth=TokenAuth([TOKEN]),
                                  limits=Limits(deny=("0.0.0.0/0", "::/0"), max_per_ip=1,
                                                idle_timeout_seconds=5))
    peers = []
    for _ in range(2):                               # max_per_ip does not count Unix peers
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(TOKEN + b"\nunix")
        peers.append(sock)
    run_until(fake_net, lambda: len(made) == 2 and all(bytes(p.received) == b"unix"
                                                         for p in made))
    assert server.stats()["rejected_filter"] == 0 and server.stats()["clients"] == 0
    advance(fake_net, fake_net.clock, 5)
    run_until(fake_net, lambda: all(p.lost() for p in made))
    assert server.stats()["rejected_timeout"] == 2
    for sock in peers:
        sock.close()
    server.close()


def test_chat_tells_the_room_when_a_member_is_dropped_for_idling(fake_net):
    """An idle chat member is disconnected by the idle timeout, and the room hears why."""
    from reactor.apps.chat import ChatService
    service = ChatService()
    server = fake_net.listen_tcp(service.protocol, "127.0.0.1", 0,
                                 limits=Limits(idle_timeout_seconds=60))
    address = server.addresses[0][:2]
    alice, bob = Peer(fake_net, address), Peer(fake_net, address)
    alice.send(b"alice\n")
    bob.send(b"bob\n")
    alice.wait(lambda: b"* bob joined #lobby\n" in alice.received)
    advance(fake_net, fake_net.clock, 50)
    alice.send(b"still here\n")                      # a line to the room: bob gets bytes too
    bob.wait(lambda: b"alice: still here\n" in bob.received)
    advance(fake_net, fake_net.clock, 50)
    alice.send(b"/who\n")                            # only alice gets the answer
    alice.wait(lambda: b"* in #lobby: alice, bob\n" in alice.received)
    advance(fake_net, fake_net.clock, 9.9)
    bob.pump(3)
    assert not bob.closed                            # 59.9 s since bob's last bytes
    advance(fake_net, fake_net.clock, 0.2)
    bob.wait_closed()
    alice.wait(lambda: b"* bob was disconnected (timeout)\n" in alice.received)
    assert not alice.closed
    alice.close()
    bob.close()
    server.close()


def test_reconnecting_does_not_reset_a_clients_bucket(fake_net):
    """A new connection from an address whose bucket is spent starts held; the record rests
    after the client leaves until the bucket refills, then is forgotten."""
    server, made, address = serve(fake_net, Lines, ip_rate_messages=Rate(10, burst=10))
    first = Peer(fake_net, address, "127.0.0.2")
    first.send(b"x\n" * 30)
    run_until(fake_net, lambda: made and len(made[0].lines) == 10)
    first.pump(10)
    assert len(made[0].lines) == 10 and server.stats()["rate_pauses"] == 1
    again = Peer(fake_net, address, "127.0.0.2")     # the same client, a fresh connection
    again.send(b"y\n")
    run_until(fake_net, lambda: len(made) == 2)
    again.pump(10)
    assert made[1].lines == [] and not made[1].transport.is_reading()   # starts held
    first.close()                                    # noticed by the held connection's probe
    for _ in range(3):
        advance(fake_net, fake_net.clock, 0.102)
    run_until(fake_net, lambda: made[1].lines == [b"y"] and len(server) == 1)
    again.close()
    run_until(fake_net, lambda: len(server) == 0)   # at once: the bucket is still refilling
    assert (server.stats()["clients"], server.stats()["clients_resting"]) == (0, 1)
    advance(fake_net, fake_net.clock, 3)             # refilled
    other = Peer(fake_net, address, "127.0.0.3")     # a new client sweeps settled records
    run_until(fake_net, lambda: len(server) == 1)
    assert (server.stats()["clients"], server.stats()["clients_resting"]) == (1, 0)
    other.close()
    server.close()


# -- attack-report regressions: TLS errors, mapped rules, token files ----------------

def test_tls_errors_after_the_handshake_are_counted_and_logged_sparingly(net, caplog):
    """50 peers that finish the handshake then send a bad record: each is closed and counted
    under 'tls', and the abuse log writes one line for them, not 50."""
    server, made, address = serve(net, ssl=server_ctx())
    with caplog.at_level(logging.WARNING, logger="reactor"):
        for count in range(1, 51):
            tls = raw_tls_client(net, address)
            # Below TLS (the plain socket's sendall): an application-data record
            # header, then 32 bytes that fail the record's authentication.
            socket.socket.sendall(tls, b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
            run_until(net, lambda: server.stats()["rejected_tls"] == count)
            tls.close()
    tls_lines = [r for r in caplog.records if "(tls)" in r.getMessage()]
    assert len(tls_lines) == 1
    server.close()


def test_an_ipv4_mapped_rule_is_normalized_to_ipv4():
    """deny ::ffff:127.0.0.0/104 means 127.0.0.0/8 (clients are judged as IPv4), not a rule
    that silently never matches."""
    import ipaddress
    limits = Limits(deny=["::ffff:127.0.0.0/104"], allow=["::ffff:10.1.2.3"])
    assert limits.deny == (ipaddress.ip_network("127.0.0.0/8"),)
    assert limits.allow == (ipaddress.ip_network("10.1.2.3/32"),)


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_a_mapped_deny_rule_refuses_ipv4_clients_of_a_dual_stack_server(net):
    """On a dual-stack listener, --deny ::ffff:127.0.0.0/104 refuses 127.0.0.1."""
    server, made, address = serve(net, host="::", deny=["::ffff:127.0.0.0/104"])
    peer = Peer(net, ("127.0.0.1", address[1]))
    peer.wait_closed()
    assert made == [] and server.stats()["rejected_filter"] == 1
    peer.close()
    server.close()


def test_a_token_file_with_a_bom_and_crlf_lines_works(tmp_path, net):
    """A token file saved with a UTF-8 BOM and CRLF line ends gives the token itself; on the
    wire one CR before the LF is a line ending, two are part of a wrong token."""
    path = tmp_path / "tokens"
    path.write_bytes(b"\xef\xbb\xbfs3cret-token\r\nsecond\r\n")
    auth = TokenAuth.from_file(str(path))
    assert auth.check(b"s3cret-token") and auth.check(b"second")
    server, made, address = serve(net, auth=auth)
    good = Peer(net, address)
    good.send(b"s3cret-token\r\nhello")
    good.wait(lambda: good.received == b"hello")
    bad = Peer(net, address)
    bad.send(b"s3cret-token\r\r\n")
    bad.wait_closed()
    assert bad.received == FAILURE_MESSAGE + b"\n"
    good.close()
    bad.close()
    server.close()


def test_a_token_file_that_is_not_utf8_is_refused(tmp_path):
    """A token file that is not UTF-8 text is refused at start with the byte that is wrong."""
    path = tmp_path / "tokens"
    path.write_bytes(b"token\xff\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        TokenAuth.from_file(str(path))
