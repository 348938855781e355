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
turns the ``reason`` of the error the framework closed it with into the
notice. This module closes no one but a member who sends ``/quit``:

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

**A member who does not read** must cost bounded memory and must not slow
the room. ``chat_limits`` sets the transport's hard cap on its send buffer
(``Limits.send_buffer_hard_cap_bytes``, Redis's client-output-buffer-limit)
to ``--max-backlog`` (256 KiB): the write that passes it drops the buffer
and closes the member with ``SlowConsumerError``, which the server counts
and logs. The soft cap is off: chat lines are small, one number is enough.

**A member who sends too much** must not make the server work for everyone
else. One line to a room of N is N writes: 64 KB of ``a\\n`` to 200 members
once cost 70.8 MB and a minute of loop time. So every member has a *fan-out
budget*, a token bucket (``protect.ratelimit.TokenBucket``) of deliveries:
``--fanout-rate`` per second (20,000), bursts of a tenth of a second's worth
(2,000). A *delivery* is one line of up to 512 bytes written to one member;
each line a member's line causes is charged to that member::

    a line to the room     recipients x ceil(bytes / 512)  (a 4 KiB line: 9 each)
    /msg, a reply to you   ceil(bytes / 512)
    /join                  the leave and join notices, as lines to those rooms
    /who, /rooms           one per member (room) looked at, plus the reply

In debt, the member is *shaped*, not refused: its reading pauses, lines it
had already sent wait in ``inbox`` (in order), and a timer runs them when
the budget allows. Lines reaching others over T seconds are at most
``burst + rate x T`` deliveries, plus the one line that went into debt (a
line is never split). The burst is also what one callback may do for one
member, so it is small: 2,000 writes are 10-20 ms of loop time, and another
member's ``/help`` waits no longer. Discussion: we rejected dropping lines
over budget (a chat that loses lines is broken), and a per-line rate (it
does not see that a line to 2,000 costs 2,000 lines to 2). A budget per
member does not bound the sum over many flooding members: that is what
``--max-per-ip`` and ``--ip-msg-rate`` are for.

``/who`` and ``/rooms`` list at most 100 names (`` and N more``):
an unbounded reply in a big room would pass ``--max-backlog`` by itself.
Joins and leaves are announced only in rooms of at most 100 members, so
2,000 members coming in cost O(N) lines, not O(N^2).

**What a member cannot forge**: ``chat_text.py`` escapes control and format
characters in every line (ESC becomes ``\\x1b``), and a nick is a plain
ASCII word, unique ignoring case.

**Across processes** (``--redis``): a *relay* (``chat_redis.py``) hears each
join, leave and broadcast, and hands lines from others to ``fan_out``.
"""

import argparse
import collections
import heapq
import math
from typing import Any, Deque, Dict, List, Optional, Set

from ..framed import FramedProtocol
from ..framing import FramingError, LineFramer
from ..policy import DEFAULT_LIMITS, Limits, Rate
from ..protect.ratelimit import bucket
from .chat_redis import add_redis_options, redis_from_args, start_relay
from .chat_text import NICK, NICK_RULE, RESERVED_NICKS, ROOM, ROOM_RULE, printable
from ..tls import server_context
from .serving import add_server_options, limits_from_args, serve

SUMMARY = "chat server: rooms, nicks and private messages over plain lines"
#: The longest line a member may send, not counting its "\n" or "\r\n".
MAX_LINE_BYTES = 4096
#: Default ``--max-backlog``: unread bytes queued for one member before it is cut off.
DEFAULT_BACKLOG_BYTES = 256 * 1024
#: Default ``--fanout-rate``: deliveries per second a member's lines may cause.
DEFAULT_FANOUT_PER_SECOND = 20000
#: A member's burst, in seconds of its fan-out rate (see the module docstring).
FANOUT_BURST_SECONDS = 0.1
DEFAULT_FANOUT_RATE = Rate(DEFAULT_FANOUT_PER_SECOND,
                           burst=DEFAULT_FANOUT_PER_SECOND * FANOUT_BURST_SECONDS)
#: A delivery is one line of up to this many bytes (its "\n" included) to one member.
DELIVERY_BYTES = 512
#: Joins and leaves are announced only in rooms of at most this many members.
ANNOUNCE_MAX_MEMBERS = 100
#: /who and /rooms list at most this many names, then " and N more".
LIST_MAX_NAMES = 100
LOBBY = "lobby"
HELP = ("commands: /join ROOM, /who, /rooms, /msg NICK text, /quit, /help; "
        "anything else goes to your room")
MSG_USAGE = "error: usage /msg NICK text (to someone connected)"
#: What every member is told when the server begins to drain (SIGTERM, a reload).
RESTARTING = "* the server is restarting; you can stay until it closes, then reconnect"


class ChatService:
    """The shared state of one chat server: who is here, in which room, and the fan-out rules.

    ``fanout_rate`` is each member's delivery budget (None: no budget);
    rooms above ``announce_max_members`` hear no joins or leaves; /who and
    /rooms list at most ``list_max_names`` names.
    """

    def __init__(self, fanout_rate: Optional[Rate] = DEFAULT_FANOUT_RATE,
                 announce_max_members: int = ANNOUNCE_MAX_MEMBERS,
                 list_max_names: int = LIST_MAX_NAMES) -> None:
        self.fanout_rate = fanout_rate
        self.announce_max_members = announce_max_members
        self.list_max_names = list_max_names
        self.members: Dict[str, "ChatMember"] = {}          # nick.casefold() -> member
        self.rooms: Dict[str, Set["ChatMember"]] = {}
        self.fanout_holds = 0           # times a member's reading was paused for its budget
        self.relay: Any = None          # a chat_redis.RedisRelay, or None

    def protocol(self) -> "ChatMember":
        """Return a new ChatMember: the protocol factory, one member per connection."""
        return ChatMember(self)

    def stats(self) -> Dict[str, int]:
        """Return counts: members with a nick, rooms, and fan-out holds so far."""
        return {"members": len(self.members), "rooms": len(self.rooms),
                "fanout_holds": self.fanout_holds}

    def enter(self, member: "ChatMember", room: str) -> int:
        """Put ``member`` in ``room`` (made on first use), tell the others; return deliveries."""
        members = self.rooms.setdefault(room, set())
        members.add(member)
        member.room = room
        if self.relay is not None:
            self.relay.entered(member, room)
        return self.broadcast(room, "* %s joined #%s" % (member.nick, room), exclude=member,
                              here=len(members) <= self.announce_max_members)

    def leave(self, member: "ChatMember", why: str) -> int:
        """Take ``member`` out of its room, telling the others ``* NICK why``; return deliveries.

        An emptied room is forgotten, except the lobby.
        """
        room = member.room
        if room is None:
            return 0
        members = self.rooms.get(room, set())
        announce = len(members) <= self.announce_max_members
        members.discard(member)
        if not members and room != LOBBY:
            self.rooms.pop(room, None)
        member.room = None
        if self.relay is not None:
            self.relay.left(member, room)
        return self.broadcast(room, "* %s %s" % (member.nick, why), exclude=member, here=announce)

    def broadcast(self, room: str, line: str, exclude: Optional["ChatMember"] = None,
                  here: bool = True) -> int:
        """Send ``line`` to ``room`` but ``exclude``: here if ``here``, elsewhere by the relay."""
        data = encode_line(line)
        recipients = self.fan_out(room, data, exclude) if here else 0
        if self.relay is not None:
            recipients += self.relay.publish(room, line)
        return recipients * deliveries(data)

    def fan_out(self, room: str, data: bytes, exclude: Optional["ChatMember"] = None) -> int:
        """Write ``data`` to this process's ``room`` but ``exclude``; return to how many. A write
        may close one too far behind (its send-buffer cap): its connection_lost tells the room."""
        recipients = 0
        for member in list(self.rooms.get(room, ())):
            if member is not exclude:
                member.deliver(data)
                recipients += 1
        return recipients

    def who_line(self, room: str, nicks: List[str]) -> str:
        """Return the /who answer for ``room``, listing ``nicks``."""
        return "* in #%s: %s" % (room, listing(nicks, self.list_max_names))

    def rooms_line(self, sizes: Dict[str, int], total: Optional[int] = None) -> str:
        """Return the /rooms answer for ``sizes`` (room -> members) of ``total`` rooms."""
        return "* rooms: " + listing(["#%s (%d)" % item for item in sizes.items()],
                                     self.list_max_names, total)


class ChatMember(FramedProtocol):
    """One connected chat user: first the nick, then lines and commands.

    Callback order (``FramedProtocol``'s): ``connection_made`` (sends the
    greeting), ``frame_received`` per line, ``framing_error`` for a line over
    ``MAX_LINE_BYTES``, ``connection_lost`` (tells the room, once). Over its
    budget, lines wait in ``inbox`` and ``release`` runs them from a timer.
    """

    framer = LineFramer(max_length=MAX_LINE_BYTES)

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.nick: Optional[str] = None
        self.room: Optional[str] = None
        self.budget: Any = None                 # a TokenBucket of deliveries, or None
        #: Lines received while over budget, oldest first; None while not held.
        #: Not None exactly while our pause_reading() is in force.
        self.inbox: Optional[Deque[bytes]] = None
        self.release_timer: Any = None

    # -- protocol callbacks ------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.budget = bucket(self.service.fanout_rate, transport.loop.time())
        self.say("welcome to reactor chat; enter a nick")

    def frame_received(self, frame: Any) -> None:
        if self.inbox is not None:              # held: wait behind the lines already waiting
            self.inbox.append(bytes(frame))
            return
        wait = self.handle(frame)
        if wait and not self.transport.is_closing():
            self.inbox = collections.deque()
            self.service.fanout_holds += 1
            self.transport.pause_reading()
            self.release_timer = self.transport.loop.call_later(
                wait, self.transport.run_protected, self.release)

    def framing_error(self, exc: FramingError) -> None:
        self.say("error: line longer than %d bytes; closing" % MAX_LINE_BYTES)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self.release_timer is not None:
            self.release_timer.cancel()
        self.release_timer = self.inbox = None
        if self.nick is not None:
            reason = getattr(exc, "reason", None)         # the framework closed it: say why
            self.service.leave(self, "left" if reason is None else "was disconnected (%s)"
                               % reason.replace("_", " "))
            self.service.members.pop(self.nick.casefold(), None)
            if self.service.relay is not None:
                self.service.relay.gone(self)

    def shutdown_requested(self) -> None:
        """The server is draining (SIGTERM, a reload): say so once, and go on serving."""
        self.say(RESTARTING)

    # -- the fan-out budget ------------------------------------------------------

    def handle(self, frame: Any) -> float:
        """Act on one received line; return the seconds its deliveries put us in debt (or 0.0)."""
        line = printable(bytes(frame).decode("utf-8", "replace").strip())
        if self.nick is None:
            cost = self.choose_nick(line)
        elif line.startswith("/"):
            cost = self.command(line)
        elif line:
            cost = self.service.broadcast(self.room, "%s: %s" % (self.nick, line), exclude=self)
        else:
            return 0.0
        if self.budget is None:
            return 0.0
        return self.budget.take(cost, self.transport.loop.time())

    def release(self) -> None:
        """The budget has refilled: run waiting lines until it runs out again, then read on.

        Each call does at most the budget's worth of work plus one line, so a
        held member never holds the loop.
        """
        self.release_timer = None
        inbox = self.inbox
        transport = self.transport
        while inbox and not transport.is_closing():
            wait = self.handle(inbox.popleft())
            if wait:                            # in debt again (even with the inbox empty)
                self.release_timer = transport.loop.call_later(
                    wait, transport.run_protected, self.release)
                return
        self.inbox = None
        if not transport.is_closing():
            transport.resume_reading()

    # -- chat logic ---------------------------------------------------------

    def choose_nick(self, nick: str) -> int:
        """Take ``nick`` if it is valid and free, else say why; return the deliveries."""
        key = nick.casefold()
        if not NICK.fullmatch(nick):
            return self.say("error: a nick is %s; try again" % NICK_RULE)
        if key in self.service.members or key in RESERVED_NICKS:
            return self.say("error: nick %s is taken; try another" % nick)
        self.nick = nick
        self.service.members[key] = self
        return (self.say("* you are %s, in #%s; /help lists commands" % (nick, LOBBY))
                + self.service.enter(self, LOBBY))

    def command(self, line: str) -> int:
        """Run one ``/command`` line; return its deliveries. docs/CHAT.md lists each reply."""
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        service = self.service
        if name == "/join":
            if not ROOM.fullmatch(rest):
                return self.say("error: usage /join ROOM (%s)" % ROOM_RULE)
            if rest == self.room:
                return self.say("* you are already in #%s" % rest)
            cost = service.leave(self, "left for #%s" % rest)
            return cost + self.say("* you are in #%s" % rest) + service.enter(self, rest)
        if name == "/who":
            members = service.rooms.get(self.room, ())
            if service.relay is not None:               # answered after a round trip
                return len(members) + service.relay.who(self, self.room)
            return len(members) + self.say(service.who_line(self.room, [m.nick for m in members]))
        if name == "/rooms":
            if service.relay is not None:
                return len(service.rooms) + service.relay.rooms(self)
            return len(service.rooms) + self.say(service.rooms_line(
                {room: len(members) for room, members in service.rooms.items()}))
        if name == "/msg":
            target, _, text = rest.partition(" ")
            peer, data = service.members.get(target.casefold()), encode_line(
                "%s (private): %s" % (self.nick, text.strip()))
            if not text.strip() or peer is None and not (service.relay and NICK.fullmatch(target)):
                return self.say(MSG_USAGE)
            if peer is None:                            # elsewhere, perhaps: ask the relay
                service.relay.private(self, target, data, lambda: self.say(MSG_USAGE))
            else:
                peer.deliver(data)
            return deliveries(data)
        if name == "/quit":
            self.say("* bye")
            self.transport.close()
            return 0
        if name == "/help":
            return self.say(HELP)
        return self.say("error: unknown command %s; %s" % (name, HELP))

    def say(self, line: str) -> int:
        """Send one line to this member; return the deliveries it cost."""
        data = encode_line(line)
        self.deliver(data)
        return deliveries(data)

    def deliver(self, data: bytes) -> None:
        """Write one encoded line to this member (unless it is closing) and count the frame.

        Discussion: not ``send_frame``, which encodes per call (a broadcast
        encodes once for the room) and refuses lines over the framer's
        ``max_length``, our limit on what we *accept*: ``NICK: `` before a 4
        KiB line whose escapes grew is longer. So ``frames_out`` counts here.
        """
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(data)           # past --max-backlog this closes us (slow consumer)
        self.frames_out += 1


def fanout_budget(deliveries_per_second: float) -> Rate:
    """Return the budget ``--fanout-rate`` means: that rate, bursts of ``FANOUT_BURST_SECONDS``."""
    return Rate(deliveries_per_second,
                burst=max(deliveries_per_second * FANOUT_BURST_SECONDS, 1.0))


def listing(names: List[str], limit: int, total: Optional[int] = None) -> str:
    """Join the ``limit`` smallest ``names`` with ", ", then `` and N more`` of ``total``
    (default: all). "#ROOM (N)" sorts as ROOM does: no room name holds a space."""
    first = heapq.nsmallest(limit, names)
    more = (len(names) if total is None else total) - len(first)
    return ", ".join(first) + (" and %d more" % more if more > 0 else "")


def deliveries(data: bytes) -> int:
    """Return what writing ``data`` to one member costs: one per started ``DELIVERY_BYTES``."""
    return (len(data) + DELIVERY_BYTES - 1) // DELIVERY_BYTES


def encode_line(line: str) -> bytes:
    """Return ``line`` as it goes on the wire: UTF-8 and ``\\n``.

    ``line`` holds no newline: text comes from one received line, escaped
    by ``printable``, and nicks and room names cannot contain one.
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
    parser.add_argument("--fanout-rate", type=float, default=DEFAULT_FANOUT_PER_SECOND,
                        metavar="DELIVERIES_PER_S",
                        help="lines (of up to 512 bytes, to one member each) a member's "
                             "lines may cause per second, bursts of 0.1 s worth; past it the "
                             "member's reading pauses (default 20000; 0: no limit)")
    parser.add_argument("--web-port", type=int, metavar="W",
                        help="also serve the rooms to browsers: GET / on port W is a chat "
                             "page, /ws its WebSocket (same --host, TLS and protections)")
    add_redis_options(parser)


def run(args: Any) -> int:
    """Serve chat until SIGINT/SIGTERM; SystemExit with one line for a bad option."""
    if args.max_backlog < 1:
        raise SystemExit("--max-backlog must be a whole number of bytes >= 1, got %d"
                         % args.max_backlog)
    if not 0 <= args.fanout_rate < math.inf:                # also refuses NaN
        raise SystemExit("--fanout-rate must be a finite number >= 0 (0: no limit), got %g"
                         % args.fanout_rate)
    redis = redis_from_args(args)
    limits = chat_limits(args.max_backlog)
    served: Dict[str, Any] = {}         # this process's service and relay

    def prepare(loop: Any) -> Any:        # in each worker, after the fork: its own rooms
        service = served["service"] = ChatService(
            fanout_budget(args.fanout_rate) if args.fanout_rate else None)
        if redis is not None:
            service.relay = served["relay"] = start_relay(loop, service, redis, args)
        return service.protocol

    def web(loop: Any, sockets: Optional[List[Any]] = None) -> List[Any]:
        if args.web_port is None:
            return []
        from .chat_web import build_web_app           # only a web-port chat needs HTTP
        tls = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
        return [loop.listen_http(build_web_app(served["service"]), args.host or None,
                                 args.web_port, sockets=sockets[0] if sockets else None,
                                 limits=limits_from_args(args, limits), ssl=tls)]

    return serve(args, None, base_limits=limits, setup=prepare, companions=web,
                 on_stop=lambda: served.get("relay") and served["relay"].close(),
                 companion_ports=[] if args.web_port is None else [args.web_port])
