"""RESP2, the Redis protocol, as a sans-I/O codec: bytes in, commands or replies out.

Lines end with ``\\r\\n``; a bulk string's line gives the length of the bytes that follow::

    +OK   a Status     -ERR x   a ReplyError    :42   an int     $-1   nil (None)
    $5 hello   bytes   *2 $3 GET $1 k   an array (of bulk strings: a command)

``RespParser`` reads requests as Redis 7's ``networking.c`` does, with its
limits and error texts, *inline* commands typed at telnet included;
``RespReplyParser`` reads replies; ``encode_*`` write both. The parsers are
linear in the bytes fed, whatever the chunking (as hiredis's ``read.c``):
an unended line is kept and only new bytes are searched; a payload is
collected until its N bytes are in, its header reserving nothing.

Discussion: cutting a chunk of whole commands. Reading lines with ``find``
and ``int()`` costs 1.6 µs per ``SET key value`` (CPython 3.11). One C call,
``chunk.split(b"\\r\\n")``, gives tokens that alternate ``$len`` and
payload, the payloads being the ``bytes`` to return; a table of header lines
(``b"$3": 3``) reads and checks each header in one lookup: 0.8 µs. The walk
is a guess checked token by token (a payload holding ``\\r\\n`` splits,
so its first piece is too short); at any doubt ``_advance``, the reference
parser, reads the command a line or payload at a time (it alone keeps state
between chunks) and stops after its ``\\r\\n``, where ``split`` cut too.
The price: tiny ``\\r\\n``-split pieces cost ten times their size in tokens.
"""

import re
from typing import Any, Iterable, List, Optional, Tuple

from ..errors import FramingError

DEFAULT_MAX_BULK_BYTES = 512 * 1024 * 1024    #: per bulk string (Redis's proto-max-bulk-len)
DEFAULT_MAX_ARGS = 1024 * 1024                #: per command, and per reply array
DEFAULT_MAX_INLINE_BYTES = 64 * 1024          #: per inline line (Redis's PROTO_INLINE_MAX_SIZE)
MAX_HEADER_BYTES = 64 * 1024                  #: per ``*`` or ``$`` line, fixed as in Redis


class RespProtocolError(FramingError):
    """Malformed or over-limit RESP input: ``str(exc)`` is Redis's text after ``ERR ``.

    ``commands`` (or replies) came before the bad bytes in one feed: answer, send ``reply``.
    """

    def __init__(self, message: str, commands: Optional[List[Any]] = None) -> None:
        super().__init__(message)
        self.commands = [] if commands is None else commands

    @property
    def reply(self) -> bytes:
        """Return ``-ERR <message>\\r\\n``."""
        return b"-ERR " + str(self).encode("latin-1", "replace") + b"\r\n"


class Status(str):
    """A simple-string reply such as ``+OK``: a ``str`` that encodes as a status."""

    __slots__ = ()


class ReplyError(Exception):
    """An error reply, returned as a value: ``str()`` is its text after ``-``, code included."""

    def __eq__(self, other: Any) -> Any:
        return str(self) == str(other) if isinstance(other, ReplyError) else NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


class _NilArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_ARRAY"


NIL_ARRAY = _NilArray()         #: the null array ``*-1`` (a BLPOP timed out); parsed: None
OK, PONG = Status("OK"), Status("PONG")


class _Reader:
    """Both parsers' limits, partial line or payload, and ``feed`` (which calls ``_parse``)."""

    __slots__ = ("max_bulk_bytes", "max_args", "_pending", "_held", "_bulk_size", "_error")

    def __init__(self, **limits: int) -> None:
        for name, value in limits.items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError("%s must be a positive int, got %r" % (name, value))
            setattr(self, name, value)
        self._pending = bytearray()     # a line or payload begun in an earlier chunk
        self._held = 0                  # bytes fed of the unfinished message
        self._bulk_size = -1            # the payload awaited, or -1: a line is next
        self._error: Optional[str] = None     # why an error closed this parser

    @property
    def buffered(self) -> int:
        """Return the bytes fed of an unfinished command or reply (0 between them)."""
        return self._held

    @property
    def closed(self) -> bool:
        """Tell whether an earlier error closed this parser (every feed now raises)."""
        return self._error is not None

    def feed(self, data: Any) -> List[Any]:
        """Add received bytes (bytes-like); return the commands or replies they complete.

        Raises :class:`RespProtocolError` for bad input, and then at every later call.
        """
        # Hot path: once per data_received; no copy of a bytes chunk, one call.
        if self._error is not None:
            raise RespProtocolError(self._error)
        if type(data) is not bytes:
            data = bytes(data)
        done: List[Any] = []
        try:
            self._parse(data, done)
        except RespProtocolError as exc:
            self._error, exc.commands = str(exc), done
            self._pending, self._held = bytearray(), 0
            raise
        return done

    def _take_line(self, data: bytes, pos: int, ending: bytes, limit: int,
                   too_big: str) -> Tuple[Optional[bytes], int]:
        """Return the line at ``pos`` and the index after it, or keep it and return None.

        The next search covers only new bytes (and a kept ``\\r``); raises past ``limit``.
        """
        pending = self._pending
        if pending and pending[-1] == 13 and data[pos:pos + 1] == b"\n":
            line, pos = bytes(pending[:-1]), pos + 1
        else:
            found = data.find(ending, pos)
            if found < 0:
                pending += memoryview(data)[pos:]
                if pending and len(pending) - (pending[-1] == 13) > limit:
                    raise _error(too_big)
                return None, len(data)
            line = bytes(pending) + data[pos:found] if pending else data[pos:found]
            pos = found + len(ending)
            if ending == b"\n" and line[-1:] == b"\r":      # an inline line's \r\n
                line = line[:-1]
        pending.clear()
        if len(line) > limit:
            raise _error(too_big)
        return line, pos

    def _take_payload(self, data: bytes, pos: int) -> Tuple[Optional[bytes], int]:
        """Return the awaited payload at ``pos`` and the index after it, or keep it partial."""
        pending = self._pending
        stop = pos + self._bulk_size + 2 - len(pending)
        if stop > len(data):
            pending += memoryview(data)[pos:]
            return None, len(data)
        if pending:                     # its start came earlier: one copy joins it
            pending += memoryview(data)[pos:stop]
            ending, payload = pending[-2:], bytes(memoryview(pending)[:-2])
            pending.clear()
        else:
            ending, payload = data[stop - 2:stop], data[pos:stop - 2]
        if ending != b"\r\n":
            raise _error("invalid bulk data")
        self._bulk_size = -1
        return payload, stop


class RespParser(_Reader):
    """Read requests (server side) as Redis 7 does: bytes in, commands out.

    A command is a list of ``bytes``, name first (empty ones are skipped).
    Limits: ``max_bulk_bytes`` per bulk (refused on its header), ``max_args``,
    ``max_inline_bytes`` per inline line, ``MAX_HEADER_BYTES`` per header line.
    Unlike Redis, a payload must end in ``\\r\\n`` (else our ``invalid bulk data``).
    """

    __slots__ = ("max_inline_bytes", "_args", "_remaining", "_count_lines", "_size_lines")

    def __init__(self, max_bulk_bytes: int = DEFAULT_MAX_BULK_BYTES,
                 max_args: int = DEFAULT_MAX_ARGS,
                 max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES) -> None:
        super().__init__(max_bulk_bytes=max_bulk_bytes, max_args=max_args,
                         max_inline_bytes=max_inline_bytes)
        self._args: Optional[List[bytes]] = None    # the multibulk command being read
        self._remaining = 0                         # its arguments still to come
        self._count_lines = _COUNT_LINES if max_args >= _TABLE_TOP else {}
        self._size_lines = _SIZE_LINES if max_bulk_bytes >= _TABLE_TOP else {}

    def _parse(self, data: bytes, done: List[Any]) -> None:
        # Hot path: per command a dict lookup, two slices and a zip over its
        # arguments (see the module docstring); nothing per byte in Python.
        pos = self._advance(data, 0, done) if self._held else 0
        tokens = (data[pos:] if pos else data).split(b"\r\n")
        last = len(tokens) - 1          # tokens[last] did not end with \r\n
        count_of, size_of, append = self._count_lines.get, self._size_lines.get, done.append
        index, mark, mark_pos = 0, 0, pos
        while index < last or tokens[last]:
            count = count_of(tokens[index]) or self._number(tokens[index], b"*")
            stop = index + 1 + 2 * count
            if count > 0 and stop <= last:
                args = tokens[index + 2:stop:2]
                for header, arg in zip(tokens[index + 1:stop:2], args):
                    if size_of(header) != len(arg) and self._number(header, b"$") != len(arg):
                        break       # not the table's size, nor (checked fully) a size
                else:
                    append(args)
                    index = stop
                    continue
            # A doubt (or the partial last token): _advance reads from its first byte.
            start = mark_pos + sum(map(len, tokens[mark:index])) + 2 * (index - mark)
            pos = self._advance(data, start, done)
            if pos == len(data):
                return
            while start < pos:          # step over the tokens _advance read
                start += len(tokens[index]) + 2
                index += 1
            mark, mark_pos = index, pos

    def _number(self, line: bytes, kind: bytes) -> int:
        """Return N of a header line ``*N`` or ``$N`` that passes every check, else -1."""
        number = _to_int(line[1:]) if line[:1] == kind else None
        high = self.max_args if kind == b"*" else self.max_bulk_bytes
        return number if number is not None and 0 <= number <= high else -1

    def _advance(self, data: bytes, pos: int, done: List[Any]) -> int:
        """Read a line or payload at a time; return after a multibulk command or at the end."""
        start, pending = pos, self._pending
        while True:
            if self._args is None and (pending[0] if pending else data[pos]) != 42:
                line, pos = self._take_line(data, pos, b"\n", self.max_inline_bytes,
                                            "too big inline request")
                if line is None:
                    break
                args = _split_inline(line)
                if args:
                    done.append(args)
                start, self._held = pos, 0
                if pos == len(data):
                    return pos
            elif self._bulk_size >= 0:
                arg, pos = self._take_payload(data, pos)
                if arg is None:
                    break
                self._args.append(arg)
                self._remaining -= 1
                if not self._remaining:
                    done.append(self._args)
                    self._args, self._held = None, 0
                    return pos
            else:
                what = "mbulk" if self._args is None else "bulk"
                line, pos = self._take_line(data, pos, b"\r\n", MAX_HEADER_BYTES,
                                            "too big %s count string" % what)
                if line is None:
                    break
                if self._args is not None:                  # a '$' line
                    if line[:1] != b"$":
                        raise _error("expected '$', got '%s'", line)
                    self._bulk_size = self._number(line, b"$")
                    if self._bulk_size < 0:
                        raise _error("invalid bulk length")
                    continue
                count = _to_int(line[1:])                   # a '*' line
                if count is None or count > 2 ** 31 - 1:    # Redis's INT_MAX
                    raise _error("invalid multibulk length")
                if count > self.max_args:
                    raise _error("too many arguments (%d, the limit is %d)"
                                 % (count, self.max_args))
                if count <= 0:
                    self._held = 0
                    return pos
                self._args, self._remaining = [], count
        self._held += len(data) - start
        return len(data)


class RespReplyParser(_Reader):
    """Read replies (client side): bytes in, reply values out.

    ``$-1`` and ``*-1`` both give None (as redis-py). Arrays nest on an explicit
    stack, to any depth a hostile server sends. Limits: ``max_bulk_bytes`` per
    bulk or line, ``max_args`` per array.
    """

    __slots__ = ("_stack",)

    def __init__(self, max_bulk_bytes: int = DEFAULT_MAX_BULK_BYTES,
                 max_args: int = DEFAULT_MAX_ARGS) -> None:
        super().__init__(max_bulk_bytes=max_bulk_bytes, max_args=max_args)
        self._stack: List[list] = []    # open arrays, innermost last: [items, still to come]

    def _parse(self, data: bytes, done: List[Any]) -> None:
        # Hot path: a client's data_received; a line search and a dispatch per value.
        pos = start = 0
        stack = self._stack
        while True:
            if self._bulk_size >= 0:
                value, pos = self._take_payload(data, pos)
                if value is None:
                    break
            else:
                line, pos = self._take_line(data, pos, b"\r\n", self.max_bulk_bytes,
                                            "too big reply line")
                if line is None:
                    break
                value = self._value(line)
                if value is _OPENED:
                    continue
            while stack:                # place the value, closing every array it completes
                frame = stack[-1]
                frame[0].append(value)
                frame[1] -= 1
                if frame[1]:
                    break
                value = stack.pop()[0]
            else:
                done.append(value)
                start, self._held = pos, 0
        self._held += len(data) - start

    def _value(self, line: bytes) -> Any:
        """Return the value a reply line stands for, or _OPENED if a bulk or an array began."""
        kind, text = line[:1], line[1:]
        if kind == b"+" or kind == b"-":
            text = text.decode("utf-8", "surrogateescape")
            return Status(text) if kind == b"+" else ReplyError(text)
        number = _to_int(text)
        if kind == b":" and number is not None:
            return number
        if kind != b"$" and kind != b"*":
            raise _error("invalid integer" if kind == b":" else "invalid reply type '%s'", line)
        if number is None or number < -1 or (kind == b"$" and number > self.max_bulk_bytes):
            raise _error("invalid bulk length" if kind == b"$" else "invalid multibulk length")
        if kind == b"$":
            self._bulk_size = number
            return None if number < 0 else _OPENED
        if number > self.max_args:
            raise _error("too many elements (%d, the limit is %d)" % (number, self.max_args))
        if number <= 0:
            return None if number < 0 else []
        self._stack.append([[], number])
        return _OPENED


def encode_reply(value: Any) -> bytes:
    """Return ``value`` as a RESP2 reply.

    int -> ``:`` (True, False -> ``:1``, ``:0``), bytes-like or str (as UTF-8)
    -> bulk string, None -> ``$-1``, list or tuple -> array (nested within the
    recursion limit). TypeError for other types (a float: send ``str(x)``, as
    Redis does); ValueError for a Status or ReplyError holding ``\\r``/``\\n``.
    """
    # Hot path: once per reply a server sends; a bulk string is one format.
    if type(value) is bytes:
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if value is OK:                             # the commonest reply of all
        return b"+OK\r\n"
    if isinstance(value, (list, tuple)):
        return b"*%d\r\n%s" % (len(value), b"".join([encode_reply(item) for item in value]))
    if isinstance(value, (Status, ReplyError)):
        text = str(value).encode("utf-8", "surrogateescape")
        if b"\r" in text or b"\n" in text:
            raise ValueError("a status or error reply cannot hold \\r or \\n: %r" % (value,))
        return (b"+" if isinstance(value, Status) else b"-") + text + b"\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
        return b"$%d\r\n%s\r\n" % (len(data), data)
    if value is None or value is NIL_ARRAY:
        return b"$-1\r\n" if value is None else b"*-1\r\n"
    raise TypeError("cannot encode %s as a RESP reply; use bytes, str, int, a list or None"
                    % type(value).__name__)


def encode_replies(values: Iterable[Any]) -> bytes:
    """Return several replies back to back: one write answers a whole pipeline."""
    return b"".join([encode_reply(value) for value in values])


def encode_command(*args: Any) -> bytes:
    """Return a command as a client sends it, from bytes-like, str, int or float arguments.

    Raises TypeError for other types (bool too, as redis-py), ValueError for none.
    """
    if not args:
        raise ValueError("a command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode("utf-8", "surrogateescape")
        elif isinstance(arg, (int, float)) and not isinstance(arg, bool):
            arg = b"%d" % arg if isinstance(arg, int) else float.__repr__(arg).encode()
        elif not isinstance(arg, (bytes, bytearray, memoryview)):
            raise TypeError("cannot send %s as a command argument; use bytes, str, int or "
                            "float" % type(arg).__name__)
        elif type(arg) is not bytes:
            arg = bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


# -- private helpers ---------------------------------------------------------

_OPENED = object()      # RespReplyParser._value: a bulk or an array began, no value yet
# One inline argument: blanks, a word, maybe a quoted part (Redis's sdssplitargs).
_ARGUMENT = re.compile(rb"""[ \t\n\v\f\r]*([^ \t\n\r"']*)"""
                       rb"""(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\'|\\(?!'))*)')?""", re.DOTALL)
_ARGUMENT_ENDS = frozenset([b"", b" ", b"\t", b"\n", b"\v", b"\f", b"\r"])
_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|.)", re.DOTALL)
_ESCAPED = {bytes([byte]): bytes([byte]) for byte in range(256)}    # \q is q ...
_ESCAPED.update({b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"a": b"\a"})
_ESCAPED.update({b"x" + (high + low).encode(): bytes([int(high + low, 16)])
                 for high in "0123456789abcdefABCDEF" for low in "0123456789abcdefABCDEF"})
# The token walk's header lines, up to three digits (~190 KB, shared). A parser
# whose limit is lower leaves them out: _number checks every header instead.
_TABLE_TOP = 999
_COUNT_LINES = {b"*%d" % n: n for n in range(1, _TABLE_TOP + 1)}
_SIZE_LINES = {b"$%d" % n: n for n in range(_TABLE_TOP + 1)}


def _error(text: str, line: bytes = b"") -> RespProtocolError:
    """Return a protocol error; any %s shows ``line``'s first byte as Redis does."""
    if "%s" in text:
        text %= chr((line or b"\r")[0]).replace("\r", " ").replace("\n", " ")
    return RespProtocolError("Protocol error: " + text)


def _to_int(text: bytes) -> Optional[int]:
    """Return the 64-bit integer ``text`` spells canonically, as Redis's string2ll, or None."""
    digits = text[1:] if text[:1] == b"-" else text
    if not digits.isdigit() or len(digits) > 19 or (digits[0] == 48 and len(text) > 1):
        return None
    value = int(text)
    return value if -2 ** 63 <= value < 2 ** 63 else None


def _split_inline(line: bytes) -> List[bytes]:
    """Split an inline request as Redis's sdssplitargs does; raise for bad quotes.

    ``"..."`` takes ``\\n \\r \\t \\b \\a \\xHH`` (others stand for the
    byte), ``'...'`` only ``\\'``. A NUL ends the line, as in the C original.
    """
    line = line.split(b"\0", 1)[0]
    args: List[bytes] = []
    pos = 0
    while True:
        match = _ARGUMENT.match(line, pos)
        pos = match.end()
        if line[pos:pos + 1] not in _ARGUMENT_ENDS:
            raise _error("unbalanced quotes in request")    # or text after a closing quote
        arg, double, single = match.groups()
        if double is not None:
            arg += _ESCAPE.sub(lambda escape: _ESCAPED[escape.group(1)], double)
        elif single is not None:
            arg += single.replace(b"\\'", b"'")
        elif not arg:
            return args
        args.append(arg)
