"""The RESP client against a real redis-server: round trips, pipelining, AUTH, SELECT, pub/sub,
reconnecting, and what a refused connect, a lost server or a malformed reply does."""

import logging

import pytest

from reactor import ConnectRefusedError, Protocol
from reactor.resp.client import MAX_QUEUED_COMMANDS, RespConnectionError, connect_resp
from reactor.resp.codec import ReplyError, RespProtocolError, Status

from .support.loops import run_passes, run_until
from .support.peers import free_port


@pytest.fixture
def connect(net):
    """Call connect_resp on the test's loop; every client is closed at the end."""
    clients = []

    def connect_to(port, **options):
        client = connect_resp(net, "127.0.0.1", port, **options)
        clients.append(client)
        return client
    yield connect_to
    for client in clients:
        client.close()
    run_passes(net, 5, 0.01)                    # let the transports close


def wait_done(loop, replies, timeout=5.0):
    """Run the loop until every reply is done; return their values (errors must be None)."""
    run_until(loop, lambda: all(reply.done for reply in replies), timeout)
    assert [reply.error for reply in replies] == [None] * len(replies), replies
    return [reply.value for reply in replies]


def test_round_trips_queued_before_connecting(net, redis, connect):
    """SET/GET/INCR/MGET/DEL given before the connect completes are sent once it does, in order."""
    client = connect(redis.start())
    assert not client.connected
    replies = [client.command("SET", "k", "v"), client.command(b"get", b"k"),
               client.command("INCR", "n"), client.command("INCR", "n"),
               client.command("MGET", "k", "n", "missing"), client.command("DEL", "k", "n"),
               client.command("GET", "k")]
    assert client.pending == 7
    assert wait_done(net, replies) == ["OK", b"v", 1, 2, [b"v", b"2", None], 2, None]
    assert isinstance(replies[0].value, Status)
    assert client.connected and client.pending == 0
    seen = []
    client.command("SET", "f", 1.5, callback=lambda value, error: seen.append((value, error)))
    client.command("GET", "f", callback=lambda value, error: seen.append((value, error)))
    run_until(net, lambda: len(seen) == 2)
    assert seen == [("OK", None), (b"1.5", None)]


def test_a_pipeline_of_1000_commands_gets_1000_replies_in_order(net, redis, connect):
    """pipeline() of 1,000 INCRs returns 1,000 Replies whose values count 1 to 1,000."""
    client = connect(redis.start())
    replies = client.pipeline([("INCR", "counter")] * 1000)
    assert len(replies) == 1000
    assert wait_done(net, replies) == list(range(1, 1001))
    assert client.pending == 0


def test_commands_given_while_the_send_buffer_is_full_follow_in_order(net, redis, connect):
    """A pipeline far over the send buffer's high-water mark (8 MB), then more commands while it
    drains: every reply arrives, in order, and the pipeline's callback runs once per command."""
    client = connect(redis.start())
    wait_done(net, [client.command("PING")])
    seen = []
    payload = b"x" * 100000
    sets = client.pipeline([("SET", "k%d" % n, payload) for n in range(80)],
                           callback=lambda value, error: seen.append((value, error)))
    after = [client.command("STRLEN", "k79"), client.command("DEL", "k0")]
    assert wait_done(net, sets + after, timeout=20) == ["OK"] * 80 + [100000, 1]
    assert seen == [("OK", None)] * 80


def test_an_error_reply_is_a_value_and_the_connection_goes_on(net, redis, connect):
    """INCR on a non-integer answers a ReplyError as the value (error None); PING still works."""
    client = connect(redis.start())
    replies = [client.command("SET", "s", "text"), client.command("INCR", "s"),
               client.command("PING")]
    values = wait_done(net, replies)
    assert isinstance(values[1], ReplyError) and str(values[1]).startswith("ERR ")
    assert "not an integer" in str(values[1])
    assert values[2] == "PONG"


def test_auth_with_a_password_and_a_username(net, redis, connect):
    """password= (and username="default") authenticate first; without, the server says NOAUTH."""
    port = redis.start("--requirepass", "s3cret")
    with_password = connect(port, password="s3cret")
    with_user = connect(port, username="default", password="s3cret")
    without = connect(port)
    assert wait_done(net, [with_password.command("SET", "k", "v")]) == ["OK"]
    value, refused = wait_done(net, [with_user.command("GET", "k"), without.command("GET", "k")])
    assert value == b"v"
    assert isinstance(refused, ReplyError) and str(refused).startswith("NOAUTH")


def test_a_wrong_password_goes_to_on_error_and_closes_the_client(net, redis, connect):
    """A refused AUTH goes to on_error as its ReplyError; queued commands fail with it too."""
    port = redis.start("--requirepass", "s3cret")
    errors = []
    client = connect(port, password="wrong", reconnect=True, on_error=errors.append)
    queued = client.command("GET", "k")
    run_until(net, lambda: errors)
    assert len(errors) == 1 and isinstance(errors[0], ReplyError)
    assert str(errors[0]).startswith("WRONGPASS")
    assert queued.done and queued.error is errors[0] and queued.value is None
    later = client.command("PING")
    assert later.done and isinstance(later.error, RespConnectionError)
    run_passes(net, 20, 0.01)
    assert len(errors) == 1 and not client.connected


def test_select_picks_the_database(net, redis, connect):
    """db=3 SELECTs before any command: its keys are not in db 0; a bad index goes to on_error."""
    port = redis.start()
    in_db3, in_db0, again_db3 = connect(port, db=3), connect(port), connect(port, db=3)
    assert wait_done(net, [in_db3.command("SET", "k", "three")]) == ["OK"]
    assert wait_done(net, [in_db0.command("GET", "k"), again_db3.command("GET", "k")]) == [
        None, b"three"]
    errors = []
    bad = connect(port, db=99, on_error=errors.append)
    reply = bad.command("PING")
    run_until(net, lambda: errors and reply.done)
    assert isinstance(errors[0], ReplyError) and "out of range" in str(errors[0])
    assert reply.error is errors[0]


def test_subscribe_delivers_what_another_client_publishes(net, redis, connect):
    """subscribe()'s on_message gets (channel, payload) for a PUBLISH from a second client."""
    port = redis.start()
    subscriber, publisher = connect(port), connect(port)
    messages = []
    subscribed = subscriber.subscribe("news", b"weather",
                                      on_message=lambda *message: messages.append(message))
    assert wait_done(net, [subscribed]) == [[b"subscribe", b"weather", 2]]
    published = [publisher.command("PUBLISH", "news", "hello"),
                 publisher.command("PUBLISH", "weather", b"rain")]
    assert wait_done(net, published) == [1, 1]
    run_until(net, lambda: len(messages) == 2)
    assert messages == [(b"news", b"hello"), (b"weather", b"rain")]


def test_psubscribe_delivers_pattern_channel_and_payload(net, redis, connect):
    """psubscribe()'s on_message gets (pattern, channel, payload) for each matching channel."""
    port = redis.start()
    subscriber, publisher = connect(port), connect(port)
    messages = []
    wait_done(net, [subscriber.psubscribe("news.*", on_message=lambda *m: messages.append(m))])
    assert wait_done(net, [publisher.command("PUBLISH", "news.sport", "goal"),
                           publisher.command("PUBLISH", "weather", "sun")]) == [1, 0]
    run_until(net, lambda: messages)
    assert messages == [(b"news.*", b"news.sport", b"goal")]


def test_unsubscribe_stops_delivery_and_ends_pubsub_mode(net, redis, connect):
    """unsubscribe("a") stops a's messages, not b's; unsubscribe() of all allows GET again."""
    port = redis.start()
    subscriber, publisher = connect(port), connect(port)
    messages = []
    wait_done(net, [subscriber.subscribe("a", "b", on_message=lambda *m: messages.append(m)),
                    subscriber.psubscribe("p*", on_message=lambda *m: messages.append(m))])
    assert wait_done(net, [subscriber.unsubscribe("a")]) == [[b"unsubscribe", b"a", 2]]
    assert wait_done(net, [publisher.command("PUBLISH", "a", "1"),
                           publisher.command("PUBLISH", "b", "2")]) == [0, 1]
    run_until(net, lambda: messages)
    assert messages == [(b"b", b"2")]
    assert wait_done(net, [subscriber.command("PING")]) == [[b"pong", b""]]
    assert wait_done(net, [subscriber.unsubscribe(), subscriber.punsubscribe()]) == [
        [b"unsubscribe", b"b", 1], [b"punsubscribe", b"p*", 0]]
    assert wait_done(net, [subscriber.command("SET", "k", "v"),
                           publisher.command("PUBLISH", "b", "3")]) == ["OK", 0]
    assert wait_done(net, [subscriber.unsubscribe()]) == [[b"unsubscribe", None, 0]]
    assert messages == [(b"b", b"2")]


def test_other_commands_raise_value_error_while_subscribed(net, redis, connect):
    """While subscribed, command()/pipeline() raise ValueError for all but PING and QUIT;
    (P)(UN)SUBSCRIBE through command() always does."""
    client = connect(redis.start())
    with pytest.raises(ValueError):
        client.command("SUBSCRIBE", "x")
    with pytest.raises(ValueError):
        client.command()
    wait_done(net, [client.subscribe("x", on_message=lambda channel, payload: None)])
    with pytest.raises(ValueError, match="subscribed"):
        client.command("GET", "k")
    with pytest.raises(ValueError):
        client.pipeline([("PING",), ("SET", "k", "v")])
    assert client.pending == 0                          # nothing of the pipeline was sent
    assert wait_done(net, [client.command("ping")]) == [[b"pong", b""]]


def test_connection_refused_goes_to_on_error_and_fails_the_queue(net, connect):
    """Nothing listening: on_error gets ConnectRefusedError, queued replies fail with it, later
    commands fail at once."""
    errors, failures = [], []
    client = connect(free_port(), on_error=errors.append)
    queued = client.command("GET", "k", callback=lambda value, error: failures.append(error))
    assert errors == []                                 # never inside connect_resp()
    run_until(net, lambda: errors)
    assert isinstance(errors[0], ConnectRefusedError)
    assert queued.done and queued.error is errors[0] and failures == [errors[0]]
    later = client.command("PING")
    assert later.done and isinstance(later.error, RespConnectionError)
    assert not client.connected and client.pending == 0


def test_reconnect_resubscribes_and_sends_what_waited(net, redis, connect):
    """With reconnect=True, a restarted server is reconnected to: replies owed at the loss fail,
    commands given during the outage complete after it, and subscriptions are restored."""
    port = redis.start()
    options = dict(reconnect=True, reconnect_initial_delay=0.02, reconnect_max_delay=0.1)
    errors, connects, messages = [], [], []
    worker = connect(port, on_error=errors.append, on_connect=connects.append, **options)
    subscriber = connect(port, on_connect=connects.append, **options)
    wait_done(net, [subscriber.subscribe("ch", on_message=lambda *m: messages.append(m)),
                    worker.command("SET", "k", "before")])
    blocked = worker.command("BLPOP", "nothing", 0)     # owed when the server goes
    run_passes(net, 5, 0.01)
    redis.stop()
    run_until(net, lambda: blocked.done and any(isinstance(e, ConnectRefusedError)
                                                for e in errors))
    assert isinstance(blocked.error, RespConnectionError) and isinstance(errors[0],
                                                                         RespConnectionError)
    assert not worker.connected and not subscriber.connected
    during = worker.command("GET", "k")
    assert not during.done
    redis.start(port=port)
    assert wait_done(net, [during]) == [None]           # a fresh server: the key is gone
    run_until(net, lambda: len(connects) == 4)
    assert wait_done(net, [subscriber.command("PING")]) == [[b"pong", b""]]  # after SUBSCRIBE
    assert wait_done(net, [worker.command("PUBLISH", "ch", "back")]) == [1]
    run_until(net, lambda: messages)
    assert messages == [(b"ch", b"back")]


def test_without_reconnect_a_lost_server_fails_pending_replies(net, redis, connect):
    """Without reconnect, the replies owed when the server goes fail with RespConnectionError,
    on_error gets it, and later commands fail at once."""
    errors = []
    client = connect(redis.start(), on_error=errors.append)
    wait_done(net, [client.command("PING")])
    blocked = client.command("BLPOP", "nothing", 0)
    run_passes(net, 5, 0.01)
    redis.stop()
    run_until(net, lambda: blocked.done)
    assert isinstance(blocked.error, RespConnectionError) and errors == [blocked.error]
    later = client.command("PING")
    assert later.done and isinstance(later.error, RespConnectionError)
    run_passes(net, 10, 0.01)
    assert len(errors) == 1


def test_close_fails_what_is_owed_and_is_idempotent(net, redis, connect):
    """close() fails owed replies with RespConnectionError before returning; a second close is a
    no-op; later commands fail at once."""
    errors = []
    client = connect(redis.start(), on_error=errors.append)
    wait_done(net, [client.command("PING")])
    blocked = client.command("BLPOP", "nothing", 0)
    client.close()
    assert blocked.done and isinstance(blocked.error, RespConnectionError)
    client.close()
    assert client.command("PING").error is not None and not client.connected
    run_passes(net, 5, 0.01)
    assert errors == []


def test_the_queue_is_bounded(net, connect):
    """MAX_QUEUED_COMMANDS commands may wait for a connection; the next fails at once."""
    client = connect(free_port(), reconnect=True, on_error=lambda exc: None)
    waiting = client.pipeline([("PING",)] * (MAX_QUEUED_COMMANDS - 1))
    last = client.command("PING")
    assert not last.done and client.pending == MAX_QUEUED_COMMANDS
    over = client.command("PING")
    assert over.done and isinstance(over.error, RespConnectionError)
    assert "limit" in str(over.error)
    client.close()
    assert all(isinstance(reply.error, RespConnectionError) for reply in waiting + [last])


class Garbage(Protocol):
    """A fake server that answers anything with bytes that are not RESP."""

    def data_received(self, data):
        self.transport.write(b"?garbage\r\n")


def test_a_malformed_reply_aborts_that_client_only(net, redis, connect, caplog):
    """A reply that is not RESP aborts that client's connection with the reason logged; its
    owed reply fails with RespProtocolError; another client goes on."""
    fake = net.listen_tcp(Garbage, "127.0.0.1", 0)
    try:
        errors = []
        broken = connect(fake.addresses[0][1], on_error=errors.append)
        healthy = connect(redis.start())
        with caplog.at_level(logging.WARNING, logger="reactor"):
            reply = broken.command("PING")
            run_until(net, lambda: reply.done and len(fake) == 0)
        assert isinstance(reply.error, RespProtocolError) and errors == [reply.error]
        assert any("broke RESP" in record.getMessage() for record in caplog.records
                   if record.name == "reactor")
        assert wait_done(net, [healthy.command("PING")]) == ["PONG"]
    finally:
        fake.close()


def test_max_reply_bytes_bounds_a_bulk_reply(net, redis, connect):
    """A bulk reply of max_reply_bytes is delivered; one byte more aborts the connection."""
    port = redis.start()
    writer = connect(port)
    wait_done(net, [writer.command("SET", "ten", b"x" * 10), writer.command("SET", "eleven",
                                                                             b"x" * 11)])
    small = connect(port, max_reply_bytes=10, on_error=lambda exc: None)
    assert wait_done(net, [small.command("GET", "ten")]) == [b"x" * 10]
    too_big = small.command("GET", "eleven")
    run_until(net, lambda: too_big.done)
    assert isinstance(too_big.error, RespProtocolError)


def test_bad_arguments_raise_at_the_call(net):
    """A bad port, a username without a password, a negative db or bad delays raise ValueError."""
    for port, options in [(70000, {}), (6379, dict(username="u")), (6379, dict(db=-1)),
                          (6379, dict(reconnect_initial_delay=2, reconnect_max_delay=1))]:
        with pytest.raises(ValueError):
            connect_resp(net, "127.0.0.1", port, **options)
