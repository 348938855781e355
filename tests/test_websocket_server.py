"""WebSocket over the HTTP server: the upgrade, the echo, violations and their close codes.

The client is a raw socket speaking the codec (``reactor.websocket``) from
the test thread between passes of the server's loop; every byte on the wire
is checked. Keep-alive timing runs on a FakeClock.
"""

import base64
import os
import socket

import pytest

from reactor import Limits
from reactor.http import Router
from reactor.websocket import (Close, FrameParser, Message, Pong, accept_client, accept_key,
                               client_offer, encode_close, encode_frame, encode_message,
                               encode_ping)
from reactor.websocket.protocol import WebSocketProtocol, broadcast

from .support.loops import advance, run_until

PASS_WAIT_SECONDS = 0.002


def raw_frame(first_byte, payload):
    """Return a masked frame with any first byte (FIN, RSV, opcode) and payload, unchecked."""
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    return bytes([first_byte]) + length + b"\0\0\0\0" + payload     # a zero mask keeps it plain


class Echo(WebSocketProtocol):
    """Echo each message; record how the connection ended."""

    ended = None

    def message_received(self, data, is_text):
        self.send(data)

    def connection_lost(self, exc):
        Echo.ended = (exc, self.close_code)


class Client:
    """A raw WebSocket client: handshake, masked frames out, events in."""

    def __init__(self, loop, port, path="/ws", fields=(), deflate=False):
        self.loop = loop
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: test", "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + self.key,
                 "Sec-WebSocket-Version: 13"] + ["%s: %s" % field for field in fields]
        if deflate:
            lines.append("Sec-WebSocket-Extensions: " + client_offer())
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.received = b""
        self.closed = False
        self.head = None
        self.parser = None

    def pump(self, passes=1):
        for _ in range(passes):
            self.loop.run_once(PASS_WAIT_SECONDS)
            while not self.closed:
                try:
                    chunk = self.sock.recv(1 << 20)
                except BlockingIOError:
                    break
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    self.closed = True
                self.received += chunk

    def drain(self):
        """Read what the kernel holds now, without running the loop."""
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except BlockingIOError:
                return
            if not chunk:
                self.closed = True
                return
            self.received += chunk

    def handshake(self):
        """Wait for the server's answer head; return (status, {lower name: value})."""
        run_until(self.loop, lambda: self.pump() or b"\r\n\r\n" in self.received)
        head, self.received = self.received.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        fields = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
        self.head = (int(lines[0].split()[1]), fields)
        if self.head[0] == 101:
            deflate = accept_client(fields.get("sec-websocket-extensions")) \
                if "sec-websocket-extensions" in fields else None
            self.parser = FrameParser(expect_masked=False, deflate=deflate)
        return self.head

    def send(self, data):
        self.sock.sendall(data)

    def events(self, count, timeout=5.0):
        """Wait for ``count`` events from the server; return them."""
        events = []

        def enough():
            self.pump()
            if self.received:
                events.extend(self.parser.feed(self.received))
                self.received = b""
            return len(events) >= count or self.closed
        run_until(self.loop, enough, timeout)
        return events

    def wait_closed(self):
        run_until(self.loop, lambda: self.pump() or self.closed)

    def close(self):
        self.sock.close()


@pytest.fixture
def serve(net):
    servers, clients = [], []

    def start(app=None, loop=net, **options):
        if app is None:
            app = Router()
            app.websocket("/ws")(Echo)
        server = loop.listen_http(app, "127.0.0.1", 0, **options)
        servers.append(server)
        return server.addresses[0][1]

    def connect(port, loop=net, **kwargs):
        client = Client(loop, port, **kwargs)
        clients.append(client)
        return client
    start.connect = connect
    Echo.ended = None
    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.close()


def test_the_upgrade_answers_101_with_the_accept_key_and_echoes(net, serve):
    """101 with Sec-WebSocket-Accept from the key; text and binary come back with their type."""
    client = serve.connect(serve())
    status, fields = client.handshake()
    assert (status, fields["upgrade"], fields["connection"]) == (101, "websocket", "Upgrade")
    assert fields["sec-websocket-accept"] == accept_key(client.key)
    client.send(encode_message("h\u00e9llo", mask=True) + encode_message(b"\x00\xff", mask=True))
    assert client.events(2) == [Message("h\u00e9llo", True), Message(b"\x00\xff", False)]


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 1024 * 1024])
def test_messages_of_every_length_form_come_back_whole(net, serve, size):
    """Sizes 0, 125, 126, 65535, 65536 and 1 MiB (7-, 16- and 64-bit lengths) echo exactly."""
    client = serve.connect(serve())
    client.handshake()
    payload = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    client.send(encode_message(payload, mask=True))
    assert client.events(1, timeout=10) == [Message(payload, False)]


def test_permessage_deflate_is_negotiated_and_used_both_ways(net, serve):
    """A client offering permessage-deflate gets it; compressed messages round-trip."""
    client = serve.connect(serve(), deflate=True)
    status, fields = client.handshake()
    assert fields["sec-websocket-extensions"].startswith("permessage-deflate")
    text = "compress me " * 200
    client.send(encode_message(text, mask=True, deflate=client.parser.deflate))
    raw = []

    def arrived():
        client.pump()
        return client.received
    run_until(net, arrived)
    raw.append(client.received)
    assert raw[0][0] & 0x40                                  # RSV1: the answer is compressed
    assert len(raw[0]) < len(text) // 4
    assert client.events(1) == [Message(text, True)]


@pytest.mark.parametrize("frame, code", [
    (encode_frame(0x1, b"unmasked", mask=False), 1002),
    (encode_frame(0x1, b"\xff\xfe", mask=True), 1007),
    (raw_frame(0x83, b"x"), 1002),
    (raw_frame(0x89, b"p" * 126), 1002),
    (encode_frame(0x1, b"a", mask=True, fin=False) + encode_frame(0x1, b"b", mask=True), 1002),
    (encode_frame(0x1, b"x" * 2000, mask=True), 1009),
], ids=["unmasked", "bad-utf8", "unknown-opcode", "long-ping", "new-message-mid-message",
        "too-big"])
def test_each_violation_is_closed_with_its_code(net, serve, frame, code):
    """A violation gets a Close with the RFC's code, then the TCP close; others go on."""
    app = Router()
    app.websocket("/ws", max_message_bytes=1000)(Echo)
    port = serve(app)
    client = serve.connect(port)
    client.handshake()
    client.send(frame)
    events = client.events(1)
    assert isinstance(events[0], Close) and events[0].code == code
    client.wait_closed()
    other = serve.connect(port)
    other.handshake()
    other.send(encode_message("still here", mask=True))
    assert other.events(1) == [Message("still here", True)]


def test_a_ping_between_fragments_is_answered_and_the_message_still_arrives(net, serve):
    """Fragments with a Ping in between: the Pong comes first, then the whole message."""
    client = serve.connect(serve())
    client.handshake()
    client.send(encode_frame(0x1, b"frag", mask=True, fin=False) + encode_ping(b"hi", mask=True)
                + encode_frame(0x0, b"mented", mask=True))
    assert client.events(2) == [Pong(b"hi"), Message("fragmented", True)]


def test_the_client_closes_and_both_sides_see_a_clean_close(net, serve):
    """Client Close 1000: the server answers Close 1000, closes TCP; the app gets None, 1000."""
    client = serve.connect(serve())
    client.handshake()
    client.send(encode_close(1000, "bye", mask=True))
    assert client.events(1) == [Close(1000, "")]
    client.wait_closed()
    run_until(net, lambda: Echo.ended is not None)
    assert Echo.ended == (None, 1000)


@pytest.mark.parametrize("fields, status", [
    ([], 426),
    ([("Sec-WebSocket-Version", "8")], 426),
])
def test_a_request_that_is_not_a_valid_upgrade_is_refused(net, serve, fields, status):
    """A plain GET on a WebSocket route gets 426; a wrong version 426 with the version we speak."""
    port = serve()
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = ["GET /ws HTTP/1.1", "Host: test"]
    if fields:
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode()]
        lines += ["%s: %s" % field for field in fields]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    sock.setblocking(False)
    received = b""
    while b"\r\n\r\n" not in received:
        net.run_once(PASS_WAIT_SECONDS)
        try:
            received += sock.recv(65536)
        except BlockingIOError:
            pass
    sock.close()
    assert received.startswith(b"HTTP/1.1 %d " % status)
    if fields:
        assert b"Sec-WebSocket-Version: 13\r\n" in received


def test_a_factory_returning_none_refuses_with_403(net, serve):
    """The route's function may look at the request and refuse: 403, and a close."""
    app = Router()
    app.websocket("/ws")(lambda request: None)
    client = serve.connect(serve(app))
    assert client.handshake()[0] == 403


def test_subprotocols_are_chosen_in_the_servers_order(net, serve):
    """The server picks its first supported subprotocol that the client offered."""
    seen = []

    class Chat(Echo):
        def connection_made(self, transport):
            super().connection_made(transport)
            seen.append(self.subprotocol)
    app = Router()
    app.websocket("/ws", subprotocols=["chat.v2", "chat.v1"])(Chat)
    client = serve.connect(serve(app), fields=[("Sec-WebSocket-Protocol", "chat.v1, chat.v2")])
    assert client.handshake()[1]["sec-websocket-protocol"] == "chat.v2"
    run_until(net, lambda: seen)
    assert seen == ["chat.v2"]


def test_a_silent_peer_is_pinged_then_closed_with_1011(fake_net):
    """No traffic for ping_interval: a Ping; no answer within ping_timeout: Close 1011."""
    class Quiet(Echo):
        ping_interval, ping_timeout = 10.0, 5.0
    app = Router()
    app.websocket("/ws")(Quiet)
    server = fake_net.listen_http(app, "127.0.0.1", 0)
    client = Client(fake_net, server.addresses[0][1])
    try:
        client.handshake()
        advance(fake_net, fake_net.clock, 9.9)
        client.pump(5)
        assert client.received == b""
        advance(fake_net, fake_net.clock, 0.2)
        assert client.events(1)[0].__class__.__name__ == "Ping"
        advance(fake_net, fake_net.clock, 5.1)
        events = client.events(1)
        assert isinstance(events[0], Close) and events[0].code == 1011
    finally:
        client.close()
        server.close()


def test_shutdown_says_going_away(net, serve):
    """server.shutdown(): each WebSocket gets Close 1001 before its connection ends."""
    app = Router()
    app.websocket("/ws")(Echo)
    server = net.listen_http(app, "127.0.0.1", 0)
    client = Client(net, server.addresses[0][1])
    try:
        client.handshake()
        run_until(net, lambda: len(server) == 1)
        server.shutdown(2.0)
        events = client.events(1)
        assert isinstance(events[0], Close) and events[0].code == 1001
        client.send(encode_close(1001, "", mask=True))
        client.wait_closed()
    finally:
        client.close()


def test_broadcast_to_500_with_one_stuck_reader_cuts_only_that_one(net):
    """One frame to 500 clients, 200 times: the one that never reads is cut; the rest get all."""
    members = []

    class Member(WebSocketProtocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            members.append(self)
    app = Router()
    app.websocket("/ws")(Member)
    server = net.listen_http(app, "127.0.0.1", 0,
                             limits=Limits(send_buffer_hard_cap_bytes=256 * 1024))
    clients = [Client(net, server.addresses[0][1]) for _ in range(500)]
    stuck, readers = clients[0], clients[1:]
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        for client in clients:
            client.handshake()
        run_until(net, lambda: len(members) == 500)
        stuck_name = stuck.sock.getsockname()
        for member in members:                 # small kernel buffers: the cap is reached soon
            if member.transport.get_extra_info("peername") == stuck_name:
                member.transport.get_extra_info("socket").setsockopt(
                    socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        message, counts = "x" * 4000, []
        while len(counts) < 2000 and (not counts or counts[-1] == 500):
            counts.append(broadcast(members, message))      # until the stuck one is cut
            net.run_once(0)
            for client in readers:
                client.drain()
        counts += [broadcast(members, message) for _ in range(10)]
        run_until(net, lambda: len(server) == 499, timeout=10)
        assert counts[0] == 500 and set(counts[-11:]) == {499} and len(counts) < 2000
        assert 256 * 1024 // 4000 <= counts.count(500) < 2000
        for client in readers:
            events = client.events(len(counts), timeout=10)
            assert len(events) == len(counts) and events[-1] == Message(message, True)
    finally:
        for client in clients:
            client.close()
        server.close()


def test_a_client_that_does_not_read_pauses_the_sender_and_resumes_it(net, serve):
    """Sending to a peer that does not read calls pause_writing; reading calls resume_writing."""
    calls = []

    class Flood(WebSocketProtocol):
        def message_received(self, data, is_text):
            while not calls or calls[-1] != "pause":
                self.send(b"z" * 65536)

        def pause_writing(self):
            calls.append("pause")

        def resume_writing(self):
            calls.append("resume")
    app = Router()
    app.websocket("/ws")(Flood)
    client = serve.connect(serve(app))
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    client.handshake()
    client.send(encode_message("go", mask=True))
    run_until(net, lambda: calls == ["pause"])
    for _ in range(20):
        net.run_once(PASS_WAIT_SECONDS)
    assert calls == ["pause"]
    run_until(net, lambda: client.drain() or calls == ["pause", "resume"], timeout=10)
