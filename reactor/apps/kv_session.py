"""The connection, pub/sub and server commands of ``python -m reactor kv``.

The data commands are in ``kv_commands.py``; these are the ones about the
connection itself (PING, ECHO, AUTH, SELECT, QUIT, HELLO, CLIENT), the
channels (SUBSCRIBE, PUBLISH and their pattern forms) and the server
(INFO, COMMAND, CONFIG GET), including what ``redis-cli`` and
``redis-benchmark`` send when they connect. They register on the same
router, with the same conventions (``handler(conn, argv) -> reply``).

Pub/sub in RESP2, as Redis does it: SUBSCRIBE answers one confirmation
per channel, ``[b"subscribe", channel, count]`` (``count``: the channels
and patterns this connection now holds); a message arrives as
``[b"message", channel, payload]`` or ``[b"pmessage", pattern, channel,
payload]``. While it holds any, a connection may only (un)subscribe, PING
and QUIT (``kv.KVProtocol.execute`` refuses the rest, in Redis's words).
A subscriber that stops reading is cut by the send-buffer caps of
``Limits`` (32 MiB at once, 8 MiB for 60 s: Redis's pubsub defaults),
never by the server's memory growing.
"""

import hmac
import logging
from typing import Any, List

from ..resp.codec import OK, ReplyError, Status
from ..resp.protocol import Replies
from .kv_commands import SYNTAX, router
from .kv_store import glob_to_regex, parse_int

logger = logging.getLogger("reactor")

#: The version kv reports (INFO, HELLO): the redis-server its replies follow.
REDIS_VERSION = "7.0.15"


# -- the connection -------------------------------------------------------------

@router.command("ping", -1)
def ping(conn: Any, argv: List[bytes]) -> Any:
    if len(argv) > 2:
        return ReplyError("ERR wrong number of arguments for 'ping' command")
    if conn.channels or conn.patterns:                # RESP2 pub/sub form
        return [b"pong", argv[1] if len(argv) == 2 else b""]
    return argv[1] if len(argv) == 2 else Status("PONG")


@router.command("echo", 2)
def echo(conn: Any, argv: List[bytes]) -> Any:
    return argv[1]


@router.command("quit", -1)
def quit_(conn: Any, argv: List[bytes]) -> Any:
    conn.close_after_reply = True
    return OK


@router.command("select", 2)
def select(conn: Any, argv: List[bytes]) -> Any:
    index = parse_int(argv[1])
    if index is None:
        return ReplyError("ERR value is not an integer or out of range")
    return OK if index == 0 else ReplyError("ERR DB index is out of range")


@router.command("auth", -2)
def auth(conn: Any, argv: List[bytes]) -> Any:
    if len(argv) > 3:
        return SYNTAX
    if len(argv) == 2 and conn.server.auth is None:
        return ReplyError("ERR AUTH <password> called without any password configured for "
                          "the default user. Are you sure your configuration is correct?")
    return _authenticate(conn, argv[1] if len(argv) == 3 else b"default", argv[-1])


def _authenticate(conn: Any, user: bytes, password: bytes) -> Any:
    """Check ``user`` and ``password`` as Redis's default user; with no tokens, any password."""
    tokens = conn.server.auth
    if hmac.compare_digest(user, b"default") and (tokens is None or tokens.check(password)):
        conn.authenticated = True
        return OK
    return ReplyError("WRONGPASS invalid username-password pair or user is disabled.")


@router.command("hello", -1)
def hello(conn: Any, argv: List[bytes]) -> Any:
    """HELLO [2 [AUTH user pass] [SETNAME name]]: RESP2 only; HELLO 3 is refused."""
    name = None
    if len(argv) > 1:
        version = parse_int(argv[1])
        if version is None:
            return ReplyError("ERR Protocol version is not an integer or out of range")
        index = 2
        while index < len(argv):
            option, more = argv[index].upper(), len(argv) - index - 1
            if option == b"AUTH" and more >= 2:
                refused = _authenticate(conn, argv[index + 1], argv[index + 2])
                if refused is not OK:
                    return refused
                index += 3
            elif option == b"SETNAME" and more >= 1:
                name = argv[index + 1]
                if _bad_name(name):
                    return BAD_NAME
                index += 2
            else:
                return ReplyError("ERR Syntax error in HELLO option '%s'"
                                  % argv[index].decode("utf-8", "replace"))
        if version != 2:
            return ReplyError("NOPROTO unsupported protocol version")
    if not conn.authenticated:
        return ReplyError("NOAUTH HELLO must be called with the client already authenticated, "
                          "otherwise the HELLO AUTH <user> <pass> option can be used to "
                          "authenticate the client and select the RESP protocol version at the "
                          "same time")
    if name is not None:
        conn.client_name = name or None
    return [b"server", b"redis", b"version", REDIS_VERSION.encode(), b"proto", 2,
            b"id", conn.client_id, b"mode", b"standalone", b"role", b"master",
            b"modules", []]


BAD_NAME = ReplyError("ERR Client names cannot contain spaces, newlines or special characters.")


def _bad_name(name: bytes) -> bool:
    return any(byte <= 32 or byte >= 127 for byte in name)


@router.command("client setname", 3)
def client_setname(conn: Any, argv: List[bytes]) -> Any:
    name = argv[2]
    if _bad_name(name):
        return BAD_NAME
    conn.client_name = name or None
    return OK


@router.command("client getname", 2)
def client_getname(conn: Any, argv: List[bytes]) -> Any:
    return conn.client_name


@router.command("client id", 2)
def client_id(conn: Any, argv: List[bytes]) -> Any:
    return conn.client_id


# -- pub/sub --------------------------------------------------------------------

@router.command("publish", 3)
def publish(conn: Any, argv: List[bytes]) -> Any:
    return conn.server.publish(argv[1], argv[2])


def _subscription_replies(conn: Any, kind: bytes, names: List[bytes], add: bool,
                          held: Any, registry: Any) -> Any:
    replies = Replies()
    if not names and not add:
        names = list(held)
        if not names:
            return [kind, None, len(conn.channels) + len(conn.patterns)]
    for name in names:
        if add and name not in held:
            held[name] = None
            registry.setdefault(name, set()).add(conn)
        elif not add and name in held:
            del held[name]
            members = registry.get(name)
            if members is not None:
                members.discard(conn)
                if not members:
                    del registry[name]
        replies.append([kind, name, len(conn.channels) + len(conn.patterns)])
    return replies


@router.command("subscribe", -2)
def subscribe(conn: Any, argv: List[bytes]) -> Any:
    return _subscription_replies(conn, b"subscribe", argv[1:], True,
                                 conn.channels, conn.server.channels)


@router.command("unsubscribe", -1)
def unsubscribe(conn: Any, argv: List[bytes]) -> Any:
    return _subscription_replies(conn, b"unsubscribe", argv[1:], False,
                                 conn.channels, conn.server.channels)


@router.command("psubscribe", -2)
def psubscribe(conn: Any, argv: List[bytes]) -> Any:
    for pattern in argv[1:]:
        if pattern not in conn.server.pattern_regexes:
            conn.server.pattern_regexes[pattern] = glob_to_regex(pattern)
    return _subscription_replies(conn, b"psubscribe", argv[1:], True,
                                 conn.patterns, conn.server.patterns)


@router.command("punsubscribe", -1)
def punsubscribe(conn: Any, argv: List[bytes]) -> Any:
    replies = _subscription_replies(conn, b"punsubscribe", argv[1:], False,
                                    conn.patterns, conn.server.patterns)
    for pattern in list(conn.server.pattern_regexes):
        if pattern not in conn.server.patterns:
            del conn.server.pattern_regexes[pattern]
    return replies


@router.command("post", -1)
def cross_protocol_attack(conn: Any, argv: List[bytes]) -> Any:
    """An HTTP request on a kv port: a browser tricked into talking to kv. Close, say nothing.

    Redis does the same (``securityWarningCommand``): a page can make a
    browser POST to 127.0.0.1:6380, and every line of the request would
    otherwise run as a command.
    """
    logger.warning("kv: a client sent %r, as a web browser does: possible cross-protocol "
                   "attack; connection closed", bytes(argv[0][:16]))
    conn.close_after_reply = True
    return Replies()


router.add("host:", cross_protocol_attack, -1)

#: The commands a subscribed connection may still send (Redis's list, RESP2).
PUBSUB_ALLOWED = frozenset(["ping", "subscribe", "unsubscribe", "psubscribe", "punsubscribe",
                            "quit"])


# -- the server ---------------------------------------------------------------

@router.command("info", -1)
def info(conn: Any, argv: List[bytes]) -> Any:
    wanted = {arg.lower().decode("utf-8", "replace") for arg in argv[1:]}
    sections = conn.server.info_sections()
    if wanted and not wanted & {"all", "everything", "default"}:
        sections = [(name, fields) for name, fields in sections if name.lower() in wanted]
    text = "\r\n".join("# %s\r\n" % name + "".join("%s:%s\r\n" % field for field in fields)
                       for name, fields in sections)
    return text.encode()


@router.command("command", -1)
def command(conn: Any, argv: List[bytes]) -> Any:
    """COMMAND [COUNT|LIST|DOCS|INFO]: enough for redis-cli, which asks for DOCS at start."""
    names = sorted(name for name in router.commands if name == name.lower())
    if len(argv) == 1:
        return [_command_info(name) for name in names]
    sub = argv[1].lower()
    if sub == b"count" and len(argv) == 2:
        return len(names)
    if sub == b"list":
        return names
    if sub == b"docs":
        return []                 # no docs: redis-cli falls back to its own help
    if sub == b"info":
        return [_command_info(arg.lower()) if arg.lower() in router.commands else None
                for arg in argv[2:]]
    if sub == b"help" and len(argv) == 2:
        return _help("COMMAND", ["(no subcommand)", "    Return details about all commands.",
                                 "COUNT", "    Return the total number of commands.",
                                 "DOCS", "    Return documentary information (none here).",
                                 "INFO <command-name> ...", "    Return details about commands.",
                                 "LIST", "    Return a list of all commands."])
    if sub in (b"count", b"list", b"docs", b"info"):
        return ReplyError("ERR wrong number of arguments for 'command|%s' command"
                          % sub.decode())
    return ReplyError("ERR unknown subcommand '%s'. Try COMMAND HELP."
                      % argv[1].decode("utf-8", "replace"))


def _command_info(name: bytes) -> Any:
    entry = router.commands[name]
    flags = [Status(flag) for flag in sorted(entry.flags)]
    return [name, entry.arity, flags, 1 if entry.arity not in (1, -1) else 0,
            1 if entry.arity not in (1, -1) else 0, 1 if entry.arity not in (1, -1) else 0]


@router.command("config get", -3)
def config_get(conn: Any, argv: List[bytes]) -> Any:
    settings = conn.server.config()
    reply, seen = [], set()
    for pattern in argv[2:]:
        match = glob_to_regex(pattern.lower()).match
        exact = not any(char in pattern for char in b"*?[\\")
        for name, value in settings:
            if name not in seen and match(name):
                seen.add(name)
                reply += [pattern if exact else name, value]     # Redis echoes an exact name
    return reply


def _help(name: str, lines: List[str]) -> Any:
    """Return a HELP reply: one status line per line, as Redis's ``addReplyHelp``."""
    return [Status("%s <subcommand> [<arg> [value] [opt] ...]. Subcommands are:" % name)] + \
        [Status(line) for line in lines] + [Status("HELP"), Status("    Print this help.")]


@router.command("client help", 2)
def client_help(conn: Any, argv: List[bytes]) -> Any:
    return _help("CLIENT", ["GETNAME", "    Return the name of the current connection.",
                            "ID", "    Return the ID of the current connection.",
                            "SETNAME <name>", "    Assign the name <name> to the current "
                            "connection."])


@router.command("config help", 2)
def config_help(conn: Any, argv: List[bytes]) -> Any:
    return _help("CONFIG", ["GET <pattern>", "    Return parameters matching the glob-like "
                            "<pattern> and their values.",
                            "RESETSTAT", "    Reset statistics reported by the INFO command."])


@router.command("config resetstat", 2)
def config_resetstat(conn: Any, argv: List[bytes]) -> Any:
    conn.server.reset_stats()
    return OK

