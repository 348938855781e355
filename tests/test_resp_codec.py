"""The RESP codec (sans-I/O): Redis 7's request rules and texts, every chunking, bounded cost."""

import random
import time
import tracemalloc

import pytest

from reactor.errors import FramingError
from reactor.resp.codec import (DEFAULT_MAX_ARGS, DEFAULT_MAX_BULK_BYTES, MAX_HEADER_BYTES,
                                NIL_ARRAY, OK, PONG, ReplyError, RespParser, RespProtocolError,
                                RespReplyParser, Status, encode_command, encode_replies,
                                encode_reply)

SEED = 20261127

#: A request stream mixing every kind of command: multibulk, inline (quoted,
#: escaped, \n and \r\n endings), skipped empties, binary payloads holding
#: \r\n, a payload longer than the walk's table of header lines.
REQUESTS = (b"*1\r\n$4\r\nPING\r\n"
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$6\r\na\r\nb\x00c\r\n"
            b'SET k "a b\\x41\\n" \'it\\\'s\'\r\n'
            b"PING\n"
            b"*0\r\n"
            b"   \r\n"
            b"\n"
            b"*-1\r\n"
            b"*2\r\n$4\r\nECHO\r\n$1200\r\n" + b"y" * 1200 + b"\r\n"
            b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n")
COMMANDS = [[b"PING"], [b"SET", b"key", b"a\r\nb\x00c"], [b"SET", b"k", b"a bA\n", b"it's"],
            [b"PING"], [b"ECHO", b"y" * 1200], [b"GET", b""]]
#: The same, with a command of more arguments than the walk's table of '*' lines.
MANY_ARGS = [b"DEL"] + [b"k%d" % n for n in range(1001)]
MORE_REQUESTS = REQUESTS + encode_command(*MANY_ARGS) + REQUESTS
MORE_COMMANDS = COMMANDS + [MANY_ARGS] + COMMANDS

#: A reply stream with every reply type, nested arrays, nil bulk and nil array.
REPLY_VALUES = [OK, ReplyError("ERR unknown command 'FOO'"), 0, -42, b"", b"bulk\r\nwith crlf",
                None, NIL_ARRAY, [], [1, [b"a", [], [None, [Status("deep")]]], b"z"],
                Status("QUEUED"), 2 ** 63 - 1, -2 ** 63]
PARSED_REPLIES = [OK, ReplyError("ERR unknown command 'FOO'"), 0, -42, b"", b"bulk\r\nwith crlf",
                  None, None, [], [1, [b"a", [], [None, [Status("deep")]]], b"z"],
                  Status("QUEUED"), 2 ** 63 - 1, -2 ** 63]
REPLIES = encode_replies(REPLY_VALUES)


def feed_all(parser, chunks):
    """Return everything the parser completes from ``chunks``, in order."""
    out = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def outcome(make, chunks):
    """Return (values, error text or None) after feeding ``chunks`` until an error."""
    parser, values = make(), []
    for chunk in chunks:
        try:
            values.extend(parser.feed(chunk))
        except RespProtocolError as exc:
            assert parser.closed and parser.buffered == 0
            return values + exc.commands, str(exc)
    return values, None


def split_at(data, points):
    points = [0] + sorted(points) + [len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


def one_byte_at_a_time(data):
    return [data[i:i + 1] for i in range(len(data))]


def sdssplitargs(line):
    """Split as a line-by-line port of Redis's sdssplitargs (sds.c): the reference."""
    def at(index):
        return line[index] if index < len(line) else 0

    def is_hex(byte):
        return byte != 0 and chr(byte) in "0123456789abcdefABCDEF"

    def is_space(byte):
        return byte != 0 and chr(byte) in " \t\n\v\f\r"

    args, p = [], 0
    while True:
        while at(p) and is_space(at(p)):
            p += 1
        if not at(p):
            return args
        in_double = in_single = done = False
        current = bytearray()
        while not done:
            byte = at(p)
            if in_double:
                if byte == 92 and at(p + 1) == 120 and is_hex(at(p + 2)) and is_hex(at(p + 3)):
                    current.append(int(bytes([at(p + 2), at(p + 3)]), 16))
                    p += 3
                elif byte == 92 and at(p + 1):
                    p += 1
                    current += {110: b"\n", 114: b"\r", 116: b"\t", 98: b"\b",
                                97: b"\a"}.get(at(p), bytes([at(p)]))
                elif byte == 34:
                    if at(p + 1) and not is_space(at(p + 1)):
                        return None
                    done = True
                elif not byte:
                    return None
                else:
                    current.append(byte)
            elif in_single:
                if byte == 92 and at(p + 1) == 39:
                    p += 1
                    current.append(39)
                elif byte == 39:
                    if at(p + 1) and not is_space(at(p + 1)):
                        return None
                    done = True
                elif not byte:
                    return None
                else:
                    current.append(byte)
            elif byte in (32, 10, 13, 9, 0):
                done = True
            elif byte == 34:
                in_double = True
            elif byte == 39:
                in_single = True
            else:
                current.append(byte)
            if at(p):
                p += 1
        args.append(bytes(current))


# -- encoding -------------------------------------------------------------------

@pytest.mark.parametrize("value,wire", [
    (OK, b"+OK\r\n"),
    (PONG, b"+PONG\r\n"),
    (Status(""), b"+\r\n"),
    (ReplyError("ERR unknown command"), b"-ERR unknown command\r\n"),
    (ReplyError("WRONGTYPE Operation"), b"-WRONGTYPE Operation\r\n"),
    (0, b":0\r\n"),
    (-7, b":-7\r\n"),
    (2 ** 63 - 1, b":9223372036854775807\r\n"),
    (True, b":1\r\n"),
    (False, b":0\r\n"),
    (b"hello", b"$5\r\nhello\r\n"),
    (b"", b"$0\r\n\r\n"),
    (b"a\r\nb", b"$4\r\na\r\nb\r\n"),
    (bytearray(b"ab"), b"$2\r\nab\r\n"),
    (memoryview(b"abc"), b"$3\r\nabc\r\n"),
    ("héllo", b"$6\r\nh\xc3\xa9llo\r\n"),
    (None, b"$-1\r\n"),
    (NIL_ARRAY, b"*-1\r\n"),
    ([], b"*0\r\n"),
    ((), b"*0\r\n"),
    ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n"),
    ([[b"x", [OK]], [], NIL_ARRAY], b"*3\r\n*2\r\n$1\r\nx\r\n*1\r\n+OK\r\n*0\r\n*-1\r\n"),
])
def test_encode_reply_golden(value, wire):
    """encode_reply writes each value type exactly as Redis does."""
    assert encode_reply(value) == wire


@pytest.mark.parametrize("value", [1.5, {"a": 1}, {1}, object(), [b"ok", 2.0]])
def test_encode_reply_refuses_other_types_naming_them(value):
    """A float, dict, set or object (even nested) raises TypeError naming its type."""
    with pytest.raises(TypeError, match="float|dict|set|object"):
        encode_reply(value)


@pytest.mark.parametrize("value", [Status("O\r\nK"), Status("a\nb"), ReplyError("ERR a\rb")])
def test_encode_reply_refuses_line_breaks_in_status_and_error(value):
    """A status or error holding \\r or \\n raises ValueError: it would break the stream."""
    with pytest.raises(ValueError):
        encode_reply(value)


def test_encode_replies_joins_a_pipeline_into_one_bytes():
    """encode_replies answers a pipeline with one bytes object, in order."""
    assert encode_replies([OK, 1, b"x"]) == b"+OK\r\n:1\r\n$1\r\nx\r\n"
    assert encode_replies([]) == b""


@pytest.mark.parametrize("args,wire", [
    ((b"PING",), b"*1\r\n$4\r\nPING\r\n"),
    (("SET", b"k", "v"), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
    (("ECHO", ""), b"*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"),
    (("ECHO", "é"), b"*2\r\n$4\r\nECHO\r\n$2\r\n\xc3\xa9\r\n"),
    (("INCRBY", "k", -12), b"*3\r\n$6\r\nINCRBY\r\n$1\r\nk\r\n$3\r\n-12\r\n"),
    (("INCRBYFLOAT", "k", 1.5), b"*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nk\r\n$3\r\n1.5\r\n"),
    ((bytearray(b"A"), memoryview(b"\r\n")), b"*2\r\n$1\r\nA\r\n$2\r\n\r\n\r\n"),
])
def test_encode_command_golden(args, wire):
    """encode_command writes an array of bulk strings; str is UTF-8, numbers their text."""
    assert encode_command(*args) == wire


@pytest.mark.parametrize("args,error", [
    ((), ValueError), (("SET", "k", True), TypeError), (("GET", None), TypeError),
    (("GET", {"k": 1}), TypeError), ((["GET"],), TypeError),
])
def test_encode_command_refuses_what_redis_could_not_read(args, error):
    """No arguments is a ValueError; bool, None, dict or list arguments a TypeError."""
    with pytest.raises(error):
        encode_command(*args)


def test_reply_value_types():
    """Status is a str, ReplyError compares and hashes by text, NIL_ARRAY is one sentinel."""
    assert isinstance(OK, str) and OK == "OK" and isinstance(Status("x"), Status)
    assert ReplyError("ERR x") == ReplyError("ERR x") != ReplyError("ERR y")
    assert {ReplyError("ERR x"): 1}[ReplyError("ERR x")] == 1
    assert str(ReplyError("ERR x")) == "ERR x" and "ERR x" in repr(ReplyError("ERR x"))
    assert ReplyError("ERR x") != "ERR x"
    assert repr(NIL_ARRAY) == "NIL_ARRAY"
    assert issubclass(RespProtocolError, FramingError)
    assert issubclass(RespProtocolError, ValueError)


# -- requests -------------------------------------------------------------------

def test_one_command_and_a_pipeline_of_many():
    """One command gives one argument list; 2,000 pipelined in one chunk give them all."""
    assert RespParser().feed(b"*1\r\n$4\r\nPING\r\n") == [[b"PING"]]
    wire = b"".join(encode_command("SET", "key:%012d" % n, "xxx") for n in range(2000))
    commands = RespParser().feed(wire)
    assert commands == [[b"SET", b"key:%012d" % n, b"xxx"] for n in range(2000)]
    assert all(type(arg) is bytes for command in commands for arg in command)


def test_feed_accepts_bytes_bytearray_and_memoryview():
    """feed takes any bytes-like object and returns bytes arguments."""
    wire = b"*1\r\n$4\r\nPING\r\n"
    for data in (wire, bytearray(wire), memoryview(wire)):
        assert RespParser().feed(data) == [[b"PING"]]


@pytest.mark.parametrize("line,args", [
    (b"PING", [b"PING"]),
    (b"  SET   key\tvalue  ", [b"SET", b"key", b"value"]),
    (b'SET k "hello world"', [b"SET", b"k", b"hello world"]),
    (b'SET k "a\\nb\\r\\t\\b\\a\\\\\\"c"', [b"SET", b"k", b'a\nb\r\t\b\a\\"c']),
    (b'SET k "\\x41\\x7a\\xff\\x4"', [b"SET", b"k", b"Az\xffx4"]),
    (b'SET k "\\q"', [b"SET", b"k", b"q"]),
    (b"SET k 'it\\'s \"x\" \\n'", [b"SET", b"k", b"it's \"x\" \\n"]),
    (b'SET k ""', [b"SET", b"k", b""]),
    (b'SET k a"b c"', [b"SET", b"k", b"ab c"]),
    (b"SET k v\x00ignored after a NUL", [b"SET", b"k", b"v"]),
    (b"ECHO \x0bv\x0b", [b"ECHO", b"v\x0b"]),
])
def test_inline_commands_split_like_redis(line, args):
    """Inline lines split on blanks, with "..." escapes and '...' quotes, as sdssplitargs."""
    assert RespParser().feed(line + b"\r\n") == [args]
    assert RespParser().feed(line + b"\n") == [args]
    assert sdssplitargs(line) == args


def test_empty_commands_are_skipped():
    """Blank inline lines, *0 and *-1 produce no command (and no reply)."""
    parser = RespParser()
    assert parser.feed(b"\r\n\n   \t \r\n*0\r\n*-1\r\n*-5\r\n") == []
    assert parser.buffered == 0
    assert parser.feed(b"PING\r\n") == [[b"PING"]]


def test_bulk_strings_are_binary_safe():
    """A payload may hold \\r\\n, NUL and any byte: its length, not a search, ends it."""
    payload = bytes(range(256)) + b"\r\n\r\n*1\r\n$4\r\nPING\r\n"
    assert RespParser().feed(encode_command(b"SET", b"k", payload)) == [[b"SET", b"k", payload]]


def test_every_split_point_gives_the_same_commands():
    """The mixed stream split at any one point gives the same commands, nothing left over."""
    assert RespParser().feed(REQUESTS) == COMMANDS
    for point in range(len(REQUESTS) + 1):
        parser = RespParser()
        assert feed_all(parser, split_at(REQUESTS, [point])) == COMMANDS, point
        assert parser.buffered == 0


def test_one_byte_at_a_time_matches_the_whole_chunk():
    """Byte by byte (the reference parser alone) equals one chunk (the token walk)."""
    assert RespParser().feed(MORE_REQUESTS) == MORE_COMMANDS
    parser = RespParser()
    assert feed_all(parser, one_byte_at_a_time(MORE_REQUESTS)) == MORE_COMMANDS
    assert parser.buffered == 0


def test_random_chunks_and_trailing_partial_command():
    """Random chunkings agree; a trailing partial command stays buffered, counted, not lost."""
    rng = random.Random(SEED)
    tail = b"*2\r\n$3\r\nGET\r\n$5\r\nab"
    for round_number in range(200):
        parser = RespParser()
        cuts = [rng.randint(0, len(MORE_REQUESTS + tail)) for _ in range(rng.randint(1, 20))]
        got = feed_all(parser, split_at(MORE_REQUESTS + tail, cuts))
        assert got == MORE_COMMANDS, "seed=%d round=%d" % (SEED, round_number)
        assert parser.buffered == len(tail)
        assert parser.feed(b"cde\r\n") == [[b"GET", b"abcde"]] and parser.buffered == 0


def test_buffered_counts_every_byte_of_a_begun_command():
    """buffered is the bytes of the unfinished command, even when all its lines are whole."""
    parser = RespParser()
    assert parser.feed(b"PING\r\n*3\r\n") == [[b"PING"]]
    assert parser.buffered == 4
    assert parser.feed(b"$3\r\nSET\r\n$1\r\nk\r\n") == []
    assert parser.buffered == 4 + 9 + 7
    assert parser.feed(b"$1\r\nv\r\n*1") == [[b"SET", b"k", b"v"]]
    assert parser.buffered == 2


def test_inline_splitting_matches_the_sdssplitargs_port():
    """Random inline lines split exactly as the line-by-line port of sdssplitargs does."""
    rng = random.Random(SEED)
    alphabet = b"ab1Fx \t\x0b\x0c\r\"'\\\x00"
    for round_number in range(2000):
        line = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        expected = sdssplitargs(line[:-1] if line.endswith(b"\r") else line)   # as Redis strips
        got = outcome(RespParser, [line + b"\n"])
        if expected is None:
            assert got == ([], "Protocol error: unbalanced quotes in request"), line
        else:
            assert got == ([expected] if expected else [], None), line


# -- protocol errors --------------------------------------------------------------

ERRORS = [
    (b"*abc\r\n", "Protocol error: invalid multibulk length"),
    (b"*01\r\n", "Protocol error: invalid multibulk length"),
    (b"* 1\r\n", "Protocol error: invalid multibulk length"),
    (b"*+1\r\n", "Protocol error: invalid multibulk length"),
    (b"*\r\n", "Protocol error: invalid multibulk length"),
    (b"*2147483648\r\n", "Protocol error: invalid multibulk length"),
    (b"*1048577\r\n", "Protocol error: too many arguments (1048577, the limit is 1048576)"),
    (b"*1\r\nX3\r\nabc\r\n", "Protocol error: expected '$', got 'X'"),
    (b"*1\r\n\r\n", "Protocol error: expected '$', got ' '"),
    (b"*2\r\n$4\r\nECHO\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
    (b"*1\r\r\n$1\r\na\r\n", "Protocol error: invalid multibulk length"),
    (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$1\r\r\na\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$abc\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$03\r\nabc\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$536870913\r\n", "Protocol error: invalid bulk length"),
    (b"*1\r\n$3\r\nabcXY", "Protocol error: invalid bulk data"),
    (b"*1\r\n$3\r\nabc\r\r\n", "Protocol error: invalid bulk data"),
    (b'SET k "unclosed\r\n', "Protocol error: unbalanced quotes in request"),
    (b'SET k "a"b\r\n', "Protocol error: unbalanced quotes in request"),
    (b"SET k 'a\r\n", "Protocol error: unbalanced quotes in request"),
    (b"*" + b"1" * MAX_HEADER_BYTES, "Protocol error: too big mbulk count string"),
    (b"*1\r\n$" + b"1" * MAX_HEADER_BYTES, "Protocol error: too big bulk count string"),
    (b"x" * (64 * 1024 + 1), "Protocol error: too big inline request"),
]


@pytest.mark.parametrize("bad,text", ERRORS, ids=[text for _, text in ERRORS])
def test_protocol_errors_carry_redis_text_prior_commands_and_reply(bad, text):
    """Each error has Redis's text; .commands holds the commands before it; the parser closes."""
    parser = RespParser()
    with pytest.raises(RespProtocolError) as caught:
        parser.feed(b"*1\r\n$4\r\nPING\r\nPING\r\n" + bad)
    assert str(caught.value) == text
    assert caught.value.commands == [[b"PING"], [b"PING"]]
    assert caught.value.reply == b"-ERR " + text.encode() + b"\r\n"
    assert parser.closed and parser.buffered == 0
    with pytest.raises(RespProtocolError, match="^Protocol error"):
        parser.feed(b"*1\r\n$4\r\nPING\r\n")


@pytest.mark.parametrize("bad,text", ERRORS[:-3], ids=[text for _, text in ERRORS[:-3]])
def test_protocol_errors_are_the_same_byte_by_byte(bad, text):
    """Fed one byte at a time, the same bad input raises the same text."""
    assert outcome(RespParser, one_byte_at_a_time(b"PING\r\n" + bad)) == ([[b"PING"]], text)


def test_error_byte_is_shown_as_redis_shows_it():
    """The byte in "expected '$', got" is sent raw, with \\r and \\n turned into spaces."""
    with pytest.raises(RespProtocolError) as caught:
        RespParser().feed(b"*1\r\n\xff\r\n")
    assert caught.value.reply == b"-ERR Protocol error: expected '$', got '\xff'\r\n"


# -- limits ---------------------------------------------------------------------

def test_max_args_at_minus_one_exact_and_plus_one():
    """max_args arguments are accepted; one more is refused from the '*' line alone."""
    for count in (2, 3):
        assert RespParser(max_args=3).feed(encode_command(*["a"] * count)) == [[b"a"] * count]
    with pytest.raises(RespProtocolError,
                       match=r"^Protocol error: too many arguments \(4, the limit is 3\)$"):
        RespParser(max_args=3).feed(b"*4\r\n")
    assert DEFAULT_MAX_ARGS == 1024 * 1024 and DEFAULT_MAX_BULK_BYTES == 512 * 1024 * 1024


def test_max_bulk_bytes_refuses_the_header_before_the_payload():
    """A bulk of max_bulk_bytes is read; one byte more is refused on its '$' line alone."""
    for size in (9, 10):
        assert RespParser(max_bulk_bytes=10).feed(encode_command(b"x" * size)) == [[b"x" * size]]
    parser = RespParser(max_bulk_bytes=10)
    with pytest.raises(RespProtocolError, match="^Protocol error: invalid bulk length$"):
        parser.feed(b"*1\r\n$11\r\n")


def test_a_header_claiming_512_mib_reserves_nothing():
    """A '$' line claiming the largest bulk costs only the bytes that arrived."""
    parser = RespParser()
    tracemalloc.start()
    try:
        parser.feed(b"*1\r\n$%d\r\n" % DEFAULT_MAX_BULK_BYTES + b"x" * 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024
    assert parser.buffered == len(b"*1\r\n$536870912\r\n") + 1000


def test_max_inline_bytes_at_minus_one_exact_and_plus_one():
    """An inline line of the limit (a final \\r not counted) is read; one byte more is refused."""
    for size in (15, 16):
        assert RespParser(max_inline_bytes=16).feed(b"a" * size + b"\r\n") == [[b"a" * size]]
    assert RespParser(max_inline_bytes=16).feed(b"a" * 16 + b"\r") == []
    with pytest.raises(RespProtocolError, match="^Protocol error: too big inline request$"):
        RespParser(max_inline_bytes=16).feed(b"a" * 17 + b"\n")


def test_an_endless_inline_line_fails_once_past_the_limit():
    """A line that never ends fails as it passes the limit, holding at most limit + a chunk."""
    parser = RespParser(max_inline_bytes=1000)
    fed = 0
    with pytest.raises(RespProtocolError, match="too big inline request"):
        while True:
            parser.feed(b"y" * 64)
            fed += 64
            assert parser.buffered == fed <= 1000
    assert fed + 64 > 1000


def test_header_lines_wait_up_to_64_kib_then_fail():
    """An unended '*' or '$' line waits up to 64 KiB, like Redis, and fails one byte later."""
    parser = RespParser()
    assert parser.feed(b"*" + b"1" * (MAX_HEADER_BYTES - 1)) == []
    with pytest.raises(RespProtocolError, match="^Protocol error: too big mbulk count string$"):
        parser.feed(b"1")
    parser = RespParser()
    assert parser.feed(b"*2\r\n$4\r\nECHO\r\n$" + b"1" * (MAX_HEADER_BYTES - 1)) == []
    with pytest.raises(RespProtocolError, match="^Protocol error: too big bulk count string$"):
        parser.feed(b"1")


@pytest.mark.parametrize("limits", [{"max_bulk_bytes": 0}, {"max_args": -1},
                                    {"max_inline_bytes": 0}, {"max_args": "10"}])
def test_limits_must_be_positive(limits):
    """A non-positive (or non-int) limit is a ValueError at construction."""
    with pytest.raises(ValueError):
        RespParser(**limits)


# -- linear cost ------------------------------------------------------------------

@pytest.mark.parametrize("size,chunk", [(64 * 1024, 16), (1024 * 1024, 256)])
def test_a_big_bulk_in_small_chunks_is_linear(size, chunk):
    """A big bulk trickling in holds only the bytes fed and finishes in bounded time."""
    wire = encode_command(b"SET", b"k", b"v" * size)
    parser = RespParser()
    started = time.perf_counter()
    for offset in range(0, len(wire) - chunk, chunk):
        assert parser.feed(wire[offset:offset + chunk]) == []
        assert parser.buffered == offset + chunk
    assert parser.feed(wire[offset + chunk:]) == [[b"SET", b"k", b"v" * size]]
    assert time.perf_counter() - started < 2.0
    assert parser.buffered == 0


def test_a_big_reply_in_small_chunks_is_linear():
    """The reply parser, too, holds only the bytes fed and finishes in bounded time."""
    wire = encode_reply([b"v" * (256 * 1024), b"w"])
    parser = RespReplyParser()
    started = time.perf_counter()
    replies = feed_all(parser, [wire[i:i + 64] for i in range(0, len(wire), 64)])
    assert replies == [[b"v" * (256 * 1024), b"w"]]
    assert time.perf_counter() - started < 2.0


# -- replies --------------------------------------------------------------------

def test_reply_parser_reads_every_type():
    """Every reply type decodes; $-1 and *-1 give None; arrays nest."""
    assert RespReplyParser().feed(REPLIES) == PARSED_REPLIES


def test_reply_parser_every_split_point():
    """The reply stream split at any point, or byte by byte, gives the same values."""
    for point in range(len(REPLIES) + 1):
        parser = RespReplyParser()
        assert feed_all(parser, split_at(REPLIES, [point])) == PARSED_REPLIES, point
        assert parser.buffered == 0
    assert feed_all(RespReplyParser(), one_byte_at_a_time(REPLIES)) == PARSED_REPLIES


def test_reply_parser_buffered_counts_an_open_array():
    """buffered counts the bytes of a reply begun but not finished, even whole elements."""
    parser = RespReplyParser()
    assert parser.feed(b"+OK\r\n*2\r\n:1\r\n") == [OK]
    assert parser.buffered == 8
    assert parser.feed(b":2\r\n") == [[1, 2]] and parser.buffered == 0


def test_deep_nesting_does_not_recurse():
    """100,000 nested arrays decode on an explicit stack, without RecursionError."""
    depth = 100000
    for chunks in ([b"*1\r\n" * depth + b":1\r\n"], [b"*1\r\n" * depth, b":1\r\n"]):
        (value,) = feed_all(RespReplyParser(), chunks)
        for _ in range(depth):
            assert type(value) is list and len(value) == 1
            value = value[0]
        assert value == 1


@pytest.mark.parametrize("bad,text", [
    (b"?x\r\n", "Protocol error: invalid reply type '?'"),
    (b"\r\n", "Protocol error: invalid reply type ' '"),
    (b":12a\r\n", "Protocol error: invalid integer"),
    (b"$-2\r\n", "Protocol error: invalid bulk length"),
    (b"$2\r\nabc\r\n", "Protocol error: invalid bulk data"),
    (b"*-2\r\n", "Protocol error: invalid multibulk length"),
    (b"*x\r\n", "Protocol error: invalid multibulk length"),
])
def test_reply_parser_errors(bad, text):
    """Malformed replies raise RespProtocolError carrying the replies before them."""
    with pytest.raises(RespProtocolError) as caught:
        RespReplyParser().feed(b"+OK\r\n" + bad)
    assert str(caught.value) == text and caught.value.commands == [OK]


def test_reply_parser_limits():
    """A bulk over max_bulk_bytes or an array over max_args is refused on its header."""
    assert RespReplyParser(max_bulk_bytes=3).feed(b"$3\r\nabc\r\n") == [b"abc"]
    with pytest.raises(RespProtocolError, match="invalid bulk length"):
        RespReplyParser(max_bulk_bytes=3).feed(b"$4\r\n")
    assert RespReplyParser(max_args=2).feed(b"*2\r\n:1\r\n:2\r\n") == [[1, 2]]
    with pytest.raises(RespProtocolError, match=r"too many elements \(3, the limit is 2\)"):
        RespReplyParser(max_args=2).feed(b"*3\r\n")
    with pytest.raises(RespProtocolError, match="too big reply line"):
        RespReplyParser(max_bulk_bytes=8).feed(b"+" + b"x" * 9)


# -- fuzz -----------------------------------------------------------------------

def random_argument(rng):
    kind = rng.random()
    if kind < 0.1:
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(1000, 3000)))
    alphabet = b"ab$*\r\n\x00 " if kind < 0.5 else b"abcdefgh"
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def random_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 4 else 7)
    if kind == 0:
        return Status("".join(rng.choice("OK QUEUED é") for _ in range(rng.randint(0, 6))))
    if kind == 1:
        return ReplyError("ERR " + "".join(rng.choice("abc ") for _ in range(rng.randint(0, 6))))
    if kind == 2:
        return rng.randint(-2 ** 63, 2 ** 63 - 1)
    if kind == 3:
        return random_argument(rng)
    if kind == 4:
        return None
    if kind == 5:
        return NIL_ARRAY
    if kind == 6:
        return rng.choice([True, False, "stré", bytearray(b"ba")])
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def parsed(value):
    """Return what RespReplyParser gives back for an encoded ``value``."""
    if value is NIL_ARRAY:
        return None
    if isinstance(value, (list, tuple)):
        return [parsed(item) for item in value]
    if isinstance(value, (Status, ReplyError)) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return value.encode() if isinstance(value, str) else bytes(value)


def random_cuts(rng, data):
    return split_at(data, [rng.randint(0, len(data)) for _ in range(rng.randint(0, 8))])


def test_fuzz_commands_round_trip_through_random_chunks():
    """Random commands (multibulk and inline) survive encode, random splits and parse."""
    rng = random.Random(SEED)
    for round_number in range(300):
        commands, wire = [], []
        for _ in range(rng.randint(1, 12)):
            if rng.random() < 0.2:
                words = [bytes(rng.choice(b"abcxyz") for _ in range(rng.randint(1, 5)))
                         for _ in range(rng.randint(1, 4))]
                commands.append(words)
                wire.append(b" ".join(words) + rng.choice([b"\n", b"\r\n"]))
            else:
                command = [random_argument(rng) for _ in range(rng.randint(1, 5))]
                commands.append(command)
                wire.append(encode_command(*command))
        wire = b"".join(wire)
        parser = RespParser()
        assert feed_all(parser, random_cuts(rng, wire)) == commands, \
            "seed=%d round=%d" % (SEED, round_number)
        assert parser.buffered == 0


def test_fuzz_replies_round_trip_through_random_chunks():
    """Random nested replies survive encode_reply, random splits and RespReplyParser."""
    rng = random.Random(SEED)
    for round_number in range(300):
        values = [random_value(rng) for _ in range(rng.randint(1, 8))]
        wire = encode_replies(values)
        parser = RespReplyParser()
        assert feed_all(parser, random_cuts(rng, wire)) == [parsed(v) for v in values], \
            "seed=%d round=%d" % (SEED, round_number)
        assert parser.buffered == 0


@pytest.mark.parametrize("make", [RespParser, RespReplyParser], ids=["requests", "replies"])
def test_fuzz_garbage_parses_or_raises_the_same_whatever_the_chunking(make):
    """Garbage gives values or RespProtocolError (nothing else), alike in any chunking."""
    rng = random.Random(SEED)
    samples = [REQUESTS[:300], REPLIES]
    for round_number in range(2000):
        if round_number % 2:
            data = bytes(rng.choice(b"*$:+-\r\n0123456789 \"'\\xab\x00")
                         for _ in range(rng.randint(0, 40)))
        else:
            data = bytearray(rng.choice(samples))
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data)
        whole = outcome(make, [data])
        context = "seed=%d round=%d data=%r" % (SEED, round_number, data)
        assert outcome(make, random_cuts(rng, data)) == whole, context
        if round_number % 10 == 0:
            assert outcome(make, one_byte_at_a_time(data)) == whole, context
