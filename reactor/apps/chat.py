"""``python -m reactor chat``: line-based chat rooms that ``nc`` or ``telnet`` can join.

The protocol, as a user sees it (every line ends in ``\\n``; ``\\r\\n`` is fine)::

    server: welcome to reactor chat; enter a nick
    client: alice                      the first line is the nick (unique)
    server: * you are alice, in #lobby; /help lists commands
    client: hello                      plain lines go to the room ...
    others: alice: hello               ... as NICK: text
    client: /join python               /join ROOM, /who, /rooms, /msg NICK text,
                                       /quit, /help

A member who does not read must not slow the room down. Every message to
a member goes through that member's send buffer; past ``--max-backlog``
bytes (default 256 KiB) the member is disconnected with a logged reason,
and everyone else carries on. A line over 4 KiB gets an error line, and
the connection is closed (a line framer cannot tell where the next line
starts once one has run past its limit). The room hears why a member went:
``* bob left``, or ``* bob was disconnected (timeout)`` when a protection
(``docs/PROTECTIONS.md``) closed the connection. With ``--auth-token-file``
the first line is a token, and the welcome comes after it.
"""

import argparse
import logging
import re
from typing import Any, Dict, Optional, Set

from ..framed import FramedProtocol
from ..framing import FramingError, LineFramer
from .serving import add_server_options, serve

logger = logging.getLogger("reactor")

SUMMARY = "chat server: rooms, nicks and private messages over plain lines"
MAX_LINE_BYTES = 4096
DEFAULT_BACKLOG_BYTES = 256 * 1024
LOBBY = "lobby"
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
HELP = ("commands: /join ROOM, /who, /rooms, /msg NICK text, /quit, /help; "
        "anything else goes to your room")


class ChatService:
    """The shared state of one chat server: who is here, and in which room."""

    def __init__(self, max_backlog_bytes: int = DEFAULT_BACKLOG_BYTES) -> None:
        self.max_backlog_bytes = max_backlog_bytes
        self.members: Dict[str, "ChatMember"] = {}
        self.rooms: Dict[str, Set["ChatMember"]] = {}

    def protocol(self) -> "ChatMember":
        """The protocol factory: one ChatMember per connection."""
        return ChatMember(self)

    def enter(self, member: "ChatMember", room: str) -> None:
        self.rooms.setdefault(room, set()).add(member)
        member.room = room
        self.broadcast(room, "* %s joined #%s" % (member.nick, room), exclude=member)

    def leave(self, member: "ChatMember", why: str) -> None:
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
        data = line.encode("utf-8") + b"\n"
        for member in list(self.rooms.get(room, ())):
            if member is not exclude:
                member.deliver(data)


class ChatMember(FramedProtocol):
    """One connected chat user: first the nick, then lines and commands."""

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
            reason = getattr(exc, "reason", None)         # a protection closed it: say which
            self.service.leave(self, "left" if reason is None else "was disconnected (%s)"
                               % reason.replace("_", " "))
            self.service.members.pop(self.nick, None)

    # -- chat logic ---------------------------------------------------------

    def choose_nick(self, nick: str) -> None:
        if not NAME.match(nick):
            self.say("error: a nick is 1-32 letters, digits, '_', '-' or '.'; try again")
        elif nick in self.service.members:
            self.say("error: nick %s is taken; try another" % nick)
        else:
            self.nick = nick
            self.service.members[nick] = self
            self.say("* you are %s, in #%s; /help lists commands" % (nick, LOBBY))
            self.service.enter(self, LOBBY)

    def command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        service = self.service
        if name == "/join":
            if not NAME.match(rest):
                self.say("error: usage /join ROOM (1-32 letters, digits, '_', '-' or '.')")
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
                peer.deliver(("%s (private): %s\n" % (self.nick, text.strip())).encode("utf-8"))
        elif name == "/quit":
            self.say("* bye")
            self.transport.close()
        elif name == "/help":
            self.say(HELP)
        else:
            self.say("error: unknown command %s; %s" % (name, HELP))

    def say(self, line: str) -> None:
        """Send one line to this member."""
        self.deliver(line.encode("utf-8") + b"\n")

    def deliver(self, data: bytes) -> None:
        """Queue bytes for this member, disconnecting it if it has fallen too far behind."""
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(data)
        backlog = transport.get_write_buffer_size()
        if backlog > self.service.max_backlog_bytes:
            logger.warning("disconnecting %s (%s): %d bytes unread, over the %d-byte backlog cap",
                           self.nick or "a client", transport.get_extra_info("peername"),
                           backlog, self.service.max_backlog_bytes)
            transport.abort()


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the chat options to ``parser``."""
    add_server_options(parser, default_port=7001)
    parser.add_argument("--max-backlog", type=int, default=DEFAULT_BACKLOG_BYTES,
                        metavar="BYTES", help="disconnect a member with more than this many "
                                              "unread bytes queued (default 256 KiB)")


def run(args: Any) -> int:
    """Serve chat until SIGINT/SIGTERM."""
    service = ChatService(args.max_backlog)
    return serve(args, service.protocol)
