"""The HTTP/1.1 response parser (reactor/http/response_parser.py): framing, refusals, limits."""

import random
import time

import pytest

from reactor.http.parser import END_CHUNKS, MAX_CHUNK_LINE_BYTES, format_chunk
from reactor.http.response_parser import (DEFAULT_MAX_HEAD_BYTES, Data, EndOfMessage, HTTPError,
                                          ResponseHead, ResponseParser)
from tests.support.http_events import event_tuples

LENGTH = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n")
UNTIL_CLOSE = b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\nall of it, until the server closes"
INTERIM = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
           b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
UPGRADE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
           b"\x81\x02hi")

#: (name, method, wire bytes, needs EOF, expected normalised events, bytes left after)
CASES = [
    ("length", "GET", LENGTH, False,
     [("head", 200, "OK", "1.1", [("content-type", "text/plain"), ("content-length", "5")],
       True, "length", 5), ("data", b"hello"), ("end",)], b""),
    ("chunked", "GET", CHUNKED, False,
     [("head", 200, "OK", "1.1", [("transfer-encoding", "chunked")], True, "chunked", None),
      ("data", b"hello world"), ("end",)], b""),
    ("until-close", "GET", UNTIL_CLOSE, True,
     [("head", 200, "OK", "1.0", [("server", "old")], False, "until-close", None),
      ("data", b"all of it, until the server closes"), ("end",)], b""),
    ("interim", "POST", INTERIM, False,
     [("head", 201, "Created", "1.1", [("content-length", "2")], True, "length", 2),
      ("data", b"ok"), ("end",)], b""),
    ("upgrade", "GET", UPGRADE, False,
     [("head", 101, "Switching Protocols", "1.1",
       [("upgrade", "websocket"), ("connection", "Upgrade")], False, "none", None), ("end",)],
     b"\x81\x02hi"),
    ("head", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", False,
     [("head", 200, "OK", "1.1", [("content-length", "100")], True, "none", 100), ("end",)],
     b""),
    ("204", "DELETE", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", False,
     [("head", 204, "No Content", "1.1", [("content-length", "0")], True, "none", 0),
      ("end",)], b""),
    ("304", "GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", False,
     [("head", 304, "Not Modified", "1.1", [("content-length", "9")], True, "none", 9),
      ("end",)], b""),
    ("empty", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
     False, [("head", 200, "OK", "1.1", [("content-length", "0"), ("connection", "close")],
              False, "length", 0), ("end",)], b""),
    ("bare-lf-no-reason", "GET", b"HTTP/1.1 404\nContent-Length: 1\n\nx", False,
     [("head", 404, "", "1.1", [("content-length", "1")], True, "length", 1),
      ("data", b"x"), ("end",)], b""),
    ("trailing-bytes", "GET", LENGTH + b"HTTP/1.1 200 OK\r\n", False,
     [("head", 200, "OK", "1.1", [("content-type", "text/plain"), ("content-length", "5")],
       True, "length", 5), ("data", b"hello"), ("end",)], b"HTTP/1.1 200 OK\r\n"),
]


def normalise(events):
    """Return events as tuples, adjacent Data pieces joined (chunking must not matter)."""
    return event_tuples(events, ResponseHead, "head")


def feed_pieces(pieces, method="GET", eof=False, **limits):
    """Feed ``pieces`` (then EOF if asked); return (events, parser)."""
    parser = ResponseParser(method, **limits)
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    if eof:
        events += parser.feed_eof()
    return events, parser


def cut(data, rng):
    """Return ``data`` cut at a few random offsets."""
    cuts = sorted(rng.sample(range(len(data) + 1), rng.randrange(0, 6)))
    return [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]


def refusal(data, method="GET", eof=False, **limits):
    """Return the status of the HTTPError that ``data`` raises, fed whole and byte by byte."""
    statuses = []
    for pieces in ([data], [data[i:i + 1] for i in range(len(data))]):
        with pytest.raises(HTTPError) as info:
            feed_pieces(pieces, method, eof, **limits)
        statuses.append(info.value.status)
    assert statuses[0] == statuses[1]
    return statuses[0]


def response(*fields, status="200 OK", version="1.1", body=b""):
    lines = ["HTTP/%s %s" % (version, status)] + list(fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# -- what a response parses to --------------------------------------------------

@pytest.mark.parametrize("name, method, data, eof, expected, rest", CASES,
                         ids=[case[0] for case in CASES])
def test_every_split_point_gives_the_same_events(name, method, data, eof, expected, rest):
    """Each body kind parses the same whole, split at every offset, and byte by byte."""
    for split in range(len(data) + 1):
        events, parser = feed_pieces([data[:split], data[split:]], method, eof)
        assert normalise(events) == expected, split
        assert parser.take_rest() == rest, split
    events, parser = feed_pieces([data[i:i + 1] for i in range(len(data))], method, eof)
    assert normalise(events) == expected and parser.take_rest() == rest


@pytest.mark.parametrize("name, method, data, eof, expected, rest", CASES,
                         ids=[case[0] for case in CASES])
def test_random_pieces_give_the_same_events(name, method, data, eof, expected, rest):
    """Random cuts (seed printed on failure) give the same events and leave the same rest."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(50):
        events, parser = feed_pieces(cut(data, rng), method, eof)
        assert normalise(events) == expected, "seed %d" % seed
        assert parser.take_rest() == rest, "seed %d" % seed


def test_body_bytes_leave_in_the_feed_that_brought_them():
    """A Content-Length body is passed on as it arrives; nothing waits for the rest."""
    parser = ResponseParser()
    assert normalise(parser.feed(LENGTH[:-3]))[1:] == [("data", b"he")]
    assert parser.buffered == 0
    assert parser.feed(b"llo") == [Data(b"llo"), EndOfMessage()]


def test_an_until_close_body_ends_only_at_eof():
    """An until-close body has no end of its own: feed_eof() gives the EndOfMessage."""
    events, parser = feed_pieces([UNTIL_CLOSE])
    assert normalise(events)[-1] == ("data", b"all of it, until the server closes")
    assert parser.feed(b" and more") == [Data(b" and more")]
    assert parser.feed_eof() == [EndOfMessage()]


def test_keep_alive_follows_version_and_connection():
    """1.1 keeps alive unless Connection: close; 1.0 only with keep-alive; no length never."""
    def keep_alive(data):
        return feed_pieces([data])[0][0].keep_alive
    assert keep_alive(response("Content-Length: 0"))
    assert not keep_alive(response("Connection: Keep-Alive, close", "Content-Length: 0"))
    assert not keep_alive(response("Content-Length: 0", version="1.0"))
    assert keep_alive(response("Connection: keep-alive", "Content-Length: 0", version="1.0"))
    assert not keep_alive(response("Connection: keep-alive", version="1.1"))   # until-close


def test_a_101_leaves_the_rest_to_the_caller_however_much_follows():
    """After a 101 nothing more is parsed: every later byte is kept for take_rest()."""
    events, parser = feed_pieces([UPGRADE])
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\nmore frames") == []
    assert parser.take_rest() == b"\x81\x02hiGET / HTTP/1.1\r\n\r\nmore frames"
    assert parser.buffered == 0 and parser.feed_eof() == []


def test_1xx_heads_are_skipped_without_events():
    """Interim responses alone produce no events; the final head is the first event."""
    parser = ResponseParser("POST")
    assert parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n") == []
    assert parser.feed(b"HTTP/1.1 102 Processing\r\nX: 1\r\n\r\n") == []
    assert normalise(parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))[0][1] == 200


def test_a_response_to_head_ignores_transfer_encoding_too():
    """HEAD's response has no body even when it says chunked."""
    events, parser = feed_pieces([response("Transfer-Encoding: chunked") + b"0\r\n\r\n"],
                                 "HEAD")
    assert [event[0] for event in normalise(events)] == ["head", "end"]
    assert parser.take_rest() == b"0\r\n\r\n"


# -- refusals -------------------------------------------------------------------

@pytest.mark.parametrize("data, status", [
    (response("Content-Length: 3", "Transfer-Encoding: chunked"), 502),
    (response("Transfer-Encoding: chunked", "Content-Length: 3"), 502),
    (response("Content-Length: 3", "Content-Length: 4"), 502),
    (response("Content-Length: 3, 4"), 502),
    (response("Content-Length: -1"), 502),
    (response("Content-Length: 0x10"), 502),
    (response("Transfer-Encoding: gzip, chunked"), 502),
    (response("Transfer-Encoding: chunked, chunked"), 502),
    (response("Transfer-Encoding: chunked", version="1.0"), 502),
    (response("X: a\rb", "Content-Length: 0"), 502),
    (response("X: a", " folded", "Content-Length: 0"), 502),
    (response("X : a", "Content-Length: 0"), 502),
    (response("X: a\x00", "Content-Length: 0"), 502),
    (response("NoColon", "Content-Length: 0"), 502),
    (response(status="20 OK"), 502),
    (response(status="600 Too High"), 502),
    (response(status="200 OK\x7f"), 502),
    (response(version="2.0"), 502),
    (b"ICY 200 OK\r\n\r\n", 502),
    (b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 502),
], ids=lambda value: value if isinstance(value, int) else value[:60].decode("latin-1"))
def test_malformed_and_smuggling_heads_are_refused(data, status):
    """Each malformed head, and each framing a smuggler could exploit, raises HTTPError."""
    assert refusal(data) == status


@pytest.mark.parametrize("body", [
    b"5\r\nhelloXX",                     # chunk data not followed by CRLF
    b"5\nhello\r\n0\r\n\r\n",            # bare LF after a chunk size
    b"z\r\n",                            # not hex
    b"5 5\r\nhello\r\n",                 # junk in the size
    b"1" * (MAX_CHUNK_LINE_BYTES + 2),   # a chunk line that never ends
    b"0\r\nBad Trailer\r\n\r\n",         # a trailer line without a colon
])
def test_malformed_chunked_bodies_are_refused(body):
    """The chunked reader (shared with the request parser) refuses what it refuses there."""
    refusal(response("Transfer-Encoding: chunked") + body)


def test_after_an_error_every_feed_raises():
    """A refused response closes the parser: later feeds and feed_eof raise too."""
    parser = ResponseParser()
    with pytest.raises(HTTPError):
        parser.feed(b"HTTP/9.9 200 OK\r\n\r\n")
    assert parser.closed
    for call in (lambda: parser.feed(b"HTTP/1.1 200 OK\r\n\r\n"), parser.feed_eof):
        with pytest.raises(HTTPError, match="closed by an earlier error"):
            call()


# -- truncation -----------------------------------------------------------------

@pytest.mark.parametrize("data, why", [
    (b"", "before any response"),
    (b"HTTP/1.1 200 OK\r\nContent-Le", "inside the response head"),
    (b"HTTP/1.1 100 Continue\r\n\r\n", "before any response"),
    (LENGTH[:-2], "with 2 of 5 body bytes missing"),
    (CHUNKED[:-5], "inside the chunked body"),
    (CHUNKED[:60], "inside the chunked body"),
])
def test_eof_before_the_response_ended_raises(data, why):
    """A close that cuts a head, a counted body or a chunked body is an error, not an end."""
    for pieces in ([data], [data[i:i + 1] for i in range(len(data))]):
        with pytest.raises(HTTPError, match=why) as info:
            feed_pieces(pieces, eof=True)
        assert info.value.status == 502


def test_eof_after_a_complete_response_is_quiet():
    """Once the response has ended, feed_eof() adds nothing."""
    for data in (LENGTH, CHUNKED):
        events, parser = feed_pieces([data])
        assert parser.feed_eof() == [] and normalise(events)[-1] == ("end",)


# -- limits ---------------------------------------------------------------------

def head_of_size(size):
    """Return a head of exactly ``size`` bytes (its empty line included), Content-Length 0."""
    base = response("Content-Length: 0", "X: ")
    return response("Content-Length: 0", "X: " + "v" * (size - len(base)))


def test_head_size_limit_at_the_boundary():
    """A head of exactly max_head_bytes passes; one byte more is refused, whole or dripped."""
    for limit in (100, DEFAULT_MAX_HEAD_BYTES):
        for size in (limit - 1, limit):
            data = head_of_size(size)
            assert len(data) == size
            events, _ = feed_pieces([data], max_head_bytes=limit)
            assert normalise(events)[-1] == ("end",)
        assert refusal(head_of_size(limit + 1), max_head_bytes=limit) == 502


def test_an_endless_head_is_refused_once_past_the_limit():
    """A head that never ends is refused as soon as it passes the limit, not later."""
    parser = ResponseParser(max_head_bytes=100)
    parser.feed(b"HTTP/1.1 200 OK\r\nX: " + b"v" * 80)      # 100 bytes: still waiting
    with pytest.raises(HTTPError, match="longer than 100"):
        parser.feed(b"v")


def test_header_count_limit_at_the_boundary():
    """max_headers fields pass; one more is refused."""
    def with_fields(count):
        return response(*(["Content-Length: 0"] + ["X-%d: v" % i for i in range(count - 1)]))
    for count in (99, 100):
        assert normalise(feed_pieces([with_fields(count)])[0])[-1] == ("end",)
    assert refusal(with_fields(101)) == 502
    assert refusal(with_fields(4), max_headers=3) == 502


@pytest.mark.parametrize("kind", ["length", "chunked", "until-close"])
def test_body_limit_at_the_boundary(kind):
    """max_body_bytes passes at the limit and refuses one byte more (413), for each framing."""
    def wire(size):
        body = b"b" * size
        if kind == "length":
            return response("Content-Length: %d" % size, body=body)
        if kind == "chunked":
            return (response("Transfer-Encoding: chunked") + format_chunk(body[:4])
                    + format_chunk(body[4:]) + END_CHUNKS)
        return response(body=body)
    for size in (9, 10):
        events, _ = feed_pieces([wire(size)], eof=kind == "until-close", max_body_bytes=10)
        assert normalise(events)[-2:] == [("data", b"b" * size), ("end",)]
    assert refusal(wire(11), eof=kind == "until-close", max_body_bytes=10) == 413


def test_limits_must_be_positive_ints():
    """A zero or negative limit is refused when the parser is made."""
    for limits in (dict(max_head_bytes=0), dict(max_headers=-1), dict(max_body_bytes=0)):
        with pytest.raises(ValueError):
            ResponseParser(**limits)


def drip(field_count):
    """Feed a ~64 KiB head a byte at a time; return (seconds, bytes, events)."""
    data = response(*(["Content-Length: 0"] + ["X-%04d: %s" % (i, "v" * 640)
                                               for i in range(field_count - 1)]))
    parser = ResponseParser()
    started = time.perf_counter()
    events = [event for i in range(len(data)) for event in parser.feed(data[i:i + 1])]
    return time.perf_counter() - started, len(data), events


def test_a_64_kib_head_dripped_byte_by_byte_is_linear():
    """The search for a head's end resumes where it stopped: cost per byte stays flat."""
    seconds, size, events = drip(100)
    assert 60000 < size <= DEFAULT_MAX_HEAD_BYTES and seconds < 2.0 and len(events) == 2
    big = min(seconds / size for seconds, size, _ in [drip(100) for _ in range(2)])
    small = min(seconds / size for seconds, size, _ in [drip(13) for _ in range(3)])
    assert big < 2.5 * small, (big, small)


# -- fuzzing --------------------------------------------------------------------

def random_response(rng):
    """Return (method, wire bytes, needs EOF, expected normalised events) for a valid response."""
    version = rng.choice(["1.0", "1.1"])
    method = rng.choice(["GET", "GET", "HEAD", "POST"])
    status, reason = rng.choice([(200, "OK"), (404, "Not Found"), (500, ""), (204, "X"),
                                 (304, "Not Modified")])
    headers = [(rng.choice(["server", "x-a", "set-cookie"]), rng.choice(["", "v", "a b"]))
               for _ in range(rng.randrange(4))]
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    kind = rng.choice(["length", "chunked", "until-close"] if version == "1.1"
                      else ["length", "until-close"])
    if kind == "length":
        headers.append(("content-length", str(len(body))))
    elif kind == "chunked":
        headers.append(("transfer-encoding", "chunked"))
    rng.shuffle(headers)
    bodiless = method == "HEAD" or status in (204, 304)
    end = rng.choice(["\r\n", "\n"])
    wire = ("HTTP/%s %d %s%s" % (version, status, reason, end) + "".join(
        "%s: %s%s" % (name.title(), value, end) for name, value in headers) + end).encode()
    if not bodiless:
        wire += (b"".join(format_chunk(body[i:i + 7]) for i in range(0, len(body), 7))
                 + END_CHUNKS if kind == "chunked" else body)
    keep_alive = version == "1.1" and (bodiless or kind != "until-close")
    head = ("head", status, reason, version, headers, keep_alive, "none" if bodiless else kind,
            len(body) if kind == "length" else None)
    events = [head] + ([("data", body)] if body and not bodiless else []) + [("end",)]
    return method, wire, kind == "until-close" and not bodiless, events


def test_fuzz_random_valid_responses_in_random_pieces():
    """Random valid responses parse to what was written, however the bytes are cut."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(400):
        method, wire, eof, expected = random_response(rng)
        events, parser = feed_pieces(cut(wire, rng), method, eof)
        assert normalise(events) == expected, "seed %d: %r" % (seed, wire)
        assert parser.buffered == 0, "seed %d" % seed


def test_fuzz_garbage_raises_only_http_error_however_cut():
    """Mutated responses raise only HTTPError, with the same verdict however they are cut."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    alphabet = b"HTP/1.0 2345\r\n:; \t\x00\x7f\xffabc-,chunkedContent-Length"

    def outcome(pieces):
        try:
            events, parser = feed_pieces(pieces, eof=True, max_head_bytes=60, max_headers=4,
                                         max_body_bytes=20)
        except HTTPError:
            return ("refused",)
        return ("ok", normalise(events), parser.buffered)
    for _ in range(1500):
        data = bytearray(rng.choice([LENGTH, CHUNKED, INTERIM, UNTIL_CLOSE]))
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.choice(alphabet)
        data = bytes(data)
        try:
            whole = outcome([data])
            for size in (7, 1):
                assert outcome([data[i:i + size] for i in range(0, len(data), size)]) == whole, \
                    "seed %d: %r cut by %d" % (seed, data, size)
        except AssertionError:
            raise
        except Exception as exc:      # the failure message must carry the seed
            pytest.fail("seed %d: %r raised %r" % (seed, data, exc))
