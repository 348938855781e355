"""The data commands of ``python -m reactor kv``: strings, keys and expiry.

Each command is a plain function ``handler(conn, argv) -> reply`` registered
on the router with its Redis arity and flags (see ``reactor/dispatch.py``);
``conn`` is the connection (``kv.KVProtocol``), ``conn.server`` the shared
state, ``conn.server.keys`` the keyspace (``kv_store.Keyspace``). The error
texts are redis-server 7's, byte for byte (``tests/test_kv_golden.py``
compares them with recorded redis-server output).

Flags, as Redis names them: ``write`` (changes data: what the append-only
file records), ``denyoom`` (refused over ``--maxmemory``).

A write is recorded in the append-only file by ``conn.server.propagate``,
in the form that replays to the same state whenever it is replayed:
relative deadlines become absolute Unix times (``SET ... PXAT``,
``PEXPIREAT``), as Redis rewrites them.
"""

from typing import Any, List, Optional

from ..dispatch import CommandRouter, wrong_arity
from ..resp.codec import OK, ReplyError
from .kv_store import parse_int

router = CommandRouter()

NOT_INTEGER = ReplyError("ERR value is not an integer or out of range")
SYNTAX = ReplyError("ERR syntax error")
OVERFLOW = ReplyError("ERR increment or decrement would overflow")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
#: Deadlines past this many ms are refused (Redis: would overflow its ms clock).
_MAX_MS = _INT64_MAX // 2


# -- strings ------------------------------------------------------------------

@router.command("get", 2)
def get(conn: Any, argv: List[bytes]) -> Any:
    return conn.server.keys.get(argv[1])


@router.command("set", -3, ("write", "denyoom"))
def set_(conn: Any, argv: List[bytes]) -> Any:
    """SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]."""
    condition = unit = None
    want_old = keep_ttl = False
    amount = b""
    index = 3
    while index < len(argv):
        option = argv[index].upper()
        if option in (b"NX", b"XX") and condition in (None, option):
            condition = option
        elif option == b"GET":
            want_old = True
        elif option == b"KEEPTTL" and unit is None:
            keep_ttl = True
        elif option in (b"EX", b"PX", b"EXAT", b"PXAT") and unit in (None, option) \
                and not keep_ttl and index + 1 < len(argv):         # a repeat: the last wins
            unit, amount = option, argv[index + 1]
            index += 1
        else:
            return SYNTAX
        index += 1
    keys = conn.server.keys
    deadline = None
    if unit is not None:
        number = parse_int(amount)
        if number is None:
            return NOT_INTEGER
        seconds = unit in (b"EX", b"EXAT")
        if number <= 0 or (seconds and number > _MAX_MS // 1000) or number > _MAX_MS:
            return ReplyError("ERR invalid expire time in 'set' command")
        ms = number * 1000 if seconds else number
        deadline = (keys.deadline_from_unix_ms(ms) if unit in (b"EXAT", b"PXAT")
                    else conn.loop.time() + ms / 1000.0)
    key, value = argv[1], argv[2]
    old = keys.get(key) if condition or want_old else None
    if (condition == b"NX" and old is not None) or (condition == b"XX" and old is None):
        return old if want_old else None
    keys.set(key, value, deadline, keep_deadline=keep_ttl)
    if conn.server.aof is not None:
        conn.server.propagate([b"SET", key, value] + (
            [b"KEEPTTL"] if keep_ttl else [] if deadline is None
            else [b"PXAT", str(keys.unix_ms(deadline)).encode()]))
    return old if want_old else OK


@router.command("mget", -2)
def mget(conn: Any, argv: List[bytes]) -> Any:
    get_value = conn.server.keys.get
    return [get_value(key) for key in argv[1:]]


@router.command("mset", -3, ("write", "denyoom"))
def mset(conn: Any, argv: List[bytes]) -> Any:
    if len(argv) % 2 == 0:
        return wrong_arity("mset")
    keys = conn.server.keys
    for index in range(1, len(argv), 2):
        keys.set(argv[index], argv[index + 1])
    conn.server.propagate(argv)
    return OK


def _add(conn: Any, key: bytes, increment: int) -> Any:
    keys = conn.server.keys
    old = keys.get(key)
    current = 0 if old is None else parse_int(old)
    if current is None:
        return NOT_INTEGER
    result = current + increment
    if not _INT64_MIN <= result <= _INT64_MAX:
        return OVERFLOW
    value = str(result).encode()
    keys.set(key, value, keep_deadline=True)          # INCR keeps the time to live
    conn.server.propagate([b"SET", key, value, b"KEEPTTL"])
    return result


@router.command("incr", 2, ("write", "denyoom"))
def incr(conn: Any, argv: List[bytes]) -> Any:
    return _add(conn, argv[1], 1)


@router.command("decr", 2, ("write", "denyoom"))
def decr(conn: Any, argv: List[bytes]) -> Any:
    return _add(conn, argv[1], -1)


@router.command("incrby", 3, ("write", "denyoom"))
def incrby(conn: Any, argv: List[bytes]) -> Any:
    increment = parse_int(argv[2])
    return NOT_INTEGER if increment is None else _add(conn, argv[1], increment)


@router.command("decrby", 3, ("write", "denyoom"))
def decrby(conn: Any, argv: List[bytes]) -> Any:
    decrement = parse_int(argv[2])
    if decrement is None:
        return NOT_INTEGER
    if decrement == _INT64_MIN:
        return ReplyError("ERR decrement would overflow")
    return _add(conn, argv[1], -decrement)


# -- keys ---------------------------------------------------------------------

@router.command("del", -2, ("write",))
def del_(conn: Any, argv: List[bytes]) -> Any:
    delete = conn.server.keys.delete
    removed = [key for key in argv[1:] if delete(key)]
    if removed:
        conn.server.propagate([b"DEL"] + removed)
    return len(removed)


@router.command("exists", -2)
def exists(conn: Any, argv: List[bytes]) -> Any:
    present = conn.server.keys.exists
    return sum(1 for key in argv[1:] if present(key))


@router.command("keys", 2)
def keys_(conn: Any, argv: List[bytes]) -> Any:
    return conn.server.keys.keys(argv[1])


@router.command("dbsize", 1)
def dbsize(conn: Any, argv: List[bytes]) -> Any:
    return len(conn.server.keys)


@router.command("flushdb", -1, ("write",))
def flushdb(conn: Any, argv: List[bytes]) -> Any:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"ASYNC", b"SYNC")):
        return SYNTAX
    conn.server.keys.flush()
    conn.server.propagate([b"FLUSHDB"])
    return OK


router.add("flushall", flushdb, -1, ("write",))


# -- expiry -------------------------------------------------------------------

def _expire(conn: Any, argv: List[bytes], unit_ms: int, absolute: bool) -> Any:
    """EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT key time [NX|XX|GT|LT] (Redis 7)."""
    number = parse_int(argv[2])
    if number is None:
        return NOT_INTEGER
    flags = set()
    for option in argv[3:]:
        option = option.upper()
        if option not in (b"NX", b"XX", b"GT", b"LT"):
            return ReplyError("ERR Unsupported option %s" % option.decode("utf-8", "replace"))
        flags.add(option)
    if b"NX" in flags and flags & {b"XX", b"GT", b"LT"}:
        return ReplyError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if b"GT" in flags and b"LT" in flags:
        return ReplyError("ERR GT and LT options at the same time are not compatible")
    if abs(number) > _MAX_MS // unit_ms:
        return ReplyError("ERR invalid expire time in '%s' command" % argv[0].decode().lower())
    keys, key = conn.server.keys, argv[1]
    if keys.get(key) is None:
        return 0
    ms = number * unit_ms
    deadline = keys.deadline_from_unix_ms(ms) if absolute else conn.loop.time() + ms / 1000.0
    current = keys.deadline(key)
    if (b"NX" in flags and current is not None) or (b"XX" in flags and current is None) \
            or (b"GT" in flags and (current is None or deadline <= current)) \
            or (b"LT" in flags and current is not None and deadline >= current):
        return 0
    if deadline <= conn.loop.time():
        keys.delete(key)
        conn.server.propagate([b"DEL", key])
        return 1
    keys.set_deadline(key, deadline)
    conn.server.propagate([b"PEXPIREAT", key, str(keys.unix_ms(deadline)).encode()])
    return 1


@router.command("expire", -3, ("write",))
def expire(conn: Any, argv: List[bytes]) -> Any:
    return _expire(conn, argv, 1000, absolute=False)


@router.command("pexpire", -3, ("write",))
def pexpire(conn: Any, argv: List[bytes]) -> Any:
    return _expire(conn, argv, 1, absolute=False)


@router.command("expireat", -3, ("write",))
def expireat(conn: Any, argv: List[bytes]) -> Any:
    return _expire(conn, argv, 1000, absolute=True)


@router.command("pexpireat", -3, ("write",))
def pexpireat(conn: Any, argv: List[bytes]) -> Any:
    return _expire(conn, argv, 1, absolute=True)


def _remaining_ms(conn: Any, key: bytes) -> Optional[int]:
    """Return -2 (no key), -1 (no deadline) or the ms left."""
    keys = conn.server.keys
    if keys.get(key) is None:
        return -2
    deadline = keys.deadline(key)
    if deadline is None:
        return -1
    return max(0, int(round((deadline - conn.loop.time()) * 1000)))


@router.command("ttl", 2)
def ttl(conn: Any, argv: List[bytes]) -> Any:
    left = _remaining_ms(conn, argv[1])
    return left if left < 0 else (left + 500) // 1000


@router.command("pttl", 2)
def pttl(conn: Any, argv: List[bytes]) -> Any:
    return _remaining_ms(conn, argv[1])


@router.command("persist", 2, ("write",))
def persist(conn: Any, argv: List[bytes]) -> Any:
    keys = conn.server.keys
    if keys.get(argv[1]) is None or not keys.persist(argv[1]):
        return 0
    conn.server.propagate([b"PERSIST", argv[1]])
    return 1
