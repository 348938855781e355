"""The chat server's wire protocol, exactly as docs/CHAT.md tells bot authors.

The transcripts on that page are replayed here against a real server (an
in-process loop, raw client sockets on 127.0.0.1), and every line a client
receives is compared verbatim. The exchanges a transcript cannot show (a
4 KiB line, a member who stops reading, a shutdown) have tests of their own,
and one test checks that the lines those tests expect are the ones the page
quotes.
"""

import argparse
import ast
import logging
import os
import random
import re
import socket
import sys
import time
import unicodedata

import pytest

from reactor import FakeClock, FramedProtocol, Limits, Reactor
from reactor.apps import chat as chat_app
from reactor.apps.chat import HELP, RESTARTING, ChatService, chat_limits
from reactor.apps.chat_text import UNSAFE
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

    def __init__(self, loop, limits=None, auth=None, **service_options):
        self.loop = loop
        self.service = ChatService(**service_options)
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
    """Return a function that starts a chat server; closes it, its peers and its loop after.

    ``clock`` (a FakeClock) is used by the first server only: one loop serves them all.
    """
    loops, servers = [], []

    def start(limits=None, auth=None, clock=None, **service_options):
        if not loops:
            loops.append(Reactor(clock=clock) if clock is not None else Reactor())
        servers.append(ChatServer(loops[0], limits, auth, **service_options))
        return servers[-1]
    yield start
    for server in servers:
        server.close()
    for loop in loops:
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
    for line in (GREETING, TOO_LONG, FRAMING, RATE, RESTARTING,
                 "* bob was disconnected (slow consumer)",
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


BAD_NICK = ("error: a nick is 1-32 letters, digits, '_', '-' or '.', starting with a letter "
            "and ending with a letter or digit; try again")


@pytest.mark.parametrize("nick,reply", [
    ("n" * 31, "* you are %s, in #lobby; /help lists commands" % ("n" * 31)),
    ("n" * 32, "* you are %s, in #lobby; /help lists commands" % ("n" * 32)),
    ("n" * 33, BAD_NICK),
    ("", BAD_NICK),
    ("b", "* you are b, in #lobby; /help lists commands"),
    ("b9", "* you are b9, in #lobby; /help lists commands"),
    ("dot.dash-under_9", "* you are dot.dash-under_9, in #lobby; /help lists commands"),
    ("Bob", "* you are Bob, in #lobby; /help lists commands"),
    ("alice.", BAD_NICK),
    ("alice_", BAD_NICK),
    ("-alice", BAD_NICK),
    ("9lives", BAD_NICK),
    ("*", BAD_NICK),
    ("al:ce", BAD_NICK),
    ("\u0430lice", BAD_NICK),                # a Cyrillic a: nicks are ASCII
    ("ALICE", "error: nick ALICE is taken; try another"),
    ("aLiCe", "error: nick aLiCe is taken; try another"),
    ("error", "error: nick error is taken; try another"),
    ("ERROR", "error: nick ERROR is taken; try another"),
    ("Commands", "error: nick Commands is taken; try another"),
])
def test_nick_rules_at_their_edges(start_chat, nick, reply):
    """A nick is ASCII, 1-32 long, starts with a letter, ends alphanumeric, is unique ignoring
    case; 'error' and 'commands' are never free."""
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


def test_shutdown_tells_every_member_and_serves_it_until_the_grace_ends(start_chat):
    """Server.shutdown (SIGTERM, a reload) tells each member it is restarting, and the room
    goes on working until the grace ends; then each member reads EOF."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    done = []
    chat.server.shutdown(0.5, on_done=lambda: done.append(True))
    assert (alice.line(), bob.line()) == (RESTARTING, RESTARTING)
    alice.send("last words")
    assert bob.line() == "alice: last words"
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


# -- what a member cannot forge ------------------------------------------------------

ESCAPE_ROW = re.compile(r"^\| `(.*)` \| `(.*)` \|$")


def doc_escape_table():
    """Return ``[(line number, what alice sends, what bob receives), ...]`` from CHAT.md."""
    with open(CHAT_DOC, encoding="utf-8") as doc:
        lines = doc.read().splitlines()
    start = lines.index("## Control characters")
    rows = []
    for number, line in enumerate(lines[start:], start + 1):
        if line.startswith("## ") and rows:
            break
        match = ESCAPE_ROW.match(line)
        if match:
            rows.append((number, ast.literal_eval('"%s"' % match.group(1)), match.group(2)))
    return rows


def test_doc_control_character_table_is_what_bob_receives(start_chat):
    """Each row of CHAT.md's control-character table: alice sends the left, bob gets the right."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.line() == "* bob joined #lobby"
    rows = doc_escape_table()
    assert len(rows) >= 5
    for number, sent, received in rows:
        alice.send(sent.encode("utf-8") + b"\n")
        assert bob.line() == received, "CHAT.md line %d" % number
    assert alice.quiet(5) == b"" and bob.quiet(5) == b""


def test_unsafe_is_exactly_the_control_and_format_characters():
    """UNSAFE matches every Cc, Cf, Zl and Zp character but TAB, ZWNJ and ZWJ, and nothing
    assigned outside those categories."""
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    kept = {"\t", "\u200c", "\u200d"}
    unsafe_categories = {"Cc", "Cf", "Zl", "Zp"}
    wanted = {ch for ch in everything if unicodedata.category(ch) in unsafe_categories} - kept
    matched = set(UNSAFE.findall(everything))
    assert sorted(wanted - matched) == []
    assert sorted(ch for ch in matched - wanted if unicodedata.category(ch) != "Cn") == []


def test_tab_and_joiners_pass_and_a_line_of_controls_grows_fourfold(start_chat):
    """TAB, U+200C and U+200D pass unchanged; 4096 control bytes arrive as 16384 characters."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    alice.send("a\tb " + family)
    assert bob.line() == "alice: a\tb " + family
    alice.send(b"\x01" * 4096 + b"\n")
    assert bob.line() == "alice: " + "\\x01" * 4096


#: What a member's line looks like to a reader: the nick, its separator, then
#: text with nothing that moves the cursor or ends the line.
MEMBER_LINE = re.compile(r"^mallory(: | \(private\): )")


def test_no_member_input_passes_for_a_server_line(start_chat):
    """Fuzzed lines of controls, CR, ANSI, line separators, bidi and fake server prefixes reach
    others as exactly one line each, starting 'mallory: ', with no unsafe character."""
    seed = random.randrange(2 ** 32)
    rng = random.Random(seed)
    pieces = ["\x1b[2K", "\r", "\x00", "\x07", "\x0b", "\x0c", "\x7f", "\x85", "\x9b", "\u2028",
              "\u2029", "\u202e", "\u2066", "\u200f", "\u061c", "\ufeff", "\x1c", "\x1e",
              "* ", "error: ", "commands: ", "bob: ", "* you are ", "\\x1b", "\ufffd", "\t",
              "\u200d", "x", " ", "/"]
    chat = start_chat()
    victim = chat.join("victim")
    mallory = chat.join("mallory")
    assert victim.line() == "* mallory joined #lobby"
    for round_number in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 40)))
        if round_number % 50 == 0:
            text = text * (4000 // len(text.encode("utf-8")))          # very long lines
        private = rng.random() < 0.3
        sent = ("/msg victim " + text) if private else text
        data = sent.encode("utf-8")[:4096]
        mallory.send(data + b"\n")
        stripped = data.decode("utf-8", "replace").strip()
        if not private and (not stripped or stripped.startswith("/")):
            continue                        # blank (ignored) or a command (a reply to mallory)
        if private and not stripped[len("/msg victim "):].strip():
            continue
        line = victim.line()
        where = "seed %d, round %d, sent %r" % (seed, round_number, data)
        assert MEMBER_LINE.match(line), where
        assert len(line.splitlines()) == 1 and "\r" not in line, where
        assert not [ch for ch in line if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")
                    and ch not in "\t\u200c\u200d"], where
    assert victim.quiet(5) == b"", "seed %d" % seed
    mallory.received.clear()


def test_nicks_are_unique_ignoring_case_and_msg_finds_any_case(start_chat):
    """'BOB' reaches bob by /msg; once bob is gone, 'BOB' may take the nick."""
    chat = start_chat()
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    alice.send("/msg BOB hi")
    assert bob.line() == "alice (private): hi"
    bob.send("/quit")
    assert bob.line() == "* bye"
    assert alice.line() == "* bob left"
    chat.join("BOB")
    assert alice.line() == "* BOB joined #lobby"


# -- bounded fan-out ----------------------------------------------------------------

def deliveries_of(peers, line):
    """Read what each peer has; return how many copies of ``line`` they hold in all."""
    total = 0
    for peer in peers:
        peer.pump()
        total += bytes(peer.received).count(line.encode() + b"\n")
    return total


def test_a_broadcast_flood_is_shaped_to_the_budget_and_others_are_served(start_chat):
    """32,000 lines in one write reach the room at burst + rate x T deliveries (plus one line),
    and another member's /help is answered within a few passes."""
    clock = FakeClock(1000.0)
    rate, burst = 1000, 1000
    chat = start_chat(clock=clock, fanout_rate=chat_app.Rate(rate, burst=burst))
    members = [chat.join("m%d" % number) for number in range(10)]
    probe = chat.join("probe")
    mallory = chat.join("mallory")
    listeners = members + [probe]
    for peer in listeners:
        peer.wait(lambda peer=peer: peer.received.endswith(b"* mallory joined #lobby\n"))
        peer.received.clear()
    one_line = len(listeners)                       # a short line costs 1 per recipient
    mallory.send(b"a\n" * 32000)                    # 64,000 bytes, one write
    for _ in range(10):
        assert deliveries_of(listeners, "mallory: a") <= burst + one_line
    probe.send("/help")
    passes = 0
    while b"commands:" not in probe.received:
        probe.pump()
        passes += 1
        assert passes <= 10, "no /help reply within 10 passes"
    for elapsed in (0.25, 0.5, 1.0, 2.0):
        clock.advance(0.25 if elapsed < 1.0 else elapsed / 2)
        for _ in range(5):
            delivered = deliveries_of(listeners, "mallory: a")
        # Below by at most two lines: mallory's own join notice spent one line's worth.
        assert (burst + rate * elapsed - 2 * one_line <= delivered
                <= burst + rate * elapsed + one_line), elapsed
    assert chat.service.stats()["fanout_holds"] == 1


def test_a_who_flood_is_shaped_to_the_budget(start_chat):
    """10,000 /who in one write: replies come at (burst + rate x T) / room size, no faster."""
    clock = FakeClock(1000.0)
    rate, burst = 1000, 1000
    chat = start_chat(clock=clock, fanout_rate=chat_app.Rate(rate, burst=burst))
    members = [chat.join("m%d" % number) for number in range(10)]
    mallory = chat.join("mallory")
    reply = "* in #lobby: " + ", ".join(["m%d" % n for n in range(10)] + ["mallory"])
    cost = len(members) + 1 + 1                     # one per member looked at, plus the reply
    spent = 1 + len(members)                        # mallory's nick reply and join notice
    mallory.send(b"/who\n" * 10000)
    for _ in range(50):
        mallory.pump()
    # Each reply is paid for; the one that goes into debt is sent too.
    assert deliveries_of([mallory], reply) == (burst - spent) // cost + 1
    clock.advance(1.0)
    for _ in range(20):
        replies = deliveries_of([mallory], reply)
    assert replies == (burst + rate * 1.0 - spent) // cost + 1
    assert len(mallory.received) == replies * (len(reply) + 1)


def test_a_broadcast_flood_with_the_default_budget_in_real_time(start_chat):
    """The repro of issue #12: 20 members, 32,000 lines in one write; /help is answered within
    0.5 s and the room gets at most 20,000/s x T + 2,000 deliveries (plus one line)."""
    chat = start_chat()
    members = [chat.join("m%d" % number) for number in range(20)]
    probe = chat.join("probe")
    mallory = chat.join("mallory")
    listeners = members + [probe]
    for peer in listeners:
        peer.wait(lambda peer=peer: peer.received.endswith(b"* mallory joined #lobby\n"))
        peer.received.clear()
    start = time.monotonic()
    mallory.send(b"a\n" * 32000)
    deliveries_of(listeners, "mallory: a")
    asked = time.monotonic()
    probe.send("/help")
    probe.wait(lambda: b"commands:" in probe.received, timeout=0.5)
    answered = time.monotonic()
    delivered = deliveries_of(listeners, "mallory: a")
    budget = chat_app.DEFAULT_FANOUT_RATE
    bound = budget.burst + budget.per_second * (time.monotonic() - start) + len(listeners)
    assert delivered <= bound, (delivered, bound, answered - asked)


def test_a_line_over_budget_waits_and_lines_keep_their_order(start_chat):
    """A member over its budget is held, not dropped: its lines arrive later, in order."""
    clock = FakeClock(1000.0)
    chat = start_chat(clock=clock, fanout_rate=chat_app.Rate(10, burst=10))
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.line() == "* bob joined #lobby"
    alice.send(b"".join(b"line %d\n" % number for number in range(30)) + b"/quit\n")
    heard = []
    for _ in range(6):
        clock.advance(1.0)
        for _ in range(10):
            bob.pump()
        while b"\n" in bob.received:
            heard.append(bob.line())
    assert heard == ["alice: line %d" % number for number in range(30)] + ["* alice left"]
    assert alice.line() == "* bye"
    alice.wait_closed()


def test_the_budget_and_a_message_rate_hold_together_and_each_lets_go(start_chat):
    """With --msg-rate shaping too, both holds end in time: every line arrives, in order."""
    clock = FakeClock(1000.0)
    chat = start_chat(limits=Limits(rate_messages=Rate(20, burst=5)), clock=clock,
                      fanout_rate=chat_app.Rate(10, burst=10))
    alice = chat.join("alice")
    bob = chat.join("bob")
    assert alice.line() == "* bob joined #lobby"
    alice.send(b"".join(b"line %d\n" % number for number in range(40)))
    heard = []
    for _ in range(10):
        clock.advance(0.5)
        for _ in range(10):
            bob.pump()
        while b"\n" in bob.received:
            heard.append(bob.line())
    assert heard == ["alice: line %d" % number for number in range(40)]
    alice.send("/help")
    assert alice.line() == HELP


def test_fanout_rate_none_turns_the_budget_off(start_chat):
    """With no budget, a flood goes through at once (the framework's limits still apply)."""
    chat = start_chat(fanout_rate=None)
    alice = chat.join("alice")
    bob = chat.join("bob")
    alice.line()
    alice.send(b"x\n" * 3000)
    bob.wait(lambda: bytes(bob.received).count(b"alice: x\n") == 3000)
    assert chat.service.stats() == {"members": 2, "rooms": 1, "fanout_holds": 0}


@pytest.mark.parametrize("value,message", [
    ("-1", "--fanout-rate must be a finite number >= 0 (0: no limit), got -1"),
    ("nan", "--fanout-rate must be a finite number >= 0 (0: no limit), got nan"),
    ("inf", "--fanout-rate must be a finite number >= 0 (0: no limit), got inf"),
])
def test_a_bad_fanout_rate_is_refused_before_listening(value, message):
    """`chat --fanout-rate` below 0, NaN or infinite stops with one line, before listening."""
    parser = argparse.ArgumentParser()
    chat_app.configure(parser)
    with pytest.raises(SystemExit, match=re.escape(message)):
        chat_app.run(parser.parse_args(["--port", "0", "--fanout-rate", value]))


def test_who_and_rooms_list_at_most_the_limit_and_say_how_many_more(start_chat):
    """/who and /rooms list list_max_names names in sorted order, then ' and N more'."""
    chat = start_chat(list_max_names=2)
    carol = chat.join("carol")
    alice = chat.join("alice")
    chat.join("bob")
    assert [carol.line(), carol.line()] == ["* alice joined #lobby", "* bob joined #lobby"]
    carol.send("/who")
    assert carol.line() == "* in #lobby: alice, bob and 1 more"
    alice.send("/join b")
    assert [alice.line(), alice.line()] == ["* bob joined #lobby", "* you are in #b"]
    assert carol.line() == "* alice left for #b"
    carol.send("/join a")
    assert carol.line() == "* you are in #a"
    carol.send("/rooms")
    assert carol.line() == "* rooms: #a (1), #b (1) and 1 more"
    carol.send("/who")
    assert carol.line() == "* in #a: carol"


@pytest.mark.parametrize("size,announced", [(2, True), (3, True), (4, False)])
def test_joins_and_leaves_are_announced_only_in_rooms_up_to_the_limit(start_chat, size,
                                                                      announced):
    """With announce_max_members=3, the 3rd member's join and leave are heard, the 4th's not."""
    chat = start_chat(announce_max_members=3)
    first = chat.join("first")
    others = [chat.join("m%d" % number) for number in range(size - 2)]
    first.wait(lambda: first.received.count(b"joined") == len(others))
    first.received.clear()
    last = chat.join("last")
    last.send("/quit")
    assert last.line() == "* bye"
    last.wait_closed()
    first.pump(20)
    expected = b"* last joined #lobby\n* last left\n" if announced else b""
    assert bytes(first.received) == expected
