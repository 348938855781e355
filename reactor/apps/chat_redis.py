"""``chat --redis URL``: the rooms of every chat process that names the same Redis, shared.

One chat process keeps its rooms in memory (``chat.py``). Several
processes (``--workers``, or hosts behind a load balancer) share them
through Redis: pub/sub carries what is said, sorted sets with expiring
entries say who is where. ``ChatService`` knows none of it: it calls the
hooks of :class:`RedisRelay`, and this module does the rest. What lives in
Redis (every name starts ``reactor-chat:``)::

    DB:room:ROOM  channel  each line to #ROOM: "ORIGIN LINE"  subscribed while #ROOM has
                                                             a member in this process
    DB:nick:NICK  channel  each /msg to NICK (casefolded)    subscribed while NICK is here
    who:ROOM      zset     "NICK ORIGIN" -> expiry           read by /who
    rooms         zset     ROOM -> expiry                    read by /rooms

Pub/sub ignores the database a connection SELECTed, so the channels carry
the ``/DB`` of the URL in their names: two chats on one Redis, each with a
database of its own, stay apart.

**Once per member, and never back to its sender.** The process a line is
typed in delivers it to its own members at once, as without Redis, then
PUBLISHes it tagged with its *origin*, a random id per process. Redis sends
it to every subscribed process, the publisher included, and each drops what
carries its own origin::

    process A: alice says hi  -> A's members of #lobby get "alice: hi" (now)
                              -> PUBLISH reactor-chat:0:room:lobby "3f9a... alice: hi"
    Redis -> A: origin 3f9a... is mine: dropped
    Redis -> B: B's members of #lobby get "alice: hi"

Discussion: one channel per room, not one for all, so that Redis does the
filtering and a process hears only the rooms it has members in. The cost
is a SUBSCRIBE when a room gets its first member here, an UNSUBSCRIBE when
it loses its last. A /msg to a nick that is not here is PUBLISHed on that
nick's channel; PUBLISH answers how many processes heard it, and 0 means
nobody has that nick, which is the sender's error line.

**Membership that outlives no crash.** Each process ZADDs its members to
``who:ROOM`` with their expiry as the score, and rewrites them every third
of ``--redis-member-ttl`` (30 s); a reader purges what has expired
(ZREMRANGEBYSCORE) before it reads. A process that dies, however it dies,
stops rewriting, and its members are gone from every /who within the TTL.
Discussion: Redis 7.4 can expire hash fields itself (HEXPIRE); a sorted set
works on every Redis. The scores are in *Redis's* clock, not the hosts':
on each connect a process asks ``TIME`` and keeps the offset to its loop's
monotonic clock, so hosts whose clocks disagree still agree on what has
expired (and nothing here reads a wall clock).

**Two connections.** A subscribed RESP connection takes only (UN)SUBSCRIBE,
so ``messages`` holds the subscriptions and ``commands`` sends PUBLISH,
ZADD and the reads. Both reconnect with back-off (``RespClient``);
``messages`` re-subscribes by itself, and ``commands`` asks TIME again and
rewrites this process's members (a restarted Redis has none).

**While Redis is down** local chat is unchanged. A line said meanwhile is
not queued for later: it reaches this process's members only (a line
arriving minutes late, out of its conversation, is worse than none). /who
and /rooms answer for this process, after a line saying so. One warning
is logged when the link goes, one info line when it is back. A refused
AUTH or TLS certificate is an error, and stops a process that is starting.

**Budget.** A sender pays on its own process for the members elsewhere too,
as last counted (ZCOUNT, each rewrite); delivering a line from elsewhere
charges nobody.
"""

import functools
import heapq
import logging
import math
import os
import ssl
from typing import Any, Callable, Dict, List, Optional, Set

from ..resp.client import connect_resp
from ..resp.codec import ReplyError
from ..tls import client_context, describe_tls_error
from .chat_text import printable
from .redis_url import URL_FORM, RedisAddress, parse_redis_url

logger = logging.getLogger("reactor")

#: Default ``--redis-member-ttl``: a crashed process's members vanish from /who this soon.
DEFAULT_MEMBER_TTL_SECONDS = 30.0
#: How long a starting process waits for Redis to answer (or refuse) before serving anyway.
STARTUP_WAIT_SECONDS = 5.0
#: Said before a /who or /rooms answer that Redis could not take part in.
LOCAL_ONLY = "* redis is unreachable: this answer lists this server's members only"
ROOM_CHANNEL, NICK_CHANNEL = "reactor-chat:%d:room:", "reactor-chat:%d:nick:"  # % db
WHO_KEY, ROOMS_KEY = "reactor-chat:who:", "reactor-chat:rooms"


class RedisRelay:
    """Share one ``ChatService``'s rooms with the other processes on ``address``.

    ``ChatService`` calls the hooks; ``member`` is a ``ChatMember``. None of
    them waits for Redis, and none re-enters the service but to deliver::

        entered(member, room)   the member is in room now (its notice follows)
        left(member, room)      ... is not (its notice follows)
        gone(member)            its connection ended: its nick is free here
        publish(room, line)     send a line to the room elsewhere; return how
                                many members elsewhere it reaches, as last counted
        private(member, nick, data, nobody)   /msg to a nick that is not here;
                                nobody() runs if no process has it
        who(member, room), rooms(member)      answer the command later; return 1,
                                the delivery its answer will cost

    ``close()`` ends both links. ``up``: None until the first connect or
    failure, then whether both links work; ``refused``: the error that
    ended them for good (a refused AUTH or certificate), else None.
    """

    def __init__(self, loop: Any, service: Any, address: RedisAddress,
                 ssl_context: Optional[ssl.SSLContext] = None,
                 member_ttl_seconds: float = DEFAULT_MEMBER_TTL_SECONDS) -> None:
        self.loop, self.service, self.address = loop, service, address
        self.origin = os.urandom(8).hex().encode("ascii")     # this process, on the wire
        self.member_ttl_ms = int(member_ttl_seconds * 1000)
        self.clock_offset_ms: Optional[float] = None     # Redis's TIME - loop.time(), once known
        self.up: Optional[bool] = None
        self.refused: Optional[BaseException] = None
        self.remote_members: Dict[str, int] = {}         # room -> members elsewhere, last counted
        self.nick_channels: Set[str] = set()             # casefolded nicks subscribed to
        self.room_channel = ROOM_CHANNEL % address.db
        self.nick_channel = NICK_CHANNEL % address.db
        options = dict(username=address.username, password=address.password, db=address.db,
                       ssl=ssl_context, reconnect=True, on_connect=self._connected,
                       on_error=self._failed)
        self.commands = connect_resp(loop, address.host, address.port, **options)
        self.messages = connect_resp(loop, address.host, address.port, **options)
        self.refresher = loop.call_every(member_ttl_seconds / 3, self.refresh)

    # -- the hooks ChatService calls --------------------------------------------------------

    def entered(self, member: Any, room: str) -> None:
        """Subscribe to ``room`` (and the member's nick) if new here; add the member in Redis."""
        if len(self.service.rooms[room]) == 1:
            self.messages.subscribe(self.room_channel + room, on_message=self._room_line)
        nick = member.nick.casefold()
        if nick not in self.nick_channels:
            self.nick_channels.add(nick)
            self.messages.subscribe(self.nick_channel + nick, on_message=self._private_line)
        if self.clock_offset_ms is not None:              # else the first TIME's refresh adds it
            expiry = self._redis_now_ms() + self.member_ttl_ms
            self.commands.pipeline([("ZADD", WHO_KEY + room, expiry, self._entry(member)),
                                    ("PEXPIRE", WHO_KEY + room, self.member_ttl_ms),
                                    ("ZADD", ROOMS_KEY, expiry, room),
                                    ("PEXPIRE", ROOMS_KEY, self.member_ttl_ms)])

    def left(self, member: Any, room: str) -> None:
        """Remove the member from ``room`` in Redis; unsubscribe if nobody here is left in it."""
        self.commands.command("ZREM", WHO_KEY + room, self._entry(member))
        if not self.service.rooms.get(room):
            self.messages.unsubscribe(self.room_channel + room)
            self.remote_members.pop(room, None)

    def gone(self, member: Any) -> None:
        """Stop hearing private messages for the member's nick."""
        nick = member.nick.casefold()
        if nick in self.nick_channels:
            self.nick_channels.discard(nick)
            self.messages.unsubscribe(self.nick_channel + nick)

    def publish(self, room: str, line: str) -> int:
        """Send ``line`` to ``room`` in the other processes (not if Redis is down); return the
        number of members there as last counted, for the sender's budget."""
        if not self.commands.connected:
            return 0
        self.commands.command("PUBLISH", self.room_channel + room,
                              self.origin + b" " + line.encode("utf-8"))
        return self.remote_members.get(room, 0)

    def private(self, member: Any, nick: str, data: bytes, nobody: Callable[[], Any]) -> None:
        """PUBLISH the line ``data`` on ``nick``'s channel; run ``nobody()`` if nobody heard it."""
        def answered(heard: Any, error: Optional[BaseException]) -> None:
            if (error is not None or not isinstance(heard, int) or heard == 0) \
                    and not member.transport.is_closing():
                nobody()
        if not self.commands.connected:
            nobody()
            return
        self.commands.command("PUBLISH", self.nick_channel + nick.casefold(),
                              self.origin + b" " + data.rstrip(b"\n"), callback=answered)

    def who(self, member: Any, room: str) -> int:
        """Answer /who for ``room`` once Redis has: every live entry, and ours."""
        def answered(reply: Any) -> None:
            if member.transport.is_closing():            # gone meanwhile: nobody to answer
                return
            if not isinstance(reply.value, list):
                return self._answer_here(member, lambda: self._who_here(room))
            entries = set(reply.value)
            entries.update(self._entry(other) for other in self.service.rooms.get(room, ()))
            member.say(self.service.who_line(room, [
                printable(entry.rpartition(b" ")[0].decode("utf-8", "replace"))
                for entry in entries]))
        if not self._can_ask():
            self._answer_here(member, lambda: self._who_here(room))
        else:
            self.commands.pipeline([
                ("ZREMRANGEBYSCORE", WHO_KEY + room, "-inf", "(%d" % self._redis_now_ms()),
                ("ZRANGE", WHO_KEY + room, 0, -1)])[-1].add_done_callback(answered)
        return 1

    def rooms(self, member: Any) -> int:
        """Answer /rooms once Redis has: its live rooms and ours, each with its live members.

        Two round trips: the rooms, then a ZCOUNT for each of the first
        ``list_max_names``. A room emptied elsewhere shows ``(0)`` until it expires.
        """
        service = self.service

        def listed(reply: Any) -> None:
            if not isinstance(reply.value, list):
                return self._answer_here(member, self._rooms_here)
            names = {printable(name.decode("utf-8", "replace")) for name in reply.value}
            names.update(service.rooms)                  # never empty: the member is in one
            first = heapq.nsmallest(service.list_max_names, names)
            counts = self.commands.pipeline([("ZCOUNT", WHO_KEY + room, now, "+inf")
                                             for room in first])
            counts[-1].add_done_callback(lambda _: counted(first, counts, len(names)))

        def counted(first: List[str], counts: List[Any], total: int) -> None:
            if not member.transport.is_closing():
                member.say(service.rooms_line({room: max(
                    len(service.rooms.get(room, ())),
                    count.value if isinstance(count.value, int) else 0)
                    for room, count in zip(first, counts)}, total))
        if not self._can_ask():
            self._answer_here(member, self._rooms_here)
            return 1
        now = self._redis_now_ms()
        self.commands.pipeline([("ZREMRANGEBYSCORE", ROOMS_KEY, "-inf", "(%d" % now),
                                ("ZRANGE", ROOMS_KEY, 0, -1)])[-1].add_done_callback(listed)
        return 1

    def close(self) -> None:
        """Stop rewriting and close both links (idempotent)."""
        self.refresher.cancel()
        self.commands.close()
        self.messages.close()

    # -- membership in Redis ----------------------------------------------------------------

    def refresh(self) -> None:
        """Rewrite this process's members with fresh expiries; count each room's others.

        Runs every third of the TTL and after each connect: O(members here)
        entries in one pipeline.
        """
        if self.clock_offset_ms is None or not self.commands.connected:
            return
        now = self._redis_now_ms()
        expiry, ttl = now + self.member_ttl_ms, self.member_ttl_ms
        commands: List[Any] = []
        rooms = [room for room, members in self.service.rooms.items() if members]
        for room in rooms:
            key = WHO_KEY + room
            commands += [["ZADD", key] + [item for member in self.service.rooms[room]
                                          for item in (expiry, self._entry(member))],
                         ("PEXPIRE", key, ttl), ("ZCOUNT", key, now, "+inf")]
        if rooms:
            commands += [["ZADD", ROOMS_KEY] + [item for room in rooms for item in (expiry, room)],
                         ("PEXPIRE", ROOMS_KEY, ttl)]
        replies = self.commands.pipeline(commands)
        for index, room in enumerate(rooms):
            replies[3 * index + 2].add_done_callback(functools.partial(self._counted, room))

    def _counted(self, room: str, reply: Any) -> None:
        if isinstance(reply.value, int) and room in self.service.rooms:
            self.remote_members[room] = max(0, reply.value - len(self.service.rooms[room]))

    def _entry(self, member: Any) -> bytes:
        return member.nick.encode("ascii") + b" " + self.origin

    def _redis_now_ms(self) -> int:
        return int(self.loop.time() * 1000 + (self.clock_offset_ms or 0.0))

    def _can_ask(self) -> bool:
        return self.commands.connected and self.clock_offset_ms is not None

    # -- what Redis sends ---------------------------------------------------------------------

    def _room_line(self, channel: bytes, payload: bytes) -> None:
        # Runs once per line said in another process: a partition, a lookup, one fan-out.
        origin, _, line = payload.partition(b" ")
        if origin == self.origin:                        # ours, back from Redis: delivered
            return
        room = channel[len(self.room_channel):].decode("ascii", "replace")
        members = self.service.rooms.get(room)
        if not members:
            return
        text = printable(line.decode("utf-8", "replace"))  # idempotent on what we escaped
        if text.startswith("* ") and len(members) > self.service.announce_max_members:
            return                                       # a big room here hears no notices
        self.service.fan_out(room, text.encode("utf-8") + b"\n")

    def _private_line(self, channel: bytes, payload: bytes) -> None:
        # No origin check: the nick may have arrived here since we published.
        nick = channel[len(self.nick_channel):].decode("ascii", "replace")
        member = self.service.members.get(nick)
        if member is not None:
            line = payload.partition(b" ")[2].decode("utf-8", "replace")
            member.deliver(printable(line).encode("utf-8") + b"\n")

    # -- the links' life ----------------------------------------------------------------------

    def _connected(self, client: Any) -> None:
        if client is self.commands:
            client.command("TIME", callback=self._timed)
        if self.commands.connected and self.messages.connected and not self.up:
            if self.up is False:
                logger.info("redis %s is reachable again: rooms are shared again", self.address)
            self.up = True

    def _timed(self, value: Any, error: Optional[BaseException]) -> None:
        if error is None and isinstance(value, list) and len(value) == 2:
            seconds, microseconds = int(value[0]), int(value[1])
            self.clock_offset_ms = seconds * 1000 + microseconds / 1000 - self.loop.time() * 1000
            self.refresh()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, (ReplyError, ssl.SSLCertVerificationError)):
            if self.refused is None:                     # retrying cannot help: stop both
                self.refused = exc
                logger.error("redis %s: %s; rooms are no longer shared with other processes",
                             self.address, describe_refusal(exc))
                self.close()
            return
        if self.up is not False:
            self.up = False
            logger.warning("redis %s is unreachable (%s): rooms reach this process's members "
                           "only until it is back; retrying", self.address, exc)

    def _answer_here(self, member: Any, line: Callable[[], str]) -> None:
        if not member.transport.is_closing():
            member.say(LOCAL_ONLY)
            member.say(line())

    def _who_here(self, room: str) -> str:
        return self.service.who_line(room, [m.nick for m in self.service.rooms.get(room, ())])

    def _rooms_here(self) -> str:
        return self.service.rooms_line({room: len(members)
                                        for room, members in self.service.rooms.items()})


def describe_refusal(exc: BaseException) -> str:
    """Say in one line why Redis refused us, and what to check."""
    if isinstance(exc, ReplyError):
        return "refused the login: %s (check the user, password and /DB of --redis)" % exc
    return "TLS %s (for a private CA, give --redis-ca FILE)" % describe_tls_error(exc)


def add_redis_options(parser: Any) -> None:
    """Add ``--redis``, ``--redis-ca`` and ``--redis-member-ttl`` to ``parser``."""
    parser.add_argument("--redis", metavar="URL",
                        help="share the rooms with every chat process using this Redis: "
                             + URL_FORM + " (docs/CHAT.md)")
    parser.add_argument("--redis-ca", metavar="FILE",
                        help="trust this CA (PEM) for a rediss:// server (default: the system's)")
    parser.add_argument("--redis-member-ttl", type=float, default=DEFAULT_MEMBER_TTL_SECONDS,
                        metavar="SECONDS", help="a member of a process that stops refreshing "
                        "(it crashed) leaves /who this soon (default 30)")


def redis_from_args(args: Any) -> Optional[RedisAddress]:
    """Return ``--redis``'s address (None without it); SystemExit in one line if unusable.

    ``--workers`` N > 1 needs it: each worker would have rooms of its own.
    """
    if args.redis is None:
        if args.redis_ca:
            raise SystemExit("--redis-ca needs --redis rediss://...")
        if (args.workers or 1) > 1:
            raise SystemExit("chat --workers needs --redis: without it each worker would "
                             "have rooms of its own")
        return None
    try:
        address = parse_redis_url(args.redis)
    except ValueError as exc:
        raise SystemExit("--redis %s" % exc) from None
    if args.redis_ca and not address.tls:
        raise SystemExit("--redis-ca is for TLS: write rediss:// in --redis")
    if not 0.1 <= args.redis_member_ttl < math.inf:      # also refuses NaN
        raise SystemExit("--redis-member-ttl must be a number of seconds >= 0.1, got %g"
                         % args.redis_member_ttl)
    if address.tls:
        _tls_context(args)                               # a bad CA file stops us here
    return address


def start_relay(loop: Any, service: Any, address: RedisAddress, args: Any) -> RedisRelay:
    """Connect ``service`` to Redis on ``loop``, waiting up to ``STARTUP_WAIT_SECONDS`` for it.

    Raises SystemExit in one line if Redis refuses the login or its
    certificate is refused: a wrong password at start is a mistake to fix
    now. An unreachable Redis is not: it is logged, and the relay keeps
    trying while the server serves its own members.
    """
    relay = RedisRelay(loop, service, address, _tls_context(args) if address.tls else None,
                       args.redis_member_ttl)
    deadline = loop.time() + STARTUP_WAIT_SECONDS
    while relay.up is None and relay.refused is None and loop.time() < deadline:
        loop.run_once(0.05)
    if relay.refused is not None:
        relay.close()
        raise SystemExit("--redis %s: %s" % (address, describe_refusal(relay.refused)))
    return relay


def _tls_context(args: Any) -> ssl.SSLContext:
    try:
        return client_context(cafile=args.redis_ca)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit("--redis-ca %s: %s" % (args.redis_ca, exc)) from None
