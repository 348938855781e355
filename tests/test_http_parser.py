"""The HTTP/1.1 request parser and response writer (reactor/http/parser.py)."""

import random
import time

import pytest

from reactor.errors import FramingError
from reactor.http.parser import (END_CHUNKS, Data, EndOfMessage, HTTPError, RequestHead,
                                 RequestParser, format_chunk, format_response)
from tests.support.http_events import event_tuples

GET = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
PIPELINE = (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nworld\r\n3\r\n!!!\r\n0\r\nX-Trailer: yes\r\n\r\n")


def normalise(events):
    """Return events as tuples, adjacent Data pieces joined (chunking must not matter)."""
    return event_tuples(events, RequestHead, "request")


def feed_pieces(pieces, **limits):
    parser = RequestParser(**limits)
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events, parser


def parse(data, **limits):
    return feed_pieces([data], **limits)[0]


def refusal(data, **limits):
    with pytest.raises(HTTPError) as info:
        parse(data, **limits)
    return info.value.status


def request(head, version="1.1", host=True):
    lines = ["GET / HTTP/%s" % version] + (["Host: x"] if host else []) + head
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# -- what a request parses to ---------------------------------------------------

def test_a_simple_get():
    """A GET in one chunk gives its RequestHead and EndOfMessage, and holds nothing back."""
    events, parser = feed_pieces([GET])
    assert events == [RequestHead("GET", "/index.html?q=1", "1.1",
                              [("host", "example.com"), ("accept", "*/*")],
                              True, False, "none", None), EndOfMessage()]
    assert parser.buffered == 0 and not parser.closed


def test_repeated_fields_keep_their_order_and_names_are_lowercased():
    """Every field is kept, in order, repeats included; names lowercased, OWS stripped."""
    events = parse(request(["Accept: a", "X-Y:   1  ", "accept:\tb\t", "Empty:"]))
    assert events[0].headers == [("host", "x"), ("accept", "a"), ("x-y", "1"),
                                 ("accept", "b"), ("empty", "")]


def test_lf_only_lines_and_leading_empty_lines_are_accepted():
    """Bare LF ends a head line (RFC 9112 2.2), and empty lines before a request are skipped."""
    events = parse(b"\r\n\n\r\nGET / HTTP/1.1\nHost: x\nA: b\r\n\n")
    assert events[0].headers == [("host", "x"), ("a", "b")] and events[1] == EndOfMessage()


def test_every_split_point_gives_the_same_events():
    """Three pipelined requests parse the same whole, split at every offset, and byte by byte."""
    expected = normalise(parse(PIPELINE))
    assert [event[0] for event in expected] == ["request", "end", "request", "data", "end",
                                                 "request", "data", "end"]
    assert expected[3] == ("data", b"hello") and expected[6] == ("data", b"world!!!")
    for split in range(len(PIPELINE) + 1):
        events, parser = feed_pieces([PIPELINE[:split], PIPELINE[split:]])
        assert normalise(events) == expected, split
        assert parser.buffered == 0
    events, parser = feed_pieces([PIPELINE[i:i + 1] for i in range(len(PIPELINE))])
    assert normalise(events) == expected


def test_chunk_extensions_and_trailers_are_read_and_dropped():
    """Chunk extensions (with whitespace before ";") and trailer fields leave no trace."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"3 ;a=1\r\nabc\r\n1;b\r\nd\r\n0;c\r\nT: 1\r\nU: 2\r\n\r\n"
    assert normalise(parse(head + body))[1:] == [("data", b"abcd"), ("end",)]


def test_body_bytes_are_passed_on_as_they_arrive():
    """A Content-Length body leaves in the feed that brought it; nothing waits for the rest."""
    parser = RequestParser()
    head = b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"
    assert normalise(parser.feed(head + b"abc"))[1:] == [("data", b"abc")]
    assert parser.buffered == 0
    assert parser.feed(b"defghij" + b"GET") == [Data(b"defghij"), EndOfMessage()]
    assert parser.buffered == 3


def test_content_length_zero_and_identical_repeats():
    """Content-Length 0 ends at once; identical repeated or listed values are one length."""
    events = parse(request(["Content-Length: 0"]))
    assert events[0].body_kind == "length" and events[1:] == [EndOfMessage()]
    events = parse(request(["Content-Length: 3, 3", "Content-Length: 3"]) + b"abc")
    assert events[0].content_length == 3 and events[1] == Data(b"abc")


@pytest.mark.parametrize("version, connection, keep_alive", [
    ("1.1", None, True), ("1.1", "close", False), ("1.1", "Close", False),
    ("1.1", "keep-alive", True), ("1.0", None, False), ("1.0", "keep-alive", True),
    ("1.0", "Keep-Alive", True), ("1.0", "close", False), ("1.1", "upgrade, CLOSE", False),
])
def test_keep_alive_rules(version, connection, keep_alive):
    """HTTP/1.1 keeps alive unless Connection: close; 1.0 only with keep-alive (any case)."""
    head = ["Connection: %s" % connection] if connection else []
    assert parse(request(head, version))[0].keep_alive is keep_alive


def test_expect_100_continue():
    """Expect: 100-continue is reported on HTTP/1.1 and ignored from 1.0 (RFC 9110 10.1.1)."""
    head = ["Expect: 100-Continue", "Content-Length: 1"]
    assert parse(request(head, "1.1"))[0].expect_continue is True
    assert parse(request(head, "1.0"))[0].expect_continue is False
    assert parse(request([], "1.1"))[0].expect_continue is False


# -- refusals ----------------------------------------------------------------

@pytest.mark.parametrize("data, status", [
    (request(["Content-Length: 1", "Transfer-Encoding: chunked"]), 400),
    (request(["Content-Length: 1", "Content-Length: 2"]), 400),
    (request(["Content-Length: 1, 2"]), 400),
    (request(["Content-Length: +5"]), 400),
    (request(["Content-Length: 0x5"]), 400),
    (request(["Content-Length: \u00b2"]), 400),
    (request(["Content-Length:"]), 400),
    (request(["A: b", " folded"]), 400),
    (request(["A : b"]), 400),
    (request(["A: b\rc"]), 400),
    (b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
    (request(["A: b\x01"]), 400),
    (request(["A\x7f: b"]), 400),
    (request(["no colon"]), 400),
    (request([], host=False), 400),
    (request(["Host: y"]), 400),
    (request(["Transfer-Encoding: chunked"], "1.0", host=False), 400),
    (request(["Transfer-Encoding: gzip"]), 400),
    (request(["Transfer-Encoding: chunked, gzip"]), 400),
    (request(["Transfer-Encoding: chunked, chunked"]), 400),
    (request(["Transfer-Encoding: gzip, chunked"]), 501),
    (request(["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"]), 501),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTPS/1.1\r\nHost: x\r\n\r\n", 400),
    (b"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
])
def test_refusals_have_their_status(data, status):
    """Each malformed or smuggling-prone head is refused with its exact status."""
    assert refusal(data) == status


@pytest.mark.parametrize("body, status", [
    (b"5\r\nhelloX\r\n0\r\n\r\n", 400),            # no CRLF after the chunk
    (b"5\nhello\r\n0\r\n\r\n", 400),               # bare LF ends a chunk-size line
    (b"z\r\n", 400),
    (b";ext\r\n", 400),
    (b"5 \r\nhello\r\n0\r\n\r\n", 400),             # whitespace only before ";"
    (b"-5\r\n", 400),
    (b"1" * 17 + b"\r\n", 400),
    (b"1;" + b"x" * 1100, 400),                    # size line over 1 KiB, unended
    (b"0\r\nBad Trailer: x\r\n\r\n", 400),
])
def test_chunked_refusals(body, status):
    """Chunked framing is strict: hex sizes, bounded size lines, CRLF after data, trailers."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refusal(head + body) == status


def test_request_line_limit_at_the_boundary():
    """A request line of exactly max_request_line bytes passes; one more byte is 414."""
    line = b"GET /" + b"a" * 95 + b" HTTP/1.1"
    assert len(parse(line + b"\r\nHost: x\r\n\r\n", max_request_line=len(line))) == 2
    assert refusal(line + b"\r\nHost: x\r\n\r\n", max_request_line=len(line) - 1) == 414


def test_an_unended_request_line_fails_at_the_limit_not_later():
    """Dripped without a line end, a request line is refused on the byte that passes the limit."""
    parser = RequestParser(max_request_line=100)
    for count in range(1, 1000):
        try:
            parser.feed(b"G" if count < 4 else b"a")
        except HTTPError as exc:
            assert exc.status == 414
            break
    assert count == 101


def test_header_bytes_limit_both_ways():
    """Field lines of exactly max_header_bytes pass; one byte more is 431, ended or not."""
    fields = b"Host: x\r\nA: " + b"b" * 50 + b"\r\n"
    data = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
    assert len(parse(data, max_header_bytes=len(fields))) == 2
    assert refusal(data, max_header_bytes=len(fields) - 1) == 431
    parser = RequestParser(max_header_bytes=100)
    parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\nA: ")
    with pytest.raises(HTTPError) as info:
        for _ in range(200):
            parser.feed(b"b")
    assert info.value.status == 431 and parser.buffered == 0


def test_header_count_limit_both_ways():
    """max_headers fields pass; one more is 431."""
    head = ["F%d: v" % index for index in range(9)]
    assert len(parse(request(head), max_headers=10)) == 2
    assert refusal(request(head + ["G: v"]), max_headers=10) == 431


def test_body_limit_on_content_length_and_chunked():
    """A Content-Length over max_body_bytes is 413 at once; chunked when the total passes it."""
    assert refusal(request(["Content-Length: 11"]), max_body_bytes=10) == 413
    assert refusal(request(["Content-Length: " + "9" * 5000])) == 413
    assert len(parse(request(["Content-Length: 10"]) + b"x" * 10, max_body_bytes=10)) == 3
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    ok = head + b"6\r\nxxxxxx\r\n4\r\nyyyy\r\n" + END_CHUNKS
    assert normalise(parse(ok, max_body_bytes=10))[1] == ("data", b"xxxxxxyyyy")
    assert refusal(head + b"6\r\nxxxxxx\r\n5\r\n", max_body_bytes=10) == 413


def test_after_an_error_every_feed_raises():
    """An error closes the parser: later feeds raise with the same status, even good input."""
    parser = RequestParser()
    with pytest.raises(HTTPError):
        parser.feed(b"GET / HTTP/2.0\r\n\r\n")
    assert parser.closed and parser.buffered == 0
    with pytest.raises(HTTPError) as info:
        parser.feed(GET)
    assert info.value.status == 505 and isinstance(info.value, FramingError)
    assert info.value.reason == "framing" and info.value.phrase == "HTTP Version Not Supported"


def drip_head(field_count):
    """Drip a head of ``field_count`` 650-byte fields; return (seconds, bytes, events)."""
    fields = b"Host: x\r\n" + b"".join(b"X-%04d: %s\r\n" % (i, b"v" * 640)
                                        for i in range(field_count - 1))
    data = b"GET / HTTP/1.1\r\n" + fields + b"\r\n"
    parser = RequestParser()
    started = time.perf_counter()
    events = [event for i in range(len(data)) for event in parser.feed(data[i:i + 1])]
    return time.perf_counter() - started, len(data), events


def test_a_64_kib_head_dripped_byte_by_byte_is_linear():
    """A 64 KiB head fed a byte at a time parses fast, its cost per byte flat (no rescans)."""
    seconds, size, events = drip_head(100)
    assert 60_000 < size <= 65_536 + 100 and seconds < 2.0
    assert len(events) == 2 and len(events[0].headers) == 100
    big = min(seconds / size for seconds, size, _ in [drip_head(100) for _ in range(2)])
    small = min(seconds / size for seconds, size, _ in [drip_head(13) for _ in range(3)])
    assert big < 2.5 * small, (big, small)


# -- fuzzing ------------------------------------------------------------------

def random_request(rng):
    """Return (wire bytes, expected normalised events) for one random valid request."""
    version = rng.choice(["1.0", "1.1"])
    names = ["accept", "user-agent", "x-thing", "cookie", "a", "b-c"]
    headers = [("host", "h%d.example" % rng.randrange(100))] if version == "1.1" else []
    headers += [(rng.choice(names), rng.choice(["", "v", "a b", "x=1; y=2", "\xe9t\xe9"]))
                for _ in range(rng.randrange(5))]
    rng.shuffle(headers)
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(40)))
    kind = rng.choice(["none", "length", "chunked"] if version == "1.1" else ["none", "length"])
    if kind == "length":
        headers.append(("content-length", str(len(body))))
    elif kind == "chunked":
        headers.append(("transfer-encoding", "chunked"))
    else:
        body = b""
    end = rng.choice(["\r\n", "\n"])
    method, target = rng.choice(["GET", "POST", "PUT", "M-SEARCH"]), "/p%d?q=%d" % (
        rng.randrange(9), rng.randrange(9))
    head = "%s %s HTTP/%s%s" % (method, target, version, end)
    head += "".join("%s:%s%s%s" % (name.title(), rng.choice(["", " ", "\t "]), value, end)
                    for name, value in headers) + end
    wire = rng.choice([b"", b"\r\n"]) + head.encode("latin-1")
    if kind == "chunked":
        cuts = sorted(rng.sample(range(1, len(body)), min(2, max(0, len(body) - 1))))
        for start, stop in zip([0] + cuts, cuts + [len(body)]):
            wire += format_chunk(body[start:stop])
        wire += END_CHUNKS
    else:
        wire += body
    keep_alive = version == "1.1"
    expected = [("request", method, target, version, headers, keep_alive, False, kind,
                 len(body) if kind == "length" else None)]
    return wire, expected + ([("data", body)] if body else []) + [("end",)]


def test_fuzz_random_valid_requests_round_trip_in_random_pieces():
    """Random valid pipelines parse to what was written, however the bytes are cut."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(300):
        pairs = [random_request(rng) for _ in range(rng.randrange(1, 4))]
        wire = b"".join(w for w, _ in pairs)
        expected = [event for _, events in pairs for event in events]
        cuts = sorted(rng.sample(range(len(wire) + 1), rng.randrange(0, 6)))
        pieces = [wire[a:b] for a, b in zip([0] + cuts, cuts + [len(wire)])]
        events, parser = feed_pieces(pieces)
        assert normalise(events) == expected, "seed %d" % seed
        assert parser.buffered == 0, "seed %d" % seed


def outcome(pieces, **limits):
    """Return ("ok", events, buffered) or ("refused",), for comparing ways of cutting a stream."""
    try:
        events, parser = feed_pieces(pieces, **limits)
    except HTTPError:
        return ("refused",)
    return ("ok", normalise(events), parser.buffered)


def test_fuzz_garbage_raises_only_http_error_however_cut():
    """Random and mutated bytes raise only HTTPError, with the same verdict however cut."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    alphabet = b"GET /HTP1.0\r\n:; \t\x00\x7f\xffabc0123456789-,chunkedContent-Length"
    limits = dict(max_request_line=40, max_header_bytes=60, max_headers=4, max_body_bytes=20)
    for _ in range(1500):
        if rng.random() < 0.3:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        else:
            data = bytearray(rng.choice([PIPELINE, GET]))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.choice(alphabet)
            data = bytes(data)
        try:
            whole = outcome([data], **limits)
            for size in (7, 1):
                cut = outcome([data[i:i + size] for i in range(0, len(data), size)], **limits)
                assert cut == whole, "seed %d: %r cut by %d" % (seed, data, size)
        except AssertionError:
            raise
        except Exception as exc:      # the failure message must carry the seed
            pytest.fail("seed %d: %r raised %r" % (seed, data, exc))


def test_limits_must_be_positive_ints():
    """A limit of 0, a negative one or a non-int is refused when the parser is made."""
    for bad in (dict(max_request_line=0), dict(max_headers=-1), dict(max_body_bytes=1.5)):
        with pytest.raises(ValueError):
            RequestParser(**bad)


# -- the response side ------------------------------------------------------------

def test_format_response_golden_bytes():
    """A response has its status line, fields in order, a Content-Length, and the body."""
    assert format_response(200, [("Content-Type", "text/plain")], b"hi") == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")
    assert format_response(404, [], reason="Nope") == (
        b"HTTP/1.1 404 Nope\r\nContent-Length: 0\r\n\r\n")
    assert format_response(204, [("X", "1")]) == b"HTTP/1.1 204 No Content\r\nX: 1\r\n\r\n"
    assert format_response(100, []) == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert format_response(304, []) == b"HTTP/1.1 304 Not Modified\r\n\r\n"
    assert format_response(200, [("content-length", "5")]) == (
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n")
    assert format_response(299, []) == b"HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"


def test_format_response_chunked_and_format_chunk():
    """Chunked responses get Transfer-Encoding and their body as the first chunk."""
    assert format_response(200, [], b"abc", chunked=True) == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    assert format_chunk(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    assert format_chunk(b"") == b"" and END_CHUNKS == b"0\r\n\r\n"


@pytest.mark.parametrize("call", [
    lambda: format_response(200, [("X", "a\r\nInjected: 1")]),
    lambda: format_response(200, [("X", "a\nb")]),
    lambda: format_response(200, [("X\r\n", "a")]),
    lambda: format_response(200, [("X Y", "a")]),
    lambda: format_response(200, [], reason="OK\r\nX: 1"),
    lambda: format_response(99, []),
    lambda: format_response(204, [], b"body"),
    lambda: format_response(200, [("Content-Length", "3")], chunked=True),
])
def test_format_response_refusals(call):
    """CTLs in names, values or reason, bad statuses and misplaced bodies are ValueError."""
    with pytest.raises(ValueError):
        call()


def test_requests_before_the_bad_bytes_ride_on_the_error():
    """A refusal carries the events completed before it in the same feed, so they get answers."""
    good = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok"
    with pytest.raises(HTTPError) as info:
        RequestParser().feed(good + b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: y\r\n\r\n")
    assert info.value.status == 400
    assert normalise(info.value.events) == normalise(parse(good))
