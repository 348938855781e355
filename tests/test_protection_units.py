"""The socket-free parts of the protections: buckets, filters, auth handshakes, abuse log."""

import ipaddress
import logging
import random

import pytest

from reactor.addresses import peer_ip
from reactor.protect.admission import AccessFilter, client_key
from reactor.protect.auth import (FAILURE_MESSAGE, MAX_AUTH_LINE_BYTES, PSK_VERSION, PskAuth,
                          TokenAuth, parse_challenge, psk_answer)
from reactor.errors import AuthenticationError
from reactor.framing import LengthPrefixFramer
from reactor.protect.abuselog import AbuseLog
from reactor.server import format_stats
from reactor.policy import Limits, Rate
from reactor.protect.ratelimit import TokenBucket, charge, lease_size, refund

PSK = b"0123456789abcdef-shared-key"


# -- token buckets -------------------------------------------------------------

def test_bucket_starts_full_and_pays_within_the_burst():
    """A new bucket lets ``burst`` tokens through with no wait; one more costs 1/rate s."""
    bucket = TokenBucket(Rate(100, burst=10), now=0.0)
    assert bucket.take(9, 0.0) == 0.0          # limit - 1
    assert bucket.take(1, 0.0) == 0.0          # exactly the limit
    assert bucket.take(1, 0.0) == pytest.approx(0.01)   # limit + 1: one token of debt


def test_bucket_debt_is_repaid_at_the_rate():
    """A read that overdraws waits debt / rate; after that wait the balance is zero again."""
    bucket = TokenBucket(Rate(1000, burst=100), now=0.0)
    wait = bucket.take(600, 0.0)
    assert wait == pytest.approx(0.5)
    assert bucket.take(0, 0.5) == 0.0
    assert bucket.tokens(0.5) == pytest.approx(0.0)


def test_bucket_refill_stops_at_the_burst():
    """A long quiet spell refills to ``burst``, never more."""
    bucket = TokenBucket(Rate(10, burst=5), now=0.0)
    bucket.take(5, 0.0)
    assert bucket.take(0, 1000.0) == 0.0
    assert bucket.tokens(1000.0) == 5
    assert bucket.is_full(1000.0)
    assert bucket.take(6, 1000.0) == pytest.approx(0.1)


def test_bucket_long_run_rate_is_exact_under_shaping():
    """A sender that waits whenever told to gets exactly burst + rate * T through in T seconds."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    rate, burst = 5000.0, 2000.0
    bucket = TokenBucket(Rate(rate, burst), now=0.0)
    now, sent = 0.0, 0
    while now < 100.0:
        chunk = rng.randint(1, 3000)
        sent += chunk
        now += bucket.take(chunk, now)       # pause exactly as long as the guard would
    # At the last pause's end the debt is repaid: sent == burst + rate * now.
    assert sent == pytest.approx(burst + rate * now, rel=1e-9), "seed %d" % seed


def test_charge_leases_only_what_every_bucket_can_spare():
    """A lease is taken from all buckets alike and never puts one into debt."""
    own, shared = TokenBucket(Rate(100, burst=100), 0.0), TokenBucket(Rate(100, burst=30), 0.0)
    wait, leased = charge([own, shared], 20, lease=50, now=0.0)
    assert wait == 0.0 and leased == pytest.approx(10)        # shared had 10 spare
    assert own.tokens(0.0) == pytest.approx(70) and shared.tokens(0.0) == pytest.approx(0)
    wait, leased = charge([own, shared], 5, lease=50, now=0.0)
    assert wait == pytest.approx(0.05) and leased == 0.0      # 5 of debt on shared
    refund([own, shared], 10)
    assert own.tokens(0.0) == pytest.approx(75) and shared.tokens(0.0) == pytest.approx(5)
    assert lease_size([own, shared]) == pytest.approx(30 / 16)


def test_leases_never_delay_more_than_charging_every_read_and_keep_the_bound():
    """Leased charging never waits longer than per-read charging and keeps the rate's bound."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    rate = Rate(10000, burst=4000)
    plain, leased_bucket = TokenBucket(rate, 0.0), TokenBucket(rate, 0.0)
    lease, credit, now, delivered = lease_size([leased_bucket]), 0.0, 0.0, 0
    window_start, window_delivered = 0.0, 0
    for _ in range(5000):
        if rng.random() < 0.1:
            now += 1.0                                   # idle: both buckets refill
            window_start, window_delivered = now, 0
        chunk = rng.randint(1, 1500)
        expected = plain.take(chunk, now)
        credit -= chunk
        wait = 0.0
        if credit < 0:
            wait, credit = charge([leased_bucket], -credit, lease, now)
        assert wait <= expected + 1e-9, "seed %d" % seed
        delivered += chunk
        window_delivered += chunk
        assert window_delivered <= (rate.burst + lease + rate.per_second * (now - window_start)
                                    + 1500 + 1e-6), "seed %d" % seed      # float rounding
        now += wait                                      # the guard pauses this long
    assert lease == rate.burst / 16


def test_rate_defaults_burst_to_one_second_and_validates():
    """Rate(n) bursts n; zero, negative, infinite rates or bursts are refused."""
    assert Rate(250).burst == 250
    assert Rate(0.5).burst == 1
    for bad in (0, -1, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rate"):
            Rate(bad)
    with pytest.raises(ValueError, match="burst"):
        Rate(10, burst=0)


def test_limits_reject_bad_protection_values():
    """Every protection number is validated with a message naming the field."""
    for changes, needle in [({"max_per_ip": 0}, "max_per_ip"),
                            ({"idle_timeout_seconds": -1}, "idle_timeout_seconds"),
                            ({"first_frame_timeout_seconds": 0}, "first_frame_timeout"),
                            ({"send_buffer_hard_cap_bytes": 0}, "hard_cap"),
                            ({"rate_action": "drop"}, "rate_action"),
                            ({"rate_bytes": 1000}, "rate_bytes"),
                            ({"ipv6_prefix_length": 129}, "ipv6_prefix_length"),
                            ({"deny": ("10.0.0.0/33",)}, "deny"),
                            ({"allow": ("example.com",)}, "allow")]:
        with pytest.raises(ValueError, match=needle):
            Limits(**changes)


# -- access filtering -------------------------------------------------------------

def test_deny_wins_over_allow():
    """An address both allowed and denied is refused; the rest of the allowed net is not."""
    access = AccessFilter(allow=["10.0.0.0/8"], deny=["10.1.0.0/16"])
    assert access.allows(("10.2.3.4", 5000))
    assert not access.allows(("10.1.3.4", 5000))
    assert not access.allows(("192.168.1.1", 5000))      # not on the allow list


def test_only_deny_lets_everyone_else_in():
    """With no allow list, everything not denied is allowed."""
    access = AccessFilter(deny=["192.0.2.0/24", "2001:db8::/32"])
    assert not access.allows(("192.0.2.7", 1))
    assert not access.allows(("2001:db8::1", 1, 0, 0))
    assert access.allows(("198.51.100.1", 1))
    assert access.allows(("2001:db9::1", 1, 0, 0))


def test_ipv4_mapped_ipv6_is_judged_as_ipv4():
    """A v4 client on a dual-stack socket (::ffff:a.b.c.d) meets the IPv4 rules."""
    access = AccessFilter(deny=["203.0.113.0/24"])
    assert not access.allows(("::ffff:203.0.113.9", 1, 0, 0))
    assert access.allows(("::ffff:198.51.100.9", 1, 0, 0))
    only_v4 = AccessFilter(allow=["198.51.100.0/24"])
    assert only_v4.allows(("::ffff:198.51.100.9", 1, 0, 0))
    assert peer_ip(("::ffff:10.0.0.1", 1, 0, 0)) == ipaddress.ip_address("10.0.0.1")


def test_unix_peers_and_scoped_addresses():
    """Unix peers are always allowed; a zone index (fe80::1%eth0) does not break parsing."""
    access = AccessFilter(allow=["fe80::/10"])
    assert access.allows("")
    assert access.allows("/tmp/some.sock")
    assert access.allows(("fe80::1%eth0", 1, 0, 2))
    assert not AccessFilter(allow=["10.0.0.0/8"]).allows(("fe80::1%eth0", 1, 0, 2))


def test_client_key_counts_ipv6_by_network():
    """IPv4 clients count per address, IPv6 per /64 (configurable), Unix peers not at all."""
    assert client_key(("10.1.2.3", 1)) == "10.1.2.3"
    assert client_key(("::ffff:10.1.2.3", 1, 0, 0)) == "10.1.2.3"
    assert client_key(("2001:db8:1:2:aaaa::1", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert client_key(("2001:db8:1:2:bbbb::9", 1, 0, 0)) == "2001:db8:1:2::/64"
    assert client_key(("2001:db8::1", 1, 0, 0), 128) == "2001:db8::1"
    assert client_key("") is None


# -- auth: bearer tokens ------------------------------------------------------------

def test_token_check_accepts_any_listed_token_only():
    """Each listed token passes; a prefix, an extension or an empty string does not."""
    auth = TokenAuth(["alpha-token", b"beta-token"])
    assert auth.check(b"alpha-token") and auth.check(b"beta-token")
    for wrong in (b"alpha", b"alpha-token2", b"", b"ALPHA-TOKEN"):
        assert not auth.check(wrong)


def test_token_file_reads_one_per_line(tmp_path):
    """Tokens are read one per line; blank lines and surrounding spaces are ignored."""
    path = tmp_path / "tokens"
    path.write_text("\n  first-token  \n\nsecond-token\r\n")
    auth = TokenAuth.from_file(str(path))
    assert auth.check(b"first-token") and auth.check(b"second-token")
    empty = tmp_path / "empty"
    empty.write_text("\n \n")
    with pytest.raises(ValueError, match="holds no token"):
        TokenAuth.from_file(str(empty))


def test_comment_lines_in_a_token_file_are_not_tokens(tmp_path):
    """A line starting with # annotates the file; it is never accepted as a token."""
    path = tmp_path / "tokens"
    path.write_text("# deploy key, rotated monthly\nreal-token\n")
    auth = TokenAuth.from_file(str(path))
    assert auth.check(b"real-token")
    assert not auth.check(b"# deploy key, rotated monthly")
    only_comments = tmp_path / "only-comments"
    only_comments.write_text("# nothing here yet\n")
    with pytest.raises(ValueError, match="holds no token"):
        TokenAuth.from_file(str(only_comments))


def test_line_token_handshake_at_every_split_point():
    """The token line completes whatever the chunking; the bytes after it are handed on."""
    auth = TokenAuth([b"tok-123"])
    wire = b"tok-123\r\nfirst app bytes"
    for split in range(1, len(wire)):
        handshake = auth.server_handshake()
        assert handshake.greeting == b""
        first = handshake.feed(wire[:split])
        result = first if first is not None else handshake.feed(wire[split:])
        accepted, reply, rest = result
        assert accepted and reply == b""
        if first is not None:                       # finished early: rest was not yet fed
            rest += wire[split:]
        assert rest == b"first app bytes", split


def test_failures_look_the_same_to_the_peer():
    """A wrong token, an overlong line and the timeout reply are the same generic line."""
    auth = TokenAuth([b"tok-123"])
    wrong = auth.server_handshake().feed(b"tok-124\n")
    overlong = auth.server_handshake().feed(b"x" * (MAX_AUTH_LINE_BYTES + 1))
    timeout = auth.server_handshake().failure()
    assert wrong == overlong == timeout == (False, FAILURE_MESSAGE + b"\n", b"")


def test_overlong_token_line_fails_at_the_limit_not_before():
    """A line of exactly the maximum may still complete; one byte more fails at once."""
    auth = TokenAuth([b"t" * MAX_AUTH_LINE_BYTES])
    assert auth.server_handshake().feed(b"t" * (MAX_AUTH_LINE_BYTES - 1)) is None
    assert auth.server_handshake().feed(b"t" * MAX_AUTH_LINE_BYTES) is None
    assert auth.server_handshake().feed(b"t" * MAX_AUTH_LINE_BYTES + b"\n")[0] is True
    assert auth.server_handshake().feed(b"t" * (MAX_AUTH_LINE_BYTES + 1))[0] is False


def test_framed_token_handshake_keeps_the_frames_that_followed():
    """With length framing the token is the first frame; what follows stays with the framer."""
    framer = LengthPrefixFramer(4)
    auth = TokenAuth([b"tok-123"])
    handshake = auth.server_handshake(framer.clone())
    wire = framer.encode(b"tok-123") + framer.encode(b"one") + framer.encode(b"two")[:5]
    accepted, reply, rest = handshake.feed(wire)
    assert accepted and reply == b"" and rest == [b"one"]
    assert handshake.framer.feed(b"wo") == [b"two"]
    refused = auth.server_handshake(framer.clone()).feed(framer.encode(b"nope"))
    assert refused == (False, framer.encode(FAILURE_MESSAGE), [])


# -- auth: PSK challenge-response ----------------------------------------------------

def test_psk_right_answer_is_accepted_and_acknowledged():
    """The client's HMAC of the server's nonce passes; the server says ok."""
    handshake = PskAuth([PSK]).server_handshake()
    nonce = parse_challenge(handshake.greeting)
    assert handshake.greeting.startswith(PSK_VERSION + b" ")
    accepted, reply, rest = handshake.feed(psk_answer(PSK, nonce) + b"\nafter")
    assert accepted and reply == PSK_VERSION + b" ok\n" and rest == b"after"


def test_psk_wrong_key_replay_and_garbage_all_fail_alike():
    """A wrong key, a replayed answer (another nonce), garbage and silence fail identically."""
    auth = PskAuth([PSK, b"another-key-of-16+bytes"])
    first = auth.server_handshake()
    recorded = psk_answer(PSK, parse_challenge(first.greeting)) + b"\n"
    assert first.feed(recorded)[0] is True
    replay = auth.server_handshake()
    assert replay.greeting != first.greeting             # a fresh nonce per connection
    results = [replay.feed(recorded),
               auth.server_handshake().feed(
                   psk_answer(b"wrong-key-0123456789", b"\0" * 32) + b"\n"),
               auth.server_handshake().feed(b"not hex at all\n"),
               auth.server_handshake().failure()]
    assert all(result == (False, FAILURE_MESSAGE + b"\n", b"") for result in results)


def test_psk_any_listed_key_works_and_short_keys_are_refused():
    """Every key in the list is accepted; a key under 16 bytes is a configuration error."""
    auth = PskAuth([PSK, b"another-key-of-16+bytes"])
    handshake = auth.server_handshake()
    nonce = parse_challenge(handshake.greeting)
    assert handshake.feed(psk_answer(b"another-key-of-16+bytes", nonce) + b"\n")[0]
    with pytest.raises(ValueError, match="at least 16 bytes"):
        PskAuth([b"short"])


def test_parse_challenge_refuses_what_is_not_one():
    """A client gets AuthenticationError for a line that is not a v1 challenge."""
    for line in (b"hello\n", PSK_VERSION + b" 1234\n", b"reactor-psk-v2 " + b"00" * 32):
        with pytest.raises(AuthenticationError):
            parse_challenge(line)


# -- abuse log and stats line ---------------------------------------------------------

class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_abuse_log_writes_one_line_per_reason_per_interval_then_a_summary():
    """10,000 events of one reason in an interval make two lines: the first, and a summary."""
    handler = ListHandler()
    log = logging.getLogger("test.abuse")
    log.addHandler(handler)
    log.propagate = False
    try:
        abuse = AbuseLog(10.0, log)
        for i in range(10000):
            abuse.record("auth", "10.0.%d.%d" % (i // 250, i % 250), 100.0 + i / 2000.0,
                         "closing %s", i)
        abuse.record("timeout", "10.9.9.9", 101.0, "idle %s", "x")
        assert handler.lines == ["closing 0", "idle x"]
        assert abuse.next_flush() == 110.0
        abuse.flush(109.9)
        assert len(handler.lines) == 2
        abuse.flush(110.0)
        assert handler.lines[2] == "auth: 9999 more like this from 9999 client(s) in the last 10 s"
        assert abuse.next_flush() is None
        abuse.record("auth", None, 111.0, "closing %s", "again")
        assert handler.lines[-1] == "closing again"
    finally:
        log.removeHandler(handler)


def test_format_stats_lists_only_nonzero_rejections():
    """The stats line has the totals and the reasons that happened."""
    line = format_stats({"connections": 3, "peak_connections": 9, "accepted": 40,
                         "bytes_in": 100, "bytes_out": 90, "frames_in": 4, "frames_out": 4,
                         "rejected_auth": 2, "rejected_filter": 0, "rejected_per_ip": 1})
    assert line == ("connections=3 peak=9 accepted=40 bytes_in=100 bytes_out=90 frames_in=4 "
                    "frames_out=4 rejected: per_ip=1 auth=2")



def test_resting_clients_are_swept_past_one_still_refilling():
    """One client with a long refill at the head does not keep thousands of settled records
    behind it (20,301 stayed before): each new client sweeps past it."""
    from reactor import FakeClock, Reactor
    from reactor.protect.admission import Admission
    clock = FakeClock(100.0)
    loop = Reactor(clock=clock)
    try:
        admission = Admission(loop, Limits(ip_rate_messages=Rate(1, burst=2000)), None, {})
        slow = admission.admit(("10.0.0.1", 1))
        slow.messages_bucket.take(2000, clock())         # 2,000 s to refill
        admission.closed(slow)
        for i in range(5000):                             # brief visitors: 1 s to refill
            client = admission.admit(("10.1.%d.%d" % (i // 250, i % 250), 1))
            client.messages_bucket.take(1, clock())
            admission.closed(client)
        clock.advance(5.0)                                # every visitor has refilled
        for i in range(2000):
            admission.closed(admission.admit(("10.2.%d.%d" % (i // 250, i % 250), 1)))
        resting = admission.stats()["clients_resting"]
        assert 1 <= resting < 1000, resting               # swept, though 10.0.0.1 still rests
    finally:
        loop.close()
