"""connect_websocket against the project's own server: echo, deflate, TLS, refusals, closes.

Both ends run on one loop over real sockets on 127.0.0.1; each side's
protocol records its events as tuples, compared whole.
"""

import logging
import socket
import ssl

import pytest

from reactor.errors import ConnectRefusedError
from reactor.http import Router
from reactor.http.client import HTTPTimeoutError
from reactor.http.messages import Response
from reactor.protocols import Protocol
from reactor.websocket import accept_key
from reactor.websocket.client import WebSocketHandshakeError, connect_websocket
from reactor.websocket.protocol import WebSocketProtocol

from .support.certs import SERVER_HOSTNAME, client_ctx, server_ctx
from .support.loops import advance, run_passes, run_until


class Recorder(WebSocketProtocol):
    """Record every callback as a tuple; the instances made are kept in ``made``."""

    made = []

    def __init__(self):
        self.events = []
        Recorder.made.append(self)

    def connection_made(self, transport):
        super().connection_made(transport)
        self.events.append(("made", self.subprotocol, self.deflate is not None))

    def message_received(self, data, is_text):
        self.events.append(("message", data, is_text))

    def pong_received(self, payload):
        self.events.append(("pong", payload))

    def connection_lost(self, exc):
        self.events.append(("lost", exc, self.close_code))


class Echo(Recorder):
    """The server's side: echo each message; ``bye`` starts the close, ``ping`` pings."""

    def message_received(self, data, is_text):
        super().message_received(data, is_text)
        if data == "bye":
            self.close(1000, "server says bye")
        elif data == "ping":
            self.ping(b"from the server")
        else:
            self.send(data)


class Greeter(Echo):
    """Send a message at once, so it travels in the same segment as the 101."""

    def connection_made(self, transport):
        super().connection_made(transport)
        self.send("hello from the server")


def make_app():
    """Routes: echo (with and without compression), a subprotocol, a refusal, plain HTTP."""
    app = Router()
    app.websocket("/ws")(Echo)
    app.websocket("/plain", compression=False)(Echo)
    app.websocket("/chat", subprotocols=["chat.v2", "chat.v1"])(Echo)
    app.websocket("/greet")(Greeter)
    app.websocket("/refuse")(lambda request: None)
    app.route("/page")(lambda request: Response(200, body="just a page\n"))
    return app


@pytest.fixture
def ws(net):
    """Serve ``make_app()``; ``ws.port``, ``ws.open(url, ...)``, ``ws.fail(url, ...)``."""
    servers = []

    class Harness:
        @staticmethod
        def serve(app=None, **options):
            servers.append(net.listen_http(app or make_app(), "127.0.0.1", 0, **options))
            return servers[-1].addresses[0][1]

        @staticmethod
        def connect(url, factory=Recorder, **options):
            """Start connect_websocket; return (connector, errors), checking nothing ran yet."""
            errors = []
            connector = connect_websocket(net, url, factory, on_error=errors.append, **options)
            assert (errors, connector.protocol) == ([], None)      # never inside the call
            return connector, errors

        @staticmethod
        def open(url, **options):
            """Connect and wait for connection_made; return the client protocol."""
            connector, errors = Harness.connect(url, **options)
            run_until(net, lambda: connector.done, timeout=10)
            assert errors == [] and connector.protocol is not None, errors
            return connector.protocol

        @staticmethod
        def fail(url, **options):
            """Connect, expecting failure; return the one error on_error got."""
            connector, errors = Harness.connect(url, **options)
            run_until(net, lambda: errors, timeout=10)
            run_passes(net, 3)
            assert len(errors) == 1 and connector.protocol is None, errors
            return errors[0]

        @staticmethod
        def server_side():
            return [p for p in Recorder.made if isinstance(p, Echo)]

        @staticmethod
        def client_side():
            return [p for p in Recorder.made if not isinstance(p, Echo)]
    Recorder.made = []
    yield Harness
    for protocol in Recorder.made:
        if protocol.events and not protocol.transport.is_closing():
            protocol.transport.abort()
    for server in servers:
        server.close()
    run_passes(net, 3)


def received(protocol, count):
    """Return the ``count`` messages after connection_made (waiting for them to be there)."""
    return protocol.events[1:1 + count]


# -- messages ---------------------------------------------------------------------------

@pytest.mark.parametrize("compression", [True, False], ids=["deflate", "plain"])
@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 1024 * 1024])
def test_text_and_binary_of_every_length_form_echo_exactly(net, ws, size, compression):
    """Sizes 0 to 1 MiB (7-, 16-, 64-bit lengths) come back whole, typed, with or without deflate."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve(), compression=compression)
    binary = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    text = "t" * size
    client.send_text(text)
    client.send_binary(binary)
    run_until(net, lambda: len(client.events) >= 3, timeout=20)
    assert client.events == [("made", None, compression), ("message", text, True),
                             ("message", binary, False)]


def test_permessage_deflate_is_agreed_on_both_sides_and_shrinks_the_wire(net, ws):
    """With compression, both ends hold a PerMessageDeflate; a repetitive message echoes."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve())
    run_until(net, lambda: ws.server_side())
    server = ws.server_side()[0]
    assert (client.deflate.is_server, server.deflate.is_server) == (False, True)
    client.send("compress me " * 1000)
    run_until(net, lambda: len(client.events) == 2)
    assert client.events[1] == ("message", "compress me " * 1000, True)


def test_a_route_without_compression_runs_uncompressed(net, ws):
    """The server declines permessage-deflate: the client's deflate is None, messages still flow."""
    client = ws.open("ws://127.0.0.1:%d/plain" % ws.serve())
    client.send("hi")
    run_until(net, lambda: len(client.events) == 2)
    assert client.events == [("made", None, False), ("message", "hi", True)]


def test_the_server_picks_a_subprotocol_we_offered(net, ws):
    """Offered chat.v1, chat.v2: the server's preference (chat.v2) is protocol.subprotocol."""
    client = ws.open("ws://127.0.0.1:%d/chat" % ws.serve(), subprotocols=["chat.v1", "chat.v2"])
    run_until(net, lambda: ws.server_side())
    assert (client.subprotocol, ws.server_side()[0].subprotocol) == ("chat.v2", "chat.v2")


def test_a_message_that_came_with_the_101_is_delivered(net, ws):
    """Frames in the same read as the 101 (``rest``) reach the protocol after connection_made."""
    client = ws.open("ws://127.0.0.1:%d/greet" % ws.serve())
    run_until(net, lambda: len(client.events) == 2)
    assert client.events == [("made", None, True), ("message", "hello from the server", True)]


def test_request_headers_reach_the_server(net, ws):
    """headers= (an Origin, a query in the url) arrive with the upgrade request."""
    client = ws.open("ws://127.0.0.1:%d/ws?room=7" % ws.serve(),
                     headers={"Origin": "http://example.test"})
    run_until(net, lambda: ws.server_side())
    request = ws.server_side()[0].request
    assert (request.headers.get("origin"), request.query) == ("http://example.test", "room=7")
    assert client.events[0][0] == "made"


def test_over_tls(net, ws):
    """wss:// with the test CA: the handshake, an echo, and the certificate name checked."""
    port = ws.serve(ssl=server_ctx())
    client = ws.open("wss://%s:%d/ws" % (SERVER_HOSTNAME, port), ssl=client_ctx())
    client.send("over tls")
    run_until(net, lambda: len(client.events) == 2)
    assert client.events == [("made", None, True), ("message", "over tls", True)]
    assert client.transport.get_extra_info("ssl_object") is not None


def test_a_certificate_we_do_not_trust_goes_to_on_error(net, ws):
    """wss:// to a server whose CA the default context does not trust: an ssl.SSLError."""
    port = ws.serve(ssl=server_ctx())
    error = ws.fail("wss://%s:%d/ws" % (SERVER_HOSTNAME, port))
    assert isinstance(error, ssl.SSLError)


# -- ping and close -------------------------------------------------------------------------

def test_a_client_ping_is_answered_with_a_pong(net, ws):
    """protocol.ping(payload): the server's Pong carries it back to pong_received."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve())
    client.ping(b"are you there")
    run_until(net, lambda: len(client.events) == 2)
    assert client.events[1] == ("pong", b"are you there")


def test_a_server_ping_is_answered_by_the_client(net, ws):
    """The server pings: the client answers on its own (masked), the server gets the Pong."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve())
    client.send("ping")
    run_until(net, lambda: ws.server_side() and len(ws.server_side()[0].events) == 3)
    assert ws.server_side()[0].events[1:] == [("message", "ping", True),
                                              ("pong", b"from the server")]


def test_the_client_closes_and_both_sides_see_1000(net, ws):
    """client.close(): Close 1000 each way, the server closes TCP; both get connection_lost(None)."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve())
    run_until(net, lambda: ws.server_side())
    server = ws.server_side()[0]
    client.close()
    run_until(net, lambda: client.events[-1][0] == "lost" and server.events[-1][0] == "lost")
    assert (client.events[-1], server.events[-1]) == (("lost", None, 1000), ("lost", None, 1000))
    assert client.closed_cleanly and server.closed_cleanly


def test_the_server_closes_and_both_sides_see_1000(net, ws):
    """The server's close(1000, reason): the client answers, then sees the TCP close cleanly."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve())
    client.send("bye")
    run_until(net, lambda: client.events[-1][0] == "lost")
    server = ws.server_side()[0]
    run_until(net, lambda: server.events[-1][0] == "lost")
    assert (client.events[-1], server.events[-1]) == (("lost", None, 1000), ("lost", None, 1000))
    assert client.close_reason == "server says bye"


def test_max_message_bytes_overrides_the_class_limit(net, ws):
    """max_message_bytes=100: a 101-byte echo is refused with 1009 and the connection ends."""
    client = ws.open("ws://127.0.0.1:%d/ws" % ws.serve(), max_message_bytes=100)
    client.send(b"x" * 100)
    run_until(net, lambda: len(client.events) == 2)
    client.send(b"y" * 101)
    run_until(net, lambda: client.events[-1][0] == "lost")
    assert client.events[1] == ("message", b"x" * 100, False)
    assert (len(client.events), client.events[-1][2]) == (3, 1009)


# -- failures ---------------------------------------------------------------------------------

def test_a_refused_upgrade_reports_403_with_its_body(net, ws):
    """The route's factory returns None: 403; on_error gets the status, body and url."""
    url = "ws://127.0.0.1:%d/refuse" % ws.serve()
    error = ws.fail(url)
    assert isinstance(error, WebSocketHandshakeError)
    assert (error.status, error.body, error.url) == (403, b"403 Forbidden\n", url)
    assert url in str(error) and "403" in str(error)


@pytest.mark.parametrize("path, status", [("/page", 200), ("/nowhere", 404)])
def test_a_plain_http_answer_is_a_handshake_error(net, ws, path, status):
    """A route that is not a WebSocket answers with its own status: on_error gets it."""
    error = ws.fail("ws://127.0.0.1:%d%s" % (ws.serve(), path))
    assert isinstance(error, WebSocketHandshakeError) and error.status == status


class CannedUpgrade(Protocol):
    """Answer the first request head with a 101 built by ``answer(key)``; then stay silent."""

    def __init__(self, answer):
        self.answer, self.head = answer, b""

    def data_received(self, data):
        self.head += data
        if b"\r\n\r\n" in self.head:
            key = [line.split(b":", 1)[1].strip().decode() for line in self.head.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key:")][0]
            self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\n" + self.answer(key) + b"\r\n")


@pytest.mark.parametrize("answer, complaint", [
    (lambda key: b"Sec-WebSocket-Accept: d3Jvbmc=\r\n", "Accept"),
    (lambda key: b"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Protocol: evil\r\n"
     % accept_key(key).encode(), "subprotocol"),
    (lambda key: b"Sec-WebSocket-Accept: %s\r\nSec-WebSocket-Extensions: x-unknown\r\n"
     % accept_key(key).encode(), "extensions"),
], ids=["wrong-accept", "unoffered-subprotocol", "unoffered-extension"])
def test_a_101_with_wrong_fields_fails_the_connection(net, ws, answer, complaint):
    """A 101 whose Accept, subprotocol or extension is wrong: on_error, status 101, no protocol."""
    server = net.listen_tcp(lambda: CannedUpgrade(answer), "127.0.0.1", 0)
    try:
        error = ws.fail("ws://127.0.0.1:%d/ws" % server.addresses[0][1])
    finally:
        server.close()
    assert isinstance(error, WebSocketHandshakeError) and error.status == 101
    assert complaint in str(error) and Recorder.made == []


def test_a_refused_connection_goes_to_on_error(net, ws):
    """Nothing listens on the port: on_error gets ConnectRefusedError naming the address."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    error = ws.fail("ws://127.0.0.1:%d/ws" % port)
    assert isinstance(error, ConnectRefusedError) and "127.0.0.1:%d" % port in str(error)


def test_a_server_that_never_answers_times_out(fake_net, ws):
    """No answer within timeout: on_error gets HTTPTimeoutError, measured on the loop's clock."""
    server = fake_net.listen_tcp(Protocol, "127.0.0.1", 0)
    errors = []
    try:
        connector = connect_websocket(fake_net, "ws://127.0.0.1:%d/ws" % server.addresses[0][1],
                                      Recorder, timeout=5.0, on_error=errors.append)
        run_until(fake_net, lambda: len(server) == 1)
        advance(fake_net, fake_net.clock, 4.9)
        assert errors == []
        advance(fake_net, fake_net.clock, 0.2)
        assert len(errors) == 1 and isinstance(errors[0], HTTPTimeoutError)
        assert connector.done and connector.protocol is None
    finally:
        server.close()


def test_cancel_abandons_the_handshake_without_callbacks(net, ws):
    """cancel() before the 101: no protocol is made and on_error never runs."""
    connector, errors = ws.connect("ws://127.0.0.1:%d/ws" % ws.serve())
    connector.cancel()
    connector.cancel()
    run_passes(net, 20, 0.005)
    assert (errors, Recorder.made, connector.done) == ([], [], True)


def test_a_factory_that_raises_goes_to_on_error(net, ws):
    """The app's factory raising after the 101: on_error gets its exception; the socket closes."""
    def broken():
        raise RuntimeError("no protocol today")
    error = ws.fail("ws://127.0.0.1:%d/ws" % ws.serve(), factory=broken)
    assert isinstance(error, RuntimeError)


def test_without_on_error_the_failure_is_logged(net, ws, caplog):
    """on_error=None: a refused upgrade is logged once with the url and the status."""
    url = "ws://127.0.0.1:%d/refuse" % ws.serve()
    connector = connect_websocket(net, url, Recorder)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        run_until(net, lambda: connector.done)
    messages = [record.getMessage() for record in caplog.records if "connect_websocket" in
                record.getMessage()]
    assert len(messages) == 1 and url in messages[0] and "403" in messages[0]


@pytest.mark.parametrize("url", ["http://127.0.0.1/ws", "ftp://h/", "ws:///nohost",
                                 "ws://127.0.0.1/ws#fragment", 42])
def test_a_bad_url_raises_value_error_at_once(net, url):
    """Not ws:// or wss://, no host, or a fragment: ValueError, nothing is sent."""
    with pytest.raises(ValueError):
        connect_websocket(net, url, Recorder)


def test_headers_the_handshake_owns_are_refused(net):
    """headers= may not set Upgrade, Connection or Sec-WebSocket-*: ValueError."""
    with pytest.raises(ValueError, match="sec-websocket-protocol"):
        connect_websocket(net, "ws://127.0.0.1/ws", Recorder,
                          headers={"Sec-WebSocket-Protocol": "x"})
