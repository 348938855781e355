"""``python -m reactor chat``: line-based chat rooms that ``nc`` or ``telnet`` can join.

The wire protocol, every line a person or a bot sees, is in
``docs/CHAT.md``; ``tests/test_chat.py`` replays that page's transcripts
against this module. In short (each line ends in ``\\n``; ``\\r\\n`` is fine)::

    server: welcome to reactor chat; enter a nick
    client: alice                      the first line is the nick (unique)
    server: * you are alice, in #lobby; /help lists commands
    client: hello                      plain lines go to the room ...
    others: alice: hello               ... as NICK: text

One ``ChatService`` holds who is where (nick -> member, room -> members);
one ``ChatMember``, a ``FramedProtocol`` with a ``LineFramer``, serves each
connection. When a member goes, the room hears why: ``connection_lost``
turns the ``reason`` of the error the framework closed it with (none for a
clean close) into the notice. This module closes no one but a member who
sends ``/quit``:

========================  ==========================================  ======================
a member who ...          is closed by                                the room hears ``* bob``
========================  ==========================================  ======================
hangs up, sends /quit     itself                                      ``left``
stops reading             its send-buffer cap (``--max-backlog``)     ``was disconnected
                                                                      (slow consumer)``
sends a line over 4 KiB   the line framer, after our error line       ``... (framing)``
idles, floods             the protections (``docs/PROTECTIONS.md``)   ``... (timeout)``,
                                                                      ``... (rate)``
========================  ==========================================  ======================

Discussion: a member who does not read. Every line to a member waits in
that member's send buffer, so one stuck reader must cost bounded memory and
must not slow the room. ``chat_limits`` sets the transport's hard cap
(``Limits.send_buffer_hard_cap_bytes``, Redis's client-output-buffer-limit)
to ``--max-backlog`` (default 256 KiB): the write that passes it drops the
buffer and closes the connection with ``SlowConsumerError``, and the server
counts it (``stats()['rejected_slow_consumer']``) and logs it, rate-limited.
Checking the backlog here after each write would do the same work twice,
and the counters would never hear of it. The soft cap (over N bytes for S
seconds) is off: chat lines are small, and one number is easier to reason
about than two.
"""

import argparse
import re
from typing import Any, Dict, Optional, Set

from ..framed import FramedProtocol
from ..framing import FramingError, LineFramer
from ..policy import DEFAULT_LIMITS, Limits
from .serving import add_server_options, serve

SUMMARY = "chat server: rooms, nicks and private messages over plain lines"
#: The longest line a member may send, not counting its "\n" or "\r\n".
MAX_LINE_BYTES = 4096
#: Default ``--max-backlog``: unread bytes queued for one member before it is cut off.
DEFAULT_BACKLOG_BYTES = 256 * 1024
LOBBY = "lobby"
#: What a nick or a room name may be.
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
NAME_RULE = "1-32 letters, digits, '_', '-' or '.'"
#: Nicks nobody gets: "error: hi" from a member named error would pass for
#: the server's own error line (and "commands: ..." for the /help reply).
RESERVED_NICKS = frozenset({"error", "commands"})
HELP = ("commands: /join ROOM, /who, /rooms, /msg NICK text, /quit, /help; "
        "anything else goes to your room")


class ChatService:
    """The shared state of one chat server: who is here, and in which room."""

    def __init__(self) -> None:
        self.members: Dict[str, "ChatMember"] = {}
        self.rooms: Dict[str, Set["ChatMember"]] = {}

    def protocol(self) -> "ChatMember":
        """Return a new ChatMember: the protocol factory, one member per connection."""
        return ChatMember(self)

    def enter(self, member: "ChatMember", room: str) -> None:
        """Put ``member`` in ``room`` (created on first use) and tell the others there."""
        self.rooms.setdefault(room, set()).add(member)
        member.room = room
        self.broadcast(room, "* %s joined #%s" % (member.nick, room), exclude=member)

    def leave(self, member: "ChatMember", why: str) -> None:
        """Take ``member`` out of its room, telling the others ``* NICK why``.

        An emptied room is forgotten, except the lobby.
        """
        room = member.room
        if room is None:
            return
        members = self.rooms.get(room, set())
        members.discard(member)
        if not members and room != LOBBY:
            self.rooms.pop(room, None)
        member.room = None
        self.broadcast(room, "* %s %s" % (member.nick, why), exclude=member)

    def broadcast(self, room: str, line: str, exclude: Optional["ChatMember"] = None) -> None:
        """Send ``line`` to everyone in ``room`` but ``exclude``: encoded once, written to each.

        Costs O(members in the room) writes. A write may close a member that
        is too far behind (its send-buffer cap); the loop goes on to the next,
        and that member's ``connection_lost`` tells the room later.
        """
        data = encode_line(line)
        for member in list(self.rooms.get(room, ())):
            if member is not exclude:
                member.deliver(data)


class ChatMember(FramedProtocol):
    """One connected chat user: first the nick, then lines and commands.

    Callback order (``FramedProtocol``'s): ``connection_made`` (sends the
    greeting), ``frame_received`` per line, ``framing_error`` for a line over
    ``MAX_LINE_BYTES``, ``connection_lost`` (tells the room, once).
    """

    framer = LineFramer(max_length=MAX_LINE_BYTES)

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.nick: Optional[str] = None
        self.room: Optional[str] = None

    # -- protocol callbacks ------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.say("welcome to reactor chat; enter a nick")

    def frame_received(self, frame: Any) -> None:
        line = bytes(frame).decode("utf-8", "replace").strip()
        if self.nick is None:
            self.choose_nick(line)
        elif line.startswith("/"):
            self.command(line)
        elif line:
            self.service.broadcast(self.room, "%s: %s" % (self.nick, line), exclude=self)

    def framing_error(self, exc: FramingError) -> None:
        self.say("error: line longer than %d bytes; closing" % MAX_LINE_BYTES)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.nick is not None:
            reason = getattr(exc, "reason", None)         # the framework closed it: say why
            self.service.leave(self, "left" if reason is None else "was disconnected (%s)"
                               % reason.replace("_", " "))
            self.service.members.pop(self.nick, None)

    # -- chat logic ---------------------------------------------------------

    def choose_nick(self, nick: str) -> None:
        """Take ``nick`` if it is valid and free, else say why and wait for another."""
        if not NAME.match(nick):
            self.say("error: a nick is %s; try again" % NAME_RULE)
        elif nick in self.service.members or nick in RESERVED_NICKS:
            self.say("error: nick %s is taken; try another" % nick)
        else:
            self.nick = nick
            self.service.members[nick] = self
            self.say("* you are %s, in #%s; /help lists commands" % (nick, LOBBY))
            self.service.enter(self, LOBBY)

    def command(self, line: str) -> None:
        """Run one ``/command`` line; docs/CHAT.md lists each reply."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        service = self.service
        if name == "/join":
            if not NAME.match(rest):
                self.say("error: usage /join ROOM (%s)" % NAME_RULE)
            elif rest == self.room:
                self.say("* you are already in #%s" % rest)
            else:
                service.leave(self, "left for #%s" % rest)
                self.say("* you are in #%s" % rest)
                service.enter(self, rest)
        elif name == "/who":
            names = sorted(member.nick for member in service.rooms.get(self.room, ()))
            self.say("* in #%s: %s" % (self.room, ", ".join(names)))
        elif name == "/rooms":
            rooms = sorted(service.rooms.items())
            self.say("* rooms: " + ", ".join("#%s (%d)" % (room, len(members))
                                             for room, members in rooms))
        elif name == "/msg":
            target, _, text = rest.partition(" ")
            peer = service.members.get(target)
            if peer is None or not text.strip():
                self.say("error: usage /msg NICK text (to someone connected)")
            else:
                peer.deliver(encode_line("%s (private): %s" % (self.nick, text.strip())))
        elif name == "/quit":
            self.say("* bye")
            self.transport.close()
        elif name == "/help":
            self.say(HELP)
        else:
            self.say("error: unknown command %s; %s" % (name, HELP))

    def say(self, line: str) -> None:
        """Send one line to this member."""
        self.deliver(encode_line(line))

    def deliver(self, data: bytes) -> None:
        """Write one encoded line to this member (unless it is closing) and count the frame.

        Discussion: why not ``send_frame``. It encodes per call, and a
        broadcast should encode once for the whole room. And the framer's
        ``max_length`` is the limit on what we *accept*: a line we send may
        be longer (``NICK: `` before a 4 KiB line; ``/who`` in a big room),
        and ``LineFramer.encode`` would refuse it. So chat encodes its own
        lines and counts ``frames_out`` here, where ``send_frame`` would.
        """
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(data)           # past --max-backlog this closes us (slow consumer)
        self.frames_out += 1


def encode_line(line: str) -> bytes:
    """Return ``line`` as it goes on the wire: UTF-8 and ``\\n``.

    ``line`` holds no newline: text comes from one received line, and nicks
    and room names cannot contain one.
    """
    return line.encode("utf-8") + b"\n"


def chat_limits(max_backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
                base: Limits = DEFAULT_LIMITS) -> Limits:
    """Return ``base`` with each member's send buffer capped at ``max_backlog_bytes``.

    A write that leaves more than ``max_backlog_bytes`` queued for a member
    closes it with ``SlowConsumerError`` (exactly ``max_backlog_bytes`` is
    still fine). The soft cap is turned off (see the module docstring).
    Raises ``ValueError`` (from ``Limits``) for a cap below 1 byte.
    """
    return base.with_changes(send_buffer_hard_cap_bytes=max_backlog_bytes,
                             send_buffer_soft_cap_bytes=None)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the chat options to ``parser``."""
    add_server_options(parser, default_port=7001)
    parser.add_argument("--max-backlog", type=int, default=DEFAULT_BACKLOG_BYTES,
                        metavar="BYTES", help="disconnect a member with more than this many "
                                              "unread bytes queued (default 256 KiB)")


def run(args: Any) -> int:
    """Serve chat until SIGINT/SIGTERM; SystemExit with one line for a bad --max-backlog."""
    if args.max_backlog < 1:
        raise SystemExit("--max-backlog must be a whole number of bytes >= 1, got %d"
                         % args.max_backlog)
    return serve(args, ChatService().protocol, base_limits=chat_limits(args.max_backlog))
