"""Chat rooms shared across processes through a real redis-server (``chat --redis``).

Most tests run two chat services in this test's loop, each with its own
``RedisRelay``, as two processes would: they share nothing but the Redis.
The rest start ``python -m reactor chat`` processes, where a crash (kill -9),
a Redis restart, the log and the exit status are what is tested. Each test
starts its own redis-server on a free port and stops it.
"""

import logging
import os
import re
import signal
import subprocess
import time

import pytest

from reactor.apps.chat import RESTARTING, ChatService
from reactor.apps.chat_redis import LOCAL_ONLY, RedisRelay
from reactor.apps.redis_url import RedisAddress, parse_redis_url
from reactor.tls import client_context

from .support.certs import CA
from .support.loops import run_until
from .support.peers import Peer
from .support.processes import run_cli, start_cli_on_port

GREETING = "welcome to reactor chat; enter a nick"
USAGE_MSG = "error: usage /msg NICK text (to someone connected)"
#: A TTL short enough for a crash test to wait out: entries rewritten every 0.4 s.
SHORT_TTL_SECONDS = 1.2


class Node:
    """One chat process's rooms in the test's loop: a ChatService, its relay, its server."""

    def __init__(self, loop, url, member_ttl_seconds=30.0, ssl_context=None):
        self.loop = loop
        self.service = ChatService()
        self.relay = self.service.relay = RedisRelay(loop, self.service, parse_redis_url(url),
                                                     ssl_context, member_ttl_seconds)
        self.server = loop.listen_tcp(self.service.protocol, "127.0.0.1", 0)
        self.peers = []

    def join(self, nick):
        """Connect, take ``nick``, and return the peer with its greeting and confirmation read."""
        peer = Peer(self.loop, self.server.addresses[0][:2])
        self.peers.append(peer)
        assert peer.line() == GREETING
        peer.send(nick)
        assert peer.line() == "* you are %s, in #lobby; /help lists commands" % nick
        settle(self.loop, [self])
        return peer

    def close(self):
        for peer in self.peers:
            peer.close()
        self.server.close()
        self.relay.close()


@pytest.fixture
def nodes(net):
    """Return a function making Nodes on one loop; all closed after the test."""
    made = []

    def make(url, count=2, **options):
        made.extend(Node(net, url, **options) for _ in range(count))
        run_until(net, lambda: all(node.relay.up and node.relay.clock_offset_ms is not None
                                   for node in made[-count:]))
        return made[-count:]
    yield make
    for node in made:
        node.close()
    for _ in range(5):
        net.run_once(0.01)


def settle(loop, nodes):
    """Run the loop until every relay has its answers: subscriptions confirmed, writes done."""
    run_until(loop, lambda: all(node.relay.commands.pending == 0
                                and node.relay.messages.pending == 0 for node in nodes))


def ask(peer, command):
    """Send ``command``; return the next line (the answer comes after a Redis round trip)."""
    peer.send(command)
    return peer.line()


# -- two chat services, one Redis ---------------------------------------------------------

def test_lines_and_notices_cross_once_and_never_come_back(redis, nodes):
    """A line and the joins and leaves reach the other process's members once; the sender
    and its neighbours get no second copy."""
    a, b = nodes("redis://127.0.0.1:%d" % redis.start())
    alice, carol = a.join("alice"), a.join("carol")
    assert alice.line() == "* carol joined #lobby"
    bob = b.join("bob")
    assert [alice.line(), carol.line()] == ["* bob joined #lobby"] * 2
    alice.send("hello from A")
    assert [carol.line(), bob.line()] == ["alice: hello from A"] * 2
    bob.send("hello from B")
    assert [alice.line(), carol.line()] == ["bob: hello from B"] * 2
    bob.send("/join python")
    assert bob.line() == "* you are in #python"
    assert [alice.line(), carol.line()] == ["* bob left for #python"] * 2
    alice.send("/join python")
    assert alice.line() == "* you are in #python"
    assert (carol.line(), bob.line()) == ("* alice left for #python", "* alice joined #python")
    carol.send("only the lobby hears this")
    bob.send("/quit")
    assert (bob.line(), alice.line()) == ("* bye", "* bob left")
    settle(a.loop, [a, b])
    assert [peer.quiet(30) for peer in (alice, bob, carol)] == [b"", b"", b""]


def test_who_rooms_and_msg_span_the_processes(redis, nodes):
    """/who and /rooms count the members of both processes; /msg reaches a nick in the other,
    and a nick nowhere gets the usage error."""
    a, b = nodes("redis://127.0.0.1:%d" % redis.start())
    alice, bob = a.join("alice"), b.join("bob")
    assert alice.line() == "* bob joined #lobby"
    assert ask(alice, "/who") == "* in #lobby: alice, bob"
    assert ask(bob, "/who") == "* in #lobby: alice, bob"
    bob.send("/join python")
    assert (bob.line(), alice.line()) == ("* you are in #python", "* bob left for #python")
    settle(a.loop, [a, b])
    assert ask(alice, "/who") == "* in #lobby: alice"
    assert ask(alice, "/rooms") == "* rooms: #lobby (1), #python (1)"
    assert ask(bob, "/rooms") == "* rooms: #lobby (1), #python (1)"
    alice.send("/msg BOB are you there?")
    assert bob.line() == "alice (private): are you there?"
    assert ask(alice, "/msg carol hi") == USAGE_MSG
    assert alice.quiet(20) == b"" and bob.quiet(20) == b""


def test_without_redis_local_chat_goes_on_and_says_what_it_cannot_see(redis, nodes, caplog):
    """Redis killed: each process still serves its own room, logs one warning, and /who says
    it lists this server only; Redis back on its port: lines cross again, one info line."""
    port = redis.start()
    a, b = nodes("redis://127.0.0.1:%d" % port)
    alice, carol, bob = a.join("alice"), a.join("carol"), b.join("bob")
    assert [alice.line(), alice.line(), carol.line()] == [
        "* carol joined #lobby", "* bob joined #lobby", "* bob joined #lobby"]
    with caplog.at_level(logging.INFO, logger="reactor"):
        redis.kill()
        run_until(a.loop, lambda: not a.relay.up and not b.relay.up)
        alice.send("still here")
        assert carol.line() == "alice: still here"
        assert [ask(alice, "/who"), alice.line()] == [LOCAL_ONLY, "* in #lobby: alice, carol"]
        assert [ask(bob, "/rooms"), bob.line()] == [LOCAL_ONLY, "* rooms: #lobby (1)"]
        assert ask(bob, "/msg alice hi") == USAGE_MSG
        redis.start(port=port)
        run_until(a.loop, lambda: a.relay.up and b.relay.up, timeout=10)
        settle(a.loop, [a, b])
        alice.send("back again")
        assert bob.line() == "alice: back again"
        assert ask(bob, "/who") == "* in #lobby: alice, bob, carol"
    messages = [record.getMessage() for record in caplog.records]
    assert len([m for m in messages if "is unreachable" in m]) == 2        # one per process
    assert len([m for m in messages if "reachable again" in m]) == 2
    assert [r.levelname for r in caplog.records if "is unreachable" in r.getMessage()] \
        == ["WARNING"] * 2


def test_two_databases_are_two_chats(redis, nodes):
    """Processes on /0 and /1 of one Redis share nothing: no lines, no /who, no /msg."""
    port = redis.start()
    a, b = nodes("redis://127.0.0.1:%d/0" % port, count=1) + \
        nodes("redis://127.0.0.1:%d/1" % port, count=1)
    alice, bob = a.join("alice"), b.join("bob")
    alice.send("anyone on db 1?")
    assert ask(bob, "/who") == "* in #lobby: bob"
    assert ask(bob, "/msg alice hi") == USAGE_MSG
    assert alice.quiet(20) == b"" and bob.quiet(20) == b""


def test_auth_with_a_password_and_a_user(redis, nodes):
    """Against a redis-server with requirepass, the right password (with the default user or
    none) shares the rooms."""
    port = redis.start("--requirepass", "s3cret")
    a, b = nodes("redis://:s3cret@127.0.0.1:%d" % port, count=1) + \
        nodes("redis://default:s3cret@127.0.0.1:%d/0" % port, count=1)
    alice, bob = a.join("alice"), b.join("bob")
    assert alice.line() == "* bob joined #lobby"
    alice.send("hi")
    assert bob.line() == "alice: hi"


def test_tls_with_the_test_ca(redis, nodes):
    """rediss:// with the CA given reaches a redis-server that speaks TLS only."""
    try:
        port = redis.start(tls=True)
    except RuntimeError as exc:
        pytest.skip("this redis-server has no TLS (built without BUILD_TLS): %s" % exc)
    a, b = nodes("rediss://127.0.0.1:%d" % port, ssl_context=client_context(cafile=CA))
    alice, bob = a.join("alice"), b.join("bob")
    assert alice.line() == "* bob joined #lobby"
    bob.send("over tls")
    assert alice.line() == "bob: over tls"


def test_members_elsewhere_are_charged_to_the_sender(redis, nodes):
    """broadcast() costs the sender the room's members in other processes too, as last
    counted by the relay's refresh."""
    a, b = nodes("redis://127.0.0.1:%d" % redis.start(), member_ttl_seconds=0.3)
    alice = a.join("alice")
    others = [b.join("m%d" % index) for index in range(3)]
    run_until(a.loop, lambda: a.relay.remote_members.get("lobby") == 3)
    settle(a.loop, [a, b])
    for peer in [alice] + others:
        peer.quiet(5)
        peer.received.clear()
    assert a.service.broadcast("lobby", "alice: counted") == 1 + 3
    assert [peer.line() for peer in [alice] + others] == ["alice: counted"] * 4


# -- chat processes ------------------------------------------------------------------------

def start_chat(url, *options):
    """Start ``python -m reactor chat`` on a free port with ``--redis url``; return it and a
    function that connects a member."""
    process, address = start_cli_on_port("chat", "--port", "0", "--grace", "0.5",
                                         "--redis", url, *options)

    def join(nick):
        peer = Peer(None, address)
        assert peer.line() == GREETING
        peer.send(nick)
        assert peer.line() == "* you are %s, in #lobby; /help lists commands" % nick
        return peer
    return process, join


def stop(process):
    """SIGTERM ``process`` and return what it logged."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=10)[1]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[1]


@pytest.fixture
def chats():
    """Processes started by the test; each is stopped (SIGTERM, else kill) at the end."""
    processes = []
    yield processes
    for process in processes:
        stop(process)


def poll_until(action, done, timeout):
    """Call ``action()`` every 50 ms until ``done()``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        action()
        if done():
            return
        assert time.monotonic() < deadline, "not within %g s" % timeout
        time.sleep(0.05)


def test_two_processes_share_rooms_and_survive_a_redis_restart(redis, chats):
    """Two chat processes: lines cross once; Redis killed, each goes on alone and logs one
    warning; Redis back on its port, lines cross again within 10 s."""
    port = redis.start()
    url = "redis://127.0.0.1:%d" % port
    (one, join_one), (two, join_two) = start_chat(url), start_chat(url)
    chats.extend([one, two])
    alice, carol, bob = join_one("alice"), join_one("carol"), join_two("bob")
    assert alice.line() == "* carol joined #lobby"
    assert [alice.line(), carol.line()] == ["* bob joined #lobby"] * 2
    bob.send("hi all")
    assert [alice.line(), carol.line()] == ["bob: hi all"] * 2
    assert bob.quiet(30) == b""
    redis.kill()
    alice.send("/who")
    assert [alice.line(), alice.line()] == [LOCAL_ONLY, "* in #lobby: alice, carol"]
    alice.send("redis is down")
    assert carol.line() == "alice: redis is down"
    redis.start(port=port)
    poll_until(lambda: alice.send("anyone?"), lambda: bob.quiet(20).endswith(b"alice: anyone?\n"),
               timeout=10)
    logs = [stop(one), stop(two)]
    for log in logs:
        assert "Traceback" not in log and "stopped:" in log, log
        assert len(re.findall(r"WARNING redis \S+ is unreachable", log)) == 1, log
        assert len(re.findall(r"INFO redis \S+ is reachable again", log)) == 1, log


def test_a_crashed_process_members_leave_who_after_the_ttl(redis, chats):
    """kill -9 of a chat process: its members are gone from the other's /who within the TTL,
    with no notice."""
    url = "redis://127.0.0.1:%d" % redis.start()
    ttl = ["--redis-member-ttl", str(SHORT_TTL_SECONDS)]
    (one, join_one), (two, join_two) = start_chat(url, *ttl), start_chat(url, *ttl)
    chats.extend([one, two])
    alice, bob = join_one("alice"), join_two("bob")
    assert alice.line() == "* bob joined #lobby"
    alice.send("/who")
    assert alice.line() == "* in #lobby: alice, bob"
    two.kill()
    started = time.monotonic()
    answers = []
    poll_until(lambda: (alice.send("/who"), answers.append(alice.line())),
               lambda: answers[-1] == "* in #lobby: alice", timeout=SHORT_TTL_SECONDS + 3)
    assert time.monotonic() - started > SHORT_TTL_SECONDS * 0.5
    assert answers[0] == "* in #lobby: alice, bob"
    assert set(answers) == {"* in #lobby: alice, bob", "* in #lobby: alice"}
    bob.close()


def test_a_refused_password_at_start_exits_1_with_one_line(redis):
    """A wrong password stops a starting chat with exit 1 and one line naming the reason."""
    port = redis.start("--requirepass", "s3cret")
    result = run_cli("chat", "--port", "0", "--redis", "redis://:wrong@127.0.0.1:%d" % port)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("python -m reactor chat: error: --redis redis://127.0.0.1:%d/0: "
                           "refused the login: WRONGPASS" % port), result.stderr
    assert "wrong" not in result.stderr


def test_an_untrusted_certificate_at_start_exits_1_and_names_redis_ca(redis):
    """rediss:// to a server whose CA is not trusted stops a starting chat, hinting --redis-ca."""
    try:
        port = redis.start(tls=True)
    except RuntimeError as exc:
        pytest.skip("this redis-server has no TLS (built without BUILD_TLS): %s" % exc)
    result = run_cli("chat", "--port", "0", "--redis", "rediss://127.0.0.1:%d" % port)
    assert result.returncode == 1
    assert "certificate rejected" in result.stderr and "--redis-ca" in result.stderr


@pytest.mark.parametrize("options,message", [
    (["--redis", "http://x"], "--redis 'http://x': the scheme must be redis or rediss; "
                              "expected redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or "
                              "rediss://... for TLS"),
    (["--redis", "redis://host:notaport"], "--redis 'redis://host:notaport': port could not "
                                           "be cast to integer value as 'notaport'"),
    (["--redis", "redis://127.0.0.1", "--redis-ca", "ca.pem"],
     "--redis-ca is for TLS: write rediss:// in --redis"),
    (["--workers", "2"], "chat --workers needs --redis"),
])
def test_bad_redis_options_stop_with_one_line(options, message):
    """A bad --redis URL (or --redis-ca without TLS, or --workers without Redis) exits 1
    with one line, before listening."""
    result = run_cli("chat", "--port", "0", *options)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


# -- the URL -------------------------------------------------------------------------------

@pytest.mark.parametrize("url,address", [
    ("redis://127.0.0.1", RedisAddress(False, "127.0.0.1", 6379, None, None, 0)),
    ("redis://h:7000/3", RedisAddress(False, "h", 7000, None, None, 3)),
    ("redis://:pw@h", RedisAddress(False, "h", 6379, None, "pw", 0)),
    ("rediss://user:p%40ss@[::1]:6380/", RedisAddress(True, "::1", 6380, "user", "p@ss", 0)),
])
def test_redis_urls(url, address):
    """The URL forms of --redis: user, password (percent-encoded), host, port, /db, TLS."""
    assert parse_redis_url(url) == address


@pytest.mark.parametrize("url,why", [
    ("redis://u@h", "a user needs a password"), ("redis:///0", "no host"),
    ("redis://h/x", "the database after / must be a number"),
    ("redis://h:0", "port 0"), ("redis://h:70000", "port out of range"),
    ("redis://h?db=1", "no ?query"), ("unix:///tmp/redis.sock", "the scheme"),
])
def test_bad_redis_urls_say_what_to_fix(url, why):
    """Each bad URL raises ValueError naming the mistake and the form expected."""
    with pytest.raises(ValueError, match=re.escape(why)) as caught:
        parse_redis_url(url)
    assert "expected redis://" in str(caught.value)


def test_a_bad_url_does_not_show_its_password():
    """The error for a bad URL shows it with the password masked, and str() of an address
    never holds the user or password."""
    with pytest.raises(ValueError) as caught:
        parse_redis_url("redis://admin:hunter2@h:port")
    assert "hunter2" not in str(caught.value) and "redis://admin:***@h:port" in str(caught.value)
    assert str(parse_redis_url("rediss://admin:hunter2@[::1]:1/2")) == "rediss://[::1]:1/2"


def test_the_restart_line_is_the_documented_one():
    """docs/CHAT.md quotes the line a draining server sends, and the /who caveat line."""
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "docs", "CHAT.md"), encoding="utf-8") as doc:
        text = doc.read()
    assert RESTARTING in text and LOCAL_ONLY in text
