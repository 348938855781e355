"""``python -m reactor kv``: a Redis-compatible key-value server (RESP2).

``redis-cli`` and ``redis-benchmark`` drive it as they drive redis-server,
and its replies are redis-server 7's, byte for byte, for the commands it
has (``kv_commands.py``: strings, keys, expiry; ``kv_session.py``:
connection, pub/sub, server). The layers, bottom up::

    resp/codec.py      bytes <-> commands and replies (sans-I/O)
    dispatch.py        command name -> handler, arity, Redis's error texts
    resp/protocol.py   one connection: parse, execute, answer a pipeline in one write
    kv.py (here)       the server's state and the gate before each command
    kv_store.py        keys, values, deadlines on the wheel, memory estimate
    kv_aof.py          the append-only file

Before a command runs, ``KVProtocol.execute`` applies Redis's checks in
Redis's order: known command and arity (the router), ``NOAUTH`` when a
password is set and not given, ``OOM`` for a growing write over
``--maxmemory``, and the pub/sub-mode restriction. Writes are appended to
the append-only file, which is flushed to the OS before the replies of
the batch are written: an acknowledged write survives a ``kill -9``.

``--auth-token-file`` maps to Redis's AUTH (``redis-cli -a TOKEN``), not to
reactor's own token handshake, because redis clients speak AUTH.
"""

import argparse
import itertools
import logging
import os
import sys
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from ..protect.auth import TokenAuth
from ..resp.codec import ReplyError, encode_reply
from ..resp.protocol import Replies, RespServerProtocol
from . import kv_session
from .kv_aof import FSYNC_POLICIES, AofCorruptError, AppendOnlyFile
from .kv_commands import router
from .kv_store import Keyspace
from .serving import add_server_options, header_token_auth, serve

logger = logging.getLogger("reactor")

SUMMARY = "a Redis-compatible key-value server (RESP2) for redis-cli and redis-benchmark"
DEFAULT_PORT = 6380
NOAUTH = ReplyError("NOAUTH Authentication required.")
OOM = ReplyError("OOM command not allowed when used memory > 'maxmemory'.")


class KVServer:
    """What every connection shares: the keyspace, the channels, the file, the counters."""

    def __init__(self, loop: Any, maxmemory: int = 0, auth: Optional[TokenAuth] = None,
                 port: int = DEFAULT_PORT) -> None:
        self.loop = loop
        self.keys = Keyspace(loop)
        self.maxmemory = maxmemory
        self.auth = auth
        self.port = port
        self.aof: Optional[AppendOnlyFile] = None
        self.channels: Dict[bytes, Set["KVProtocol"]] = {}
        self.patterns: Dict[bytes, Set["KVProtocol"]] = {}
        self.pattern_regexes: Dict[bytes, Any] = {}
        self.clients: Set["KVProtocol"] = set()
        self.listener: Any = None               # the reactor Server, for INFO
        self.maxclients = 0                     # --max-connections, for INFO and CONFIG GET
        self.timeout = 0.0                      # --idle-timeout, likewise
        self.started = time.time()
        self._ids = itertools.count(1)
        self.stats = dict(total_commands_processed=0, total_connections_received=0,
                          pubsub_messages=0, rejected_oom=0)

    def protocol(self) -> "KVProtocol":
        """Make the protocol of one new connection (the server's protocol factory)."""
        return KVProtocol(self, next(self._ids))

    def open_aof(self, path: str, fsync: str) -> int:
        """Replay ``path`` into the keyspace, then append to it; return the commands replayed."""
        self.aof, commands = AppendOnlyFile.open_and_replay(path, fsync)
        aof, self.aof = self.aof, None                  # replaying must not append again
        replayer = KVProtocol(self, 0)
        replayer.authenticated = True
        for argv in commands:
            reply = router.dispatch(replayer, argv)
            if isinstance(reply, ReplyError):
                logger.warning("kv: append-only file %s: replaying %s gave %s", path,
                               argv[0].decode("utf-8", "replace"), reply)
        self.aof = aof
        if fsync == "everysec":
            self.loop.call_every(1.0, aof.tick)
        return len(commands)

    def propagate(self, argv: List[bytes]) -> None:
        """Record a write in the append-only file, if there is one."""
        if self.aof is not None:
            self.aof.append(argv)

    def publish(self, channel: bytes, payload: bytes) -> int:
        """Send ``payload`` to every subscriber of ``channel``; return how many got it."""
        receivers = 0
        for conn in self.channels.get(channel, ()):
            conn.push([b"message", channel, payload])
            receivers += 1
        for pattern, members in self.patterns.items():
            if self.pattern_regexes[pattern].match(channel):
                for conn in members:
                    conn.push([b"pmessage", pattern, channel, payload])
                    receivers += 1
        self.stats["pubsub_messages"] += receivers
        return receivers

    def config(self) -> List[Tuple[bytes, bytes]]:
        """Return CONFIG GET's (name, value) pairs."""
        aof = self.aof
        return [(name.encode(), str(value).encode()) for name, value in (
            ("save", ""), ("appendonly", "yes" if aof else "no"),
            ("appendfsync", aof.fsync if aof else "everysec"), ("maxmemory", self.maxmemory),
            ("maxmemory-policy", "noeviction"), ("port", self.port), ("databases", 1),
            ("requirepass", "" if self.auth is None else "*"), ("maxclients", self.maxclients),
            ("timeout", "%g" % self.timeout))]

    def info_sections(self) -> List[Tuple[str, List[Tuple[str, Any]]]]:
        """Return INFO's sections: server, clients, memory, persistence, stats, keyspace."""
        uptime = int(time.time() - self.started)
        listener = self.listener.stats() if self.listener is not None else {}
        blocked = sum(1 for conn in self.clients if conn.channels or conn.patterns)
        keyspace = ([("db0", "keys=%d,expires=%d,avg_ttl=0"
                      % (len(self.keys), len(self.keys.expires)))] if len(self.keys) else [])
        return [
            ("Server", [("redis_version", kv_session.REDIS_VERSION), ("redis_mode", "standalone"),
                        ("implementation", "reactor kv (Python %s)" % sys.version.split()[0]),
                        ("process_id", os.getpid()), ("tcp_port", self.port),
                        ("uptime_in_seconds", uptime), ("uptime_in_days", uptime // 86400)]),
            ("Clients", [("connected_clients", len(self.clients)),
                         ("pubsub_clients", blocked), ("maxclients", self.maxclients)]),
            ("Memory", [("used_memory", self.keys.used_memory), ("maxmemory", self.maxmemory),
                        ("maxmemory_policy", "noeviction")]),
            ("Persistence", [("aof_enabled", int(self.aof is not None)),
                             ("aof_current_size", os.path.getsize(self.aof.path)
                              if self.aof else 0)]),
            ("Stats", [("total_connections_received", self.stats["total_connections_received"]),
                       ("total_commands_processed", self.stats["total_commands_processed"]),
                       ("expired_keys", self.keys.expired_keys),
                       ("pubsub_channels", len(self.channels)),
                       ("pubsub_patterns", len(self.patterns)),
                       ("rejected_connections", listener.get("rejected", 0))]),
            ("Keyspace", keyspace)]

    def reset_stats(self) -> None:
        for name in self.stats:
            self.stats[name] = 0

    def close(self) -> None:
        """Flush and close the append-only file (at shutdown)."""
        if self.aof is not None:
            self.aof.close()


class KVProtocol(RespServerProtocol):
    """One client connection: its auth state, its name, its subscriptions."""

    router = router

    def __init__(self, server: KVServer, client_id: int) -> None:
        self.server = server
        self.loop = server.loop
        self.client_id = client_id
        self.client_name: Optional[bytes] = None
        self.authenticated = server.auth is None
        # Dicts as ordered sets: an UNSUBSCRIBE of all answers in subscription order.
        self.channels: Dict[bytes, None] = {}
        self.patterns: Dict[bytes, None] = {}

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.server.clients.add(self)
        self.server.stats["total_connections_received"] += 1

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        server = self.server
        server.clients.discard(self)
        for held, registry in ((self.channels, server.channels), (self.patterns, server.patterns)):
            for name in held:
                members = registry.get(name)
                if members is not None:
                    members.discard(self)
                    if not members:
                        del registry[name]
                        if registry is server.patterns:
                            del server.pattern_regexes[name]

    def execute(self, argv: List[bytes]) -> Any:
        """Check the command as Redis does, in Redis's order, then run it."""
        # Hot path: once per command. Plain GET/SET pass four tests.
        server = self.server
        server.stats["total_commands_processed"] += 1
        command = router.lookup(argv)
        if command.__class__ is ReplyError:
            return command
        if not self.authenticated and command.name not in ("auth", "hello", "quit"):
            return NOAUTH
        if server.maxmemory and "denyoom" in command.flags \
                and server.keys.used_memory > server.maxmemory:
            server.stats["rejected_oom"] += 1
            return OOM
        if (self.channels or self.patterns) and command.name not in kv_session.PUBSUB_ALLOWED:
            return ReplyError("ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE "
                              "/ PING / QUIT / RESET are allowed in this context" % command.name)
        return command.handler(self, argv)

    def before_replies(self) -> None:
        """Hand the batch's writes to the OS before its replies leave (a ``kill -9`` keeps them)."""
        aof = self.server.aof
        if aof is not None:
            aof.flush()

    def push(self, message: List[bytes]) -> None:
        """Send a pub/sub message (the send-buffer caps cut a subscriber that stops reading)."""
        transport = self.transport
        if not transport.is_closing():
            transport.write(encode_reply(message))


def configure(parser: argparse.ArgumentParser) -> None:
    """Add kv's options to its sub-parser."""
    add_server_options(parser, DEFAULT_PORT)
    for action in parser._actions:                 # kv speaks AUTH, not reactor's handshake
        if action.dest == "auth_token_file":
            action.help = ("require AUTH with one of FILE's tokens (one per line, # comments "
                           "skipped): redis-cli -a TOKEN")
        elif action.dest == "psk_file":
            action.help = argparse.SUPPRESS
    parser.add_argument("--appendonly", metavar="FILE",
                        help="append every write to FILE (RESP) and replay it at start")
    parser.add_argument("--appendfsync", choices=FSYNC_POLICIES, default="everysec",
                        help="when the file is fsynced (default everysec)")
    parser.add_argument("--maxmemory", type=int, default=0, metavar="BYTES",
                        help="refuse growing writes (OOM) past about BYTES of data (0: no limit)")


def run(args: Any) -> int:
    """Serve kv until SIGINT/SIGTERM; SystemExit with one line for a bad option or file."""
    if args.maxmemory < 0:
        raise SystemExit("--maxmemory must be a whole number of bytes >= 0 (0: no limit), got %d"
                         % args.maxmemory)
    if args.psk_file:
        raise SystemExit("kv authenticates with Redis's AUTH: use --auth-token-file, "
                         "not --psk-file")
    if args.workers:
        raise SystemExit("kv keeps its keyspace in one process, so --workers would split it "
                         "into N databases that disagree; run one kv (or redis-server)")
    auth = header_token_auth(args)          # AUTH, not reactor's handshake, checks the token
    holder: Dict[str, KVServer] = {}

    def prepare(loop: Any) -> Any:
        server = holder["server"] = KVServer(loop, args.maxmemory, auth,
                                             0 if args.unix else args.port)
        server.maxclients = args.max_connections or 0
        server.timeout = args.idle_timeout or 0.0
        if args.appendonly:
            try:
                count = server.open_aof(args.appendonly, args.appendfsync)
            except (AofCorruptError, OSError) as exc:
                raise SystemExit("cannot use --appendonly %s: %s" % (args.appendonly, exc)) \
                    from None
            logger.info("kv: replayed %d command(s) from %s (appendfsync %s)", count,
                        args.appendonly, args.appendfsync)
        return server.protocol

    def listening(listener: Any) -> None:
        server = holder["server"]
        server.listener = listener
        address = listener.addresses[0]
        if not isinstance(address, str):                 # TCP: the port --port 0 picked
            server.port = address[1]

    try:
        return serve(args, None, setup=prepare, listening=listening)
    finally:
        if "server" in holder:
            holder["server"].close()


__all__ = ["KVServer", "KVProtocol", "Replies", "configure", "run"]
