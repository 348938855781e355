"""python -m reactor kv: pipelining, expiry on the wheel, memory, pub/sub and bad input.

In-process tests run kv on a loop in the test's thread, talking RESP over
real loopback sockets; the expiry tests move a FakeClock. The byte-exact
replies are ``test_kv_golden.py``'s; the real clients and the append-only
file across a ``kill -9`` are ``test_kv_cli.py``'s.
"""

import socket

import pytest

import reactor
from reactor.apps.kv import KVProtocol, KVServer
from reactor.clock import FakeClock
from reactor.policy import Limits
from reactor.resp.codec import RespReplyParser, ReplyError, Status, encode_command
from tests.support.loops import advance, run_until
from tests.support.peers import Peer


class Client(Peer):
    """A raw RESP client: send commands, pump the loop, parse what came back into replies."""

    def __init__(self, loop, address):
        super().__init__(loop, address)
        self.parser = RespReplyParser()
        self.replies = []

    def parsed(self):
        """Parse what arrived since the last call; return how many replies wait."""
        if self.received:
            self.replies.extend(self.parser.feed(bytes(self.received)))
            del self.received[:]
        return len(self.replies)

    def wait_replies(self, count, timeout=5.0):
        self.wait(lambda: self.parsed() >= count or self.closed, timeout)
        assert len(self.replies) >= count, "got %r, closed=%s" % (self.replies, self.closed)
        taken, self.replies = self.replies[:count], self.replies[count:]
        return taken

    def call(self, *args):
        self.send(encode_command(*args))
        return self.wait_replies(1)[0]


@pytest.fixture
def kv():
    """A kv server on a loop with a fake clock; yields (loop, clock, server, connect)."""
    clock = FakeClock(1000.0)
    loop = reactor.Reactor(clock=clock)
    server = KVServer(loop)
    listeners, clients = [], []

    def connect(limits=None):
        if not listeners:
            listeners.append(loop.listen_tcp(server.protocol, "127.0.0.1", 0, limits=limits))
        client = Client(loop, listeners[0].addresses[0])
        clients.append(client)
        return client
    yield loop, clock, server, connect
    for client in clients:
        client.close()
    for listener in listeners:
        listener.close()
    loop.run_once(0)
    loop.close()


def test_a_pipeline_is_answered_in_order_with_one_write(kv, monkeypatch):
    """Two hundred commands in one send get two hundred replies, in order, from one write per batch."""
    loop, _, _, connect = kv
    batches = []
    original = KVProtocol.before_replies
    monkeypatch.setattr(KVProtocol, "before_replies",
                        lambda self: batches.append(1) or original(self))
    client = connect()
    pipeline = b"".join(encode_command("SET", "k%d" % i, str(i)) + encode_command("GET", "k%d" % i)
                        for i in range(100))
    client.send(pipeline)
    replies = client.wait_replies(200)
    assert replies == [item for i in range(100) for item in (Status("OK"), str(i).encode())]
    assert len(batches) <= 4               # 64 commands a pass at most: a few batches, not 200


def test_inline_commands_work_as_nc_sends_them(kv):
    """A line of words is a command too (what nc and telnet send)."""
    _, _, _, connect = kv
    client = connect()
    client.send(b"SET greeting \"hello world\"\r\nGET greeting\nPING\r\n")
    assert client.wait_replies(3) == [Status("OK"), b"hello world", Status("PONG")]


def test_a_key_expires_exactly_at_its_deadline_on_read_and_by_the_wheel_unread(kv):
    """A read 1 ms early sees the key; at the deadline it is gone, and the wheel drops it unread."""
    loop, clock, server, connect = kv
    client = connect()
    assert client.call("SET", "a", "1", "PX", "100") == Status("OK")
    assert client.call("SET", "b", "2", "PX", "100") == Status("OK")
    advance(loop, clock, 0.099)
    assert client.call("GET", "a") == b"1"
    assert client.call("PTTL", "a") == 1
    advance(loop, clock, 0.001)
    assert client.call("GET", "a") is None
    advance(loop, clock, 0.002)                          # b is never read: the wheel removes it
    assert b"b" not in server.keys.data and not server.keys.expires
    assert server.keys.expired_keys == 2


def test_ttl_rounds_like_redis_and_persist_and_reset_move_the_timer(kv):
    """TTL rounds the ms left to the nearest second; PERSIST and a new EXPIRE keep one timer per key."""
    loop, clock, server, connect = kv
    client = connect()
    client.call("SET", "k", "v", "EX", "10")
    advance(loop, clock, 2.4)
    assert (client.call("TTL", "k"), client.call("PTTL", "k")) == (8, 7600)
    assert client.call("EXPIRE", "k", "100") == 1
    advance(loop, clock, 50)
    assert client.call("TTL", "k") == 50 and len(server.keys.expires) == 1
    assert client.call("PERSIST", "k") == 1
    advance(loop, clock, 100)
    assert client.call("GET", "k") == b"v" and client.call("TTL", "k") == -1


def test_incr_keeps_the_time_to_live_and_set_drops_it(kv):
    """INCR changes the value but not the deadline; a plain SET removes the deadline."""
    loop, clock, _, connect = kv
    client = connect()
    client.call("SET", "n", "1", "EX", "100")
    assert client.call("INCR", "n") == 2 and client.call("TTL", "n") == 100
    client.call("SET", "n", "5")
    assert client.call("TTL", "n") == -1


def test_over_maxmemory_growing_writes_get_oom_while_reads_and_deletes_work(kv):
    """Past --maxmemory, SET is refused with Redis's OOM text; GET and DEL still work, and DEL frees."""
    _, _, server, connect = kv
    server.maxmemory = 1000
    client = connect()
    assert client.call("SET", "big", "x" * 2000) == Status("OK")
    refused = client.call("SET", "more", "y")
    assert refused == ReplyError("OOM command not allowed when used memory > 'maxmemory'.")
    assert client.call("GET", "big") == b"x" * 2000
    assert client.call("DEL", "big") == 1
    assert client.call("SET", "more", "y") == Status("OK")


def test_publish_reaches_channel_and_pattern_subscribers_until_they_leave(kv):
    """PUBLISH counts and delivers to SUBSCRIBE and PSUBSCRIBE; a closed subscriber is forgotten."""
    loop, _, server, connect = kv
    subscriber, watcher, publisher = connect(), connect(), connect()
    subscriber.send(encode_command("SUBSCRIBE", "news"))
    assert subscriber.wait_replies(1) == [[b"subscribe", b"news", 1]]
    watcher.send(encode_command("PSUBSCRIBE", "n*"))
    assert watcher.wait_replies(1) == [[b"psubscribe", b"n*", 1]]
    assert publisher.call("PUBLISH", "news", "hello") == 2
    assert subscriber.wait_replies(1) == [[b"message", b"news", b"hello"]]
    assert watcher.wait_replies(1) == [[b"pmessage", b"n*", b"news", b"hello"]]
    subscriber.close()
    run_until(loop, lambda: not server.channels)
    assert publisher.call("PUBLISH", "news", "again") == 1


def test_a_subscriber_that_stops_reading_is_cut_by_the_send_buffer_cap(kv):
    """A silent subscriber is closed at the hard cap; the server's buffer for it never grows past it."""
    loop, _, server, connect = kv
    cap = 256 * 1024
    subscriber = connect(limits=Limits(send_buffer_hard_cap_bytes=cap,
                                       send_buffer_soft_cap_bytes=None))
    subscriber.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    subscriber.send(encode_command("SUBSCRIBE", "firehose"))
    assert subscriber.wait_replies(1)[0][0] == b"subscribe"
    publisher = connect()
    for _ in range(64):                                  # 64 MiB offered; the subscriber reads none
        publisher.call("PUBLISH", "firehose", "z" * (1024 * 1024))
        if not server.channels:
            break
    assert not server.channels, "the silent subscriber was never cut"
    assert publisher.call("PING") == Status("PONG")


def test_malformed_input_is_answered_then_closes_only_that_connection(kv):
    """Commands before the bad bytes are answered, then Redis's protocol error, then the close."""
    _, _, _, connect = kv
    bad, good = connect(), connect()
    bad.send(encode_command("PING") + b"*1\r\n$x\r\n")
    assert bad.wait_replies(2) == [Status("PONG"),
                                   ReplyError("ERR Protocol error: invalid bulk length")]
    bad.wait_closed()
    assert good.call("SET", "still", "here") == Status("OK")


def test_an_oversized_bulk_is_refused_on_its_header(kv):
    """A bulk claiming more than 512 MiB is refused before a byte of it arrives."""
    _, _, _, connect = kv
    client = connect()
    client.send(b"*2\r\n$3\r\nGET\r\n$%d\r\n" % (512 * 1024 * 1024 + 1))
    assert client.wait_replies(1) == [ReplyError("ERR Protocol error: invalid bulk length")]


def test_unknown_commands_and_wrong_arity_keep_the_connection_usable(kv):
    """An error reply costs that one command; the next one works."""
    _, _, _, connect = kv
    client = connect()
    assert isinstance(client.call("NOSUCH", "x"), ReplyError)
    assert isinstance(client.call("GET"), ReplyError)
    assert client.call("ECHO", "ok") == b"ok"


def test_info_reports_clients_keyspace_and_counters(kv):
    """INFO has Redis's section layout with the server's own figures."""
    _, _, _, connect = kv
    client = connect()
    client.call("SET", "a", "1", "EX", "100")
    text = client.call("INFO").decode()
    assert text.startswith("# Server\r\nredis_version:")
    assert "connected_clients:1\r\n" in text
    assert "db0:keys=1,expires=1,avg_ttl=0\r\n" in text
    assert client.call("INFO", "keyspace").decode() == "# Keyspace\r\ndb0:keys=1,expires=1,avg_ttl=0\r\n"


def test_the_resp_client_drives_kv_pipelined_and_subscribed():
    """connect_resp works against kv as against redis-server: a pipeline, AUTH, then pub/sub."""
    from reactor.protect.auth import TokenAuth
    from reactor.resp.client import connect_resp
    loop = reactor.Reactor()
    server = KVServer(loop, auth=TokenAuth([b"pw"]))
    listener = loop.listen_tcp(server.protocol, "127.0.0.1", 0)
    host, port = listener.addresses[0][:2]
    worker = connect_resp(loop, host, port, password="pw")
    subscriber = connect_resp(loop, host, port, password="pw")
    try:
        replies = [worker.command("SET", "n", i) for i in range(100)] + [worker.command("INCR", "n")]
        run_until(loop, lambda: replies[-1].done)
        assert [r.value for r in replies[:-1]] == [Status("OK")] * 100 and replies[-1].value == 100
        heard = []
        subscribed = subscriber.subscribe("room", on_message=lambda ch, data: heard.append((ch, data)))
        run_until(loop, lambda: subscribed.done)
        published = worker.command("PUBLISH", "room", "hi")
        run_until(loop, lambda: published.done and heard)
        assert published.value == 1 and heard == [(b"room", b"hi")]
    finally:
        worker.close()
        subscriber.close()
        listener.close()
        loop.run_once(0)
        loop.close()


def test_a_channel_named_like_a_pattern_leaves_the_pattern_alone(kv):
    """A channel 'n*' emptied by a closing subscriber does not take the pattern 'n*' with it."""
    loop, _, server, connect = kv
    literal, pattern, publisher = connect(), connect(), connect()
    literal.send(encode_command("SUBSCRIBE", "n*"))
    pattern.send(encode_command("PSUBSCRIBE", "n*"))
    literal.wait_replies(1)
    pattern.wait_replies(1)
    literal.close()
    run_until(loop, lambda: not server.channels)
    assert publisher.call("PUBLISH", "news", "still") == 1
    assert pattern.wait_replies(1) == [[b"pmessage", b"n*", b"news", b"still"]]


def test_commands_given_before_the_connection_keep_their_order_around_a_subscribe():
    """An INCR queued before a SUBSCRIBE on a connecting client runs first, and SUBSCRIBE goes once."""
    from reactor.resp.client import connect_resp
    loop = reactor.Reactor()
    server = KVServer(loop)
    listener = loop.listen_tcp(server.protocol, "127.0.0.1", 0)
    client = connect_resp(loop, *listener.addresses[0][:2])
    try:
        counted = client.command("INCR", "visits")
        subscribed = client.subscribe("news", on_message=lambda channel, payload: None)
        run_until(loop, lambda: counted.done and subscribed.done)
        assert counted.value == 1
        assert subscribed.value == [b"subscribe", b"news", 1]
        assert server.stats["total_commands_processed"] == 2
    finally:
        client.close()
        listener.close()
        loop.run_once(0)
        loop.close()


def test_a_command_left_half_sent_is_closed_after_the_partial_frame_deadline(kv):
    """After a whole PING, a command cut off mid-bulk is dropped 30 s later (Limits default)."""
    loop, clock, _, connect = kv
    client = connect()
    client.send(encode_command("PING") + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhel")
    assert client.wait_replies(1) == [Status("PONG")]
    advance(loop, clock, 29.0)
    client.pump(5)
    assert not client.closed
    advance(loop, clock, 1.5)
    client.wait_closed()


def test_an_http_request_is_taken_for_a_cross_protocol_attack_and_closed_unanswered(kv, caplog):
    """POST or Host: (a browser tricked into talking to kv) closes the connection, no reply."""
    _, _, server, connect = kv
    browser, other = connect(), connect()
    browser.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1:6380\r\n\r\nFLUSHDB\r\n")
    browser.wait_closed()
    assert browser.received == b"" and browser.replies == []
    assert "cross-protocol" in caplog.text
    assert other.call("PING") == Status("PONG")
