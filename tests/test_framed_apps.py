"""FramedProtocol on real sockets, framed echo, and the chat server."""

import logging
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest

from reactor import FramedProtocol
from reactor.apps.chat import ChatService
from reactor.apps.echo import FRAMINGS, FramedEchoProtocol, framed_factory
from reactor.framing import LineFramer

from .conftest import run_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class LineClient:
    """A raw client socket that reads whole lines while pumping the loop."""

    def __init__(self, loop, address):
        self.loop = loop
        self.sock = socket.create_connection(address, timeout=5)
        self.sock.setblocking(False)
        self.buffer = b""
        self.closed = False

    def send(self, line):
        self.sock.setblocking(True)
        self.sock.sendall(line if isinstance(line, bytes) else line.encode() + b"\n")
        self.sock.setblocking(False)

    def pump(self):
        self.loop.run_once(0.005)
        try:
            chunk = self.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
        self.buffer += chunk

    def line(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            assert not self.closed, "connection closed; had %r" % self.buffer
            assert time.monotonic() < deadline, "no line within %.1f s; had %r" % (timeout,
                                                                                   self.buffer)
            self.pump()
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()

    def wait_closed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while not self.closed:
            assert time.monotonic() < deadline, "still open"
            self.pump()

    def quiet(self, passes=20):
        """Run a few passes and return whatever arrived (expected: nothing)."""
        for _ in range(passes):
            self.pump()
        return self.buffer

    def close(self):
        self.sock.close()


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
    client = LineClient(loop, server.addresses[0][:2])
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
    good = LineClient(loop, server.addresses[0][:2])
    bad = LineClient(loop, server.addresses[0][:2])
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
    sock = socket.create_connection(server.addresses[0][:2], timeout=5)
    try:
        for i in range(0, len(wire), 7):
            sock.sendall(wire[i:i + 7])
            loop.run_once(0.001)
        sock.setblocking(False)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(wire) and time.monotonic() < deadline:
            loop.run_once(0.005)
            try:
                got += sock.recv(65536)
            except BlockingIOError:
                pass
        assert got == wire
    finally:
        sock.close()
    server.close()


def test_framed_echo_oversized_length_header_closes_connection(loop, caplog):
    """A length header above --max-frame closes that connection with a logged reason."""
    server = loop.listen_tcp(framed_factory(FramedEchoProtocol, FRAMINGS["length"](100)),
                             "127.0.0.1", 0)
    client = LineClient(loop, server.addresses[0][:2])
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
    client = LineClient(loop, server.addresses[0][:2])
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
    second = LineClient(loop, server.addresses[0][:2])
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
    service = ChatService(max_backlog_bytes=64 * 1024)
    server = loop.listen_tcp(service.protocol, "127.0.0.1", 0)
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
                listener.buffer = b""
                if "stuck" not in service.members:
                    break
        assert "stuck" not in service.members
        assert any("stuck" in r.getMessage() and "backlog cap" in r.getMessage()
                   for r in caplog.records)
        talker.send("after the purge")
        deadline = time.monotonic() + 5
        while b"talker: after the purge" not in listener.buffer:
            assert time.monotonic() < deadline
            listener.pump()
    finally:
        talker.close()
        stuck.close()
        listener.close()
    server.close()


def test_cli_chat_and_framed_echo_start_and_stop():
    """`python -m reactor chat` and `echo --framing line` serve and exit 0 on SIGTERM."""
    for args, hello, expect in (
            (["chat", "--port", "0"], None, b"welcome to reactor chat; enter a nick\n"),
            (["echo", "--port", "0", "--framing", "line", "--max-frame", "64"],
             b"framed\r\n", b"framed\n")):
        process = subprocess.Popen([sys.executable, "-m", "reactor"] + args, cwd=ROOT,
                                   stderr=subprocess.PIPE, text=True)
        try:
            where = re.search(r"listening on (\S+)", process.stderr.readline()).group(1)
            host, port = where.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                if hello:
                    sock.sendall(hello)
                got = b""
                while len(got) < len(expect):
                    got += sock.recv(100)
                assert got == expect
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=10)
        assert process.returncode == 0
