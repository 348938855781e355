"""FramedProtocol on real sockets, framed echo, and the chat server."""

import logging
import socket
import struct

import pytest

from reactor import FramedProtocol
from reactor.apps.chat import ChatService, chat_limits
from reactor.apps.echo import FRAMINGS, FramedEchoProtocol, framed_factory
from reactor.framing import LineFramer

from .support.loops import run_until
from .support.peers import Peer


# -- FramedProtocol -----------------------------------------------------------

class Upper(FramedProtocol):
    framer = LineFramer(max_length=16)

    def frame_received(self, line):
        if line == b"many":
            self.send_frames([b"one", b"two", b"three"])
        else:
            self.send_frame(line.upper())

    def framing_error(self, exc):
        self.send_frame(b"error: " + str(exc).encode()[:16 - 7])


def test_framed_protocol_gets_whole_frames_from_any_chunking(loop):
    """Lines split across writes arrive whole; send_frames writes several at once."""
    server = loop.listen_tcp(Upper, "127.0.0.1", 0)
    client = Peer(loop, server.addresses[0][:2])
    try:
        for piece in (b"hel", b"lo\nwor", b"ld\r", b"\nmany\n"):
            client.send(piece)
            client.quiet(3)
        assert [client.line() for _ in range(5)] == ["HELLO", "WORLD", "one", "two", "three"]
    finally:
        client.close()
    server.close()


def test_framing_error_closes_only_that_connection(loop, caplog):
    """An oversized line logs the reason, lets framing_error answer, closes that client only."""
    server = loop.listen_tcp(Upper, "127.0.0.1", 0)
    good = Peer(loop, server.addresses[0][:2])
    bad = Peer(loop, server.addresses[0][:2])
    try:
        with caplog.at_level(logging.WARNING, logger="reactor"):
            bad.send(b"x" * 100 + b"\n")
            assert bad.line().startswith("error:")
            bad.wait_closed()
        assert any("exceeds the limit of 16" in r.getMessage() for r in caplog.records)
        good.send("still fine")
        assert good.line() == "STILL FINE"
    finally:
        good.close()
        bad.close()
    server.close()


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_framed_echo_returns_whole_frames(loop, framing):
    """The framed echo decodes and re-encodes every frame, whatever the chunking."""
    prototype = FRAMINGS[framing](1024)
    server = loop.listen_tcp(framed_factory(FramedEchoProtocol, prototype), "127.0.0.1", 0)
    frames = [b"alpha", b"", b"gamma " * 20]
    wire = prototype.encode_many(frames)
    with Peer(loop, server.addresses[0][:2]) as peer:
        for i in range(0, len(wire), 7):
            peer.send(wire[i:i + 7])
            peer.pump()
        peer.wait(lambda: len(peer.received) >= len(wire))
        assert peer.received == wire
    server.close()


def test_framed_echo_oversized_length_header_closes_connection(loop, caplog):
    """A length header above --max-frame closes that connection with a logged reason."""
    server = loop.listen_tcp(framed_factory(FramedEchoProtocol, FRAMINGS["length"](100)),
                             "127.0.0.1", 0)
    client = Peer(loop, server.addresses[0][:2])
    try:
        with caplog.at_level(logging.WARNING, logger="reactor"):
            client.send(struct.pack(">I", 1 << 31))
            client.wait_closed()
        assert any("2147483648 bytes exceeds the limit of 100" in r.getMessage()
                   for r in caplog.records)
    finally:
        client.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


# -- chat -------------------------------------------------------------------------

def join(loop, server, nick):
    client = Peer(loop, server.addresses[0][:2])
    assert client.line() == "welcome to reactor chat; enter a nick"
    client.send(nick)
    assert client.line() == "* you are %s, in #lobby; /help lists commands" % nick
    return client


def test_chat_rooms_messages_and_commands(loop):
    """Nicks, room broadcast as NICK: text, /join, /who, /rooms, /msg and /quit work."""
    service = ChatService()
    server = loop.listen_tcp(service.protocol, "127.0.0.1", 0)
    alice = join(loop, server, "alice")
    bob = join(loop, server, "bob")
    try:
        assert alice.line() == "* bob joined #lobby"
        alice.send("hello bob")
        assert bob.line() == "alice: hello bob"
        assert alice.quiet() == b""                       # no echo to the sender
        bob.send("/who")
        assert bob.line() == "* in #lobby: alice, bob"
        bob.send("/join python")
        assert bob.line() == "* you are in #python"
        assert alice.line() == "* bob left for #python"
        bob.send("/rooms")
        assert bob.line() == "* rooms: #lobby (1), #python (1)"
        alice.send("only the lobby hears this")
        assert bob.quiet() == b""
        alice.send("/msg bob psst")
        assert bob.line() == "alice (private): psst"
        alice.send("/msg nobody hi")
        assert alice.line().startswith("error: usage /msg")
        alice.send("/dance")
        assert alice.line().startswith("error: unknown command /dance")
        bob.send("/quit")
        assert bob.line() == "* bye"
        bob.wait_closed()
        alice.send("/rooms")
        assert alice.line() == "* rooms: #lobby (1)"
    finally:
        alice.close()
        bob.close()
    server.close()


def test_chat_taken_and_invalid_nicks_get_another_try(loop):
    """A taken or invalid nick gets an error line and the client may try again."""
    service = ChatService()
    server = loop.listen_tcp(service.protocol, "127.0.0.1", 0)
    alice = join(loop, server, "alice")
    second = Peer(loop, server.addresses[0][:2])
    try:
        second.line()
        second.send("alice")
        assert second.line() == "error: nick alice is taken; try another"
        second.send("no spaces allowed")
        assert second.line().startswith("error: a nick is")
        second.send("alice2")
        assert second.line().startswith("* you are alice2")
        assert alice.line() == "* alice2 joined #lobby"
    finally:
        alice.close()
        second.close()
    server.close()


def test_chat_long_line_gets_an_error_line_then_close(loop):
    """A line over 4 KiB is answered with an error line, not dropped silently."""
    service = ChatService()
    server = loop.listen_tcp(service.protocol, "127.0.0.1", 0)
    alice = join(loop, server, "alice")
    bob = join(loop, server, "bob")
    try:
        alice.line()
        bob.send(b"y" * 5000 + b"\n")
        assert bob.line() == "error: line longer than 4096 bytes; closing"
        bob.wait_closed()
        assert alice.line() == "* bob was disconnected (framing)"
    finally:
        alice.close()
        bob.close()
    server.close()


def test_chat_stuck_reader_is_disconnected_and_room_goes_on(loop, caplog):
    """A member that never reads is cut off past the backlog cap; the others keep chatting."""
    service = ChatService()
    server = loop.listen_tcp(service.protocol, "127.0.0.1", 0, limits=chat_limits(64 * 1024))
    talker = join(loop, server, "talker")
    stuck = join(loop, server, "stuck")
    listener = join(loop, server, "listener")
    try:
        # Small kernel buffers on both sides of the stuck member's connection,
        # so its backlog builds in our send buffer rather than in the kernel.
        stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        service.members["stuck"].transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        line = "z" * 4000
        with caplog.at_level(logging.WARNING, logger="reactor"):
            for _ in range(200):
                talker.send(line)
                listener.quiet(2)
                listener.received.clear()
                if "stuck" not in service.members:
                    break
        assert "stuck" not in service.members
        assert any("(slow_consumer)" in r.getMessage() for r in caplog.records)
        assert server.stats()["rejected_slow_consumer"] == 1
        talker.send("after the purge")
        listener.wait(lambda: b"talker: after the purge" in listener.received)
    finally:
        talker.close()
        stuck.close()
        listener.close()
    server.close()
