"""The chat server's wire protocol, exactly as docs/CHAT.md tells bot authors.

The transcripts on that page are replayed here against a real server (an
in-process loop, raw client sockets on 127.0.0.1), and every line a client
receives is compared verbatim. The exchanges a transcript cannot show (a
4 KiB line, a member who stops reading, a shutdown) have tests of their own,
and one test checks that the lines those tests expect are the ones the page
quotes.
"""

import logging
import os
import re
import socket

import pytest

from reactor import FramedProtocol, Limits, Reactor
from reactor.apps.chat import HELP, ChatService, chat_limits
from reactor.framing import LineFramer
from reactor.policy import Rate
from reactor.protect.auth import PskAuth, TokenAuth

from .support.loops import run_until
from .support.peers import Peer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHAT_DOC = os.path.join(ROOT, "docs", "CHAT.md")
#: The token the auth transcripts of docs/CHAT.md use.
DOC_TOKEN = "s3cret-token"
PSK = b"a pre-shared key of 32 bytes...."

GREETING = "welcome to reactor chat; enter a nick"
TOO_LONG = "error: line longer than 4096 bytes; closing"
SLOW_CONSUMER = "* stuck was disconnected (slow consumer)"
FRAMING = "* bob was disconnected (framing)"
RATE = "* bob was disconnected (rate)"


class ChatServer:
    """A chat server on 127.0.0.1 in an in-process loop, and the peers connected to it."""

    def __init__(self, loop, limits=None, auth=None):
        self.loop = loop
        self.service = ChatService()
        self.server = loop.listen_tcp(self.service.protocol, "127.0.0.1", 0,
                                      limits=limits, auth=auth)
        self.address = self.server.addresses[0][:2]
        self.peers = []

    def connect(self):
        peer = Peer(self.loop, self.address)
        self.peers.append(peer)
        return peer

    def join(self, nick):
        """Connect, take ``nick``, and return the peer, its greeting and confirmation read."""
        peer = self.connect()
        assert peer.line() == GREETING
        peer.send(nick)
        assert peer.line() == "* you are %s, in #lobby; /help lists commands" % nick
        return peer

    def close(self):
        for peer in self.peers:
            peer.close()
        self.server.close()


@pytest.fixture
def start_chat():
    """Return a function that starts a chat server; closes it, its peers and its loop after."""
    loop = Reactor()
    servers = []

    def start(limits=None, auth=None):
        servers.append(ChatServer(loop, limits, auth))
        return servers[-1]
    yield start
    for server in servers:
        server.close()
    loop.close()


# -- the transcripts of docs/CHAT.md ---------------------------------------------------

STEP = re.compile(r"^(\w+)\s*([<>]) (.*)$")


def doc_transcripts(kind):
    """Return ``[(line number, [(line number, who, arrow, text), ...]), ...]`` from CHAT.md.

    A transcript is a fenced block whose info string is ``kind``.
    """
    with open(CHAT_DOC, encoding="utf-8") as doc:
        lines = doc.read().splitlines()
    transcripts, steps, start = [], None, 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if steps is None and stripped == "```" + kind:
            steps, start = [], number
        elif steps is not None and stripped == "```":
            transcripts.append((start, steps))
            steps = None
        elif steps is not None:
            match = STEP.match(stripped)
            assert match, "CHAT.md line %d is not a transcript step: %r" % (number, line)
            steps.append((number,) + match.groups())
    return transcripts


def replay(chat, steps):
    """Play ``steps`` against ``chat``: send each ``>`` line, compare each ``<`` line verbatim."""
    peers = {}
    for number, who, arrow, text in steps:
        peer = peers.get(who)
        if peer is None:
            peer = peers[who] = chat.connect()
        where = "CHAT.md line %d" % number
        if arrow == ">" and text == "(hangs up)":
            peer.close()
            peers[who] = None
        elif arrow == ">":
            peer.send(text)
        elif text == "(connection closed)":
            peer.wait_closed()
            assert peer.received == b"", where
            peers[who] = None
        else:
            assert peer.line() == text, where
    for who, peer in peers.items():
        if peer is not None:
            assert peer.quiet(10) == b"", "%s got lines the transcript does not show" % who


@pytest.mark.parametrize("steps", [steps for _, steps in doc_transcripts("transcript")],
                         ids=["CHAT.md:%d" % start for start, _ in doc_transcripts("transcript")])
def test_doc_transcript_is_what_the_server_says(start_chat, steps):
    """Each transcript in docs/CHAT.md happens verbatim, with no line left out."""
    replay(start_chat(), steps)


@pytest.mark.parametrize("steps", [steps for _, steps in doc_transcripts("transcript-auth")],
                         ids=["CHAT.md:%d" % start
                              for start, _ in doc_transcripts("transcript-auth")])
def test_doc_auth_transcript_is_what_the_server_says(start_chat, steps):
    """With token auth, the token comes first and the greeting after it, as CHAT.md shows."""
    replay(start_chat(auth=TokenAuth([DOC_TOKEN])), steps)


def test_doc_transcripts_show_every_command():
    """CHAT.md has transcripts, and together they send every command /help lists."""
    sent = " ".join(text for _, steps in doc_transcripts("transcript")
                    for _, _, arrow, text in steps if arrow == ">")
    commands = re.findall(r"/\w+", HELP)
    assert len(commands) == 6 and len(doc_transcripts("transcript-auth")) == 2
    assert [command for command in commands if command not in sent] == []


def test_doc_quotes_the_lines_the_other_tests_expect():
    """The lines the tests below check for are the ones CHAT.md quotes."""
    with open(CHAT_DOC, encoding="utf-8") as doc:
        text = doc.read()
    for line in (GREETING, TOO_LONG, FRAMING, RATE, "* bob was disconnected (slow consumer)",
                 "* bob was disconnected (timeout)", "error: authentication failed",
                 "you are %s, in #lobby; /help lists commands" % "alice"):
        assert line in text, line


# -- what a transcript cannot show -----------------------------------------------------

def test_crlf_padding_and_blank_lines(start_chat):
    """\\r\\n ends a line too, spaces around a line are dropped, and blank lines send nothing."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.line() == "* bob joined #lobby"
    alice.send(b"one\r\n\n   \r\n  two  \n")
    assert [bob.line(), bob.line()] == ["alice: one", "alice: two"]
    assert bob.quiet(10) == b"" and alice.quiet(10) == b""


def test_bytes_that_are_not_utf8_arrive_as_replacement_characters(start_chat):
    """Bytes that are not UTF-8 reach the room as U+FFFD; valid UTF-8 passes unchanged."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    alice.send("h\u00e9 \u2603 ".encode("utf-8") + b"\xff\xfe\n")
    assert bob.line() == "alice: h\u00e9 \u2603 \ufffd\ufffd"


BAD_NICK = "error: a nick is 1-32 letters, digits, '_', '-' or '.'; try again"


@pytest.mark.parametrize("nick,reply", [
    ("n" * 31, "* you are %s, in #lobby; /help lists commands" % ("n" * 31)),
    ("n" * 32, "* you are %s, in #lobby; /help lists commands" % ("n" * 32)),
    ("n" * 33, BAD_NICK),
    ("", BAD_NICK),
    ("dot.dash-under_9", "* you are dot.dash-under_9, in #lobby; /help lists commands"),
    ("Alice", "* you are Alice, in #lobby; /help lists commands"),
    ("al:ce", BAD_NICK),
    ("error", "error: nick error is taken; try another"),
    ("commands", "error: nick commands is taken; try another"),
])
def test_nick_rules_at_their_edges(start_chat, nick, reply):
    """A nick is 1-32 of [A-Za-z0-9_.-], case-sensitive; 'error' and 'commands' are never free."""
    chat = start_chat()
    chat.join("alice")
    peer = chat.connect()
    assert peer.line() == GREETING
    peer.send(nick)
    assert peer.line() == reply


def test_a_4096_byte_line_is_relayed_whole_with_the_nick_in_front(start_chat):
    """A line of exactly 4096 bytes (and its \\r\\n) is fine, though the relayed line is longer."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    alice.send(b"x" * 4096 + b"\r\n")
    assert bob.line() == "alice: " + "x" * 4096
    alice.send("still here")
    assert bob.line() == "alice: still here"


def test_a_4097_byte_line_gets_an_error_line_then_a_close(start_chat):
    """One byte over 4 KiB: an error line, the connection closed, the room told '(framing)'."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    bob.send(b"y" * 4097 + b"\n")
    assert bob.line() == TOO_LONG
    bob.wait_closed()
    assert bob.received == b""
    assert alice.line() == FRAMING
    assert chat.server.stats()["rejected_framing"] == 1


def test_a_member_who_stops_reading_is_cut_off_as_a_slow_consumer(start_chat, caplog):
    """Past --max-backlog unread bytes the transport closes the member; the room is told,
    the server counts it, and the others chat on."""
    chat = start_chat(limits=chat_limits(64 * 1024))
    talker = chat.join("talker")
    stuck = chat.join("stuck")
    listener = chat.join("listener")
    # Small kernel buffers on both ends of the stuck member's connection, so
    # that its backlog builds in our send buffer rather than in the kernel's.
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    chat.service.members["stuck"].transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    heard = []
    with caplog.at_level(logging.WARNING, logger="reactor"):
        for _ in range(200):
            talker.send("z" * 4000)
            while listener.quiet(2):
                heard.append(listener.line())
            if SLOW_CONSUMER in heard:
                break
    assert SLOW_CONSUMER in heard
    assert "stuck" not in chat.service.members
    assert chat.server.stats()["rejected_slow_consumer"] == 1
    assert any("slow_consumer" in record.getMessage() for record in caplog.records)
    talker.send("after the purge")
    while listener.line() != "talker: after the purge":
        pass
    assert [talker.line() for _ in range(3)] == [
        "* stuck joined #lobby", "* listener joined #lobby", SLOW_CONSUMER]


def test_chat_limits_cap_the_send_buffer_and_keep_other_fields():
    """chat_limits sets the hard cap to the backlog, turns the soft cap off, keeps the rest."""
    limits = chat_limits(1000, Limits(max_per_ip=3))
    assert (limits.send_buffer_hard_cap_bytes, limits.send_buffer_soft_cap_bytes,
            limits.max_per_ip) == (1000, None, 3)
    with pytest.raises(ValueError, match="send_buffer_hard_cap_bytes"):
        chat_limits(0)


def test_a_member_over_its_message_rate_is_disconnected_and_the_room_told(start_chat):
    """With a message rate and rate_action='disconnect', the room hears '(rate)'."""
    chat = start_chat(limits=Limits(rate_messages=Rate(1, burst=2), rate_action="disconnect"))
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.line() == "* bob joined #lobby"
    bob.send(b"one\ntwo\nthree\nfour\n")
    bob.wait_closed()
    lines = [alice.line()]
    while lines[-1] != RATE and len(lines) < 5:
        lines.append(alice.line())
    assert lines[-1] == RATE and all(line.startswith("bob: ") for line in lines[:-1])


def test_shutdown_closes_every_member_without_a_line(start_chat):
    """Server.shutdown (SIGTERM on the command line) sends nothing: each member reads EOF."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    alice.send("last words")
    assert bob.line() == "alice: last words"
    done = []
    chat.server.shutdown(1.0, on_done=lambda: done.append(True))
    run_until(chat.loop, lambda: done)
    for peer in (alice, bob):
        peer.wait_closed()
        assert peer.received == b""


class LineRecorder(FramedProtocol):
    """A reactor client that records each line it receives."""

    framer = LineFramer(max_length=16384)

    def __init__(self):
        self.lines = []

    def frame_received(self, frame):
        self.lines.append(bytes(frame).decode("utf-8"))


def test_with_a_psk_the_greeting_follows_the_handshake(start_chat):
    """With --psk-file, a client that passes the challenge gets the greeting, then chats."""
    chat = start_chat(auth=PskAuth([PSK]))
    client = LineRecorder()
    errors = []
    chat.loop.connect_tcp(lambda: client, *chat.address, psk=PSK, on_error=errors.append)
    run_until(chat.loop, lambda: client.lines or errors)
    assert (errors, client.lines) == ([], [GREETING])
    client.send_frame(b"alice")
    run_until(chat.loop, lambda: len(client.lines) == 2)
    assert client.lines[1] == "* you are alice, in #lobby; /help lists commands"
    client.transport.close()
    run_until(chat.loop, lambda: len(chat.server) == 0)


def test_frames_in_and_out_count_every_line(start_chat):
    """stats() counts each line chat sends as one frame out, a broadcast once per member."""
    chat = start_chat()
    alice = chat.join("alice")              # out: greeting, confirmation
    bob = chat.join("bob")                  # out: 2 to bob, 'bob joined' to alice
    assert alice.line() == "* bob joined #lobby"
    alice.send("hi")                        # out: 1 to bob
    assert bob.line() == "alice: hi"
    bob.send("/who")                        # out: 1 to bob
    assert bob.line() == "* in #lobby: alice, bob"
    alice.send("/msg bob psst")             # out: 1 to bob
    assert bob.line() == "alice (private): psst"
    assert (chat.server.stats()["frames_in"], chat.server.stats()["frames_out"]) == (5, 8)
    bob.send("/quit")                       # out: '* bye', 'bob left' to alice
    assert bob.line() == "* bye"
    assert alice.line() == "* bob left"
    run_until(chat.loop, lambda: len(chat.server) == 1)
    assert (chat.server.stats()["frames_in"], chat.server.stats()["frames_out"]) == (6, 10)
