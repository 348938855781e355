"""HTTP/1.1 requests as a sans-I/O parser, and responses as bytes (RFC 9112, RFC 9110).

``RequestParser.feed`` takes bytes as they arrive and returns events, never
touching a socket (h11's design; see its ``_readers.py``)::

    RequestHead  Data*  EndOfMessage  RequestHead  Data*  EndOfMessage  ...   (pipelined)

One reader per framing, chosen from the head; the state names the next::

    head --(Content-Length N)--> length (N bytes as Data) --------------> head
         --(chunked)--> chunk-size --> chunk-data --> chunk-end --> chunk-size
                        chunk-size 0 --> trailers (read, dropped) ------> head
         --(no body)--> EndOfMessage at once -----------------------------> head

Only unfinished heads, chunk-size lines and trailers are held
(``buffered``); body bytes leave in the feed that brought them. The search
for a head's end resumes where the last one stopped (``_scan``), so a head
dripped a byte at a time costs linear time (h11's ``_receivebuffer.py``).
A GET in one chunk costs one search for the head end, one decode, one
split and a regex per line: 4 µs with two fields (CPython 3.11).

Every refusal raises :class:`HTTPError` with the status to answer and
closes the parser (the stream position is unknown). It is strict where
request smuggling lives (RFC 9112 6.3, 11.2): Content-Length with
Transfer-Encoding, differing Content-Lengths, codings other than one final
``chunked``, whitespace before a colon, obs-fold, bare CR.

Discussion: line endings. RFC 9112 2.2 lets a server accept a bare LF as
a line end, and the head does (requests typed into ``nc`` have them). Chunked
framing does not: two parsers that disagree on where a chunk ends are a
smuggling pair, and a body has no old clients to be lenient with.
"""

import re
from http import HTTPStatus
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import FramingError
from ..framing.base import CodecEvent

DEFAULT_MAX_REQUEST_LINE = 8192            #: bytes of ``GET /x HTTP/1.1``, line end excluded
DEFAULT_MAX_HEADER_BYTES = 64 * 1024       #: the field lines after the request line
DEFAULT_MAX_HEADERS = 100                  #: field lines per head (and per trailer section)
DEFAULT_MAX_BODY_BYTES = 1024 * 1024       #: per request body, after chunked decoding
MAX_CHUNK_LINE_BYTES = 1024                #: ``size;extensions`` of one chunk
END_CHUNKS = b"0\r\n\r\n"                  #: the last chunk of a chunked body, no trailers

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"                 # RFC 9110 5.6.2
_REQUEST_LINE = re.compile(r"(%s) ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])" % _TOKEN)
_FIELD_LINE = re.compile(r"(%s):([^\x00-\x08\x0a-\x1f\x7f]*)" % _TOKEN)
_HEAD_END = re.compile(rb"\n\r?\n")
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\x00-\x08\x0a-\x1f\x7f]*)?")
_TOKEN_ONLY = re.compile(_TOKEN)
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")        # CTLs but HTAB
_FRAMING_FIELDS = frozenset(("content-length", "transfer-encoding", "connection", "expect",
                             "host"))
_PHRASES = {status.value: status.phrase for status in HTTPStatus}

_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILERS = (
    "head", "length", "chunk-size", "chunk-data", "chunk-end", "trailers")    # the states


class HTTPError(FramingError):
    """A request broke HTTP/1.1's rules: answer ``status``, then close the connection.

    ``str(exc)`` says what was wrong, ``phrase`` is ``Bad Request`` or the like;
    ``reason`` stays ``"framing"``, the key a server counts closes under.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.phrase, self.events = status, _PHRASES[status], []


class RequestHead(CodecEvent):
    """The head of one request: its line, its fields, and how its body is framed.

    ``headers`` holds every field in order, repeats included, as ``(lowercased
    name, value)``; ``body_kind`` is ``none``, ``length`` or ``chunked``.
    """

    __slots__ = ("method", "target", "version", "headers", "keep_alive", "expect_continue",
                 "body_kind", "content_length")

    def __init__(self, method: str, target: str, version: str, headers: List[Tuple[str, str]],
                 keep_alive: bool, expect_continue: bool, body_kind: str,
                 content_length: Optional[int]) -> None:
        self.method, self.target, self.version, self.headers = method, target, version, headers
        self.keep_alive, self.expect_continue = keep_alive, expect_continue
        self.body_kind, self.content_length = body_kind, content_length


class Data(CodecEvent):
    """A piece of request body (chunked framing removed), as it arrived."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class EndOfMessage(CodecEvent):
    """The request and its body are complete; the next bytes begin the next request."""

    __slots__ = ()


_END_OF_MESSAGE = EndOfMessage()     # stateless, so one instance serves every request


class RequestParser:
    """Read requests (server side): bytes in, ``RequestHead``/``Data``/``EndOfMessage`` out.

    Limits, each refused with its status (exactly at a limit passes):
    ``max_request_line`` (414, as soon as an unended line passes it),
    ``max_header_bytes`` and ``max_headers`` (431), ``max_body_bytes`` (413,
    on Content-Length at once, for chunked when the running total passes it).
    """

    __slots__ = ("max_request_line", "max_header_bytes", "max_headers", "max_body_bytes",
                 "_buffer", "_state", "_scan", "_line_bytes", "_remaining", "_body_bytes",
                 "_error")

    def __init__(self, max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 max_headers: int = DEFAULT_MAX_HEADERS,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.max_request_line, self.max_header_bytes = max_request_line, max_header_bytes
        self.max_headers, self.max_body_bytes = max_headers, max_body_bytes
        for name in RequestParser.__slots__[:4]:
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError("%s must be a positive int, got %r" % (name, getattr(self, name)))
        self._buffer = bytearray()      # unparsed bytes: a partial head or chunk line
        self._state = _HEAD
        self._scan = 0                  # bytes of the held line or head already searched
        self._line_bytes = -1           # the request line with its LF, once seen
        self._remaining = 0             # body or chunk bytes still to come
        self._body_bytes = 0            # chunked body bytes so far
        self._error: Optional[HTTPError] = None

    @property
    def buffered(self) -> int:
        """Return the bytes held but not yet parsed (an unfinished head or chunk line)."""
        return len(self._buffer)

    @property
    def closed(self) -> bool:
        """Tell whether an earlier error closed this parser (every feed now raises)."""
        return self._error is not None

    def feed(self, data: Any) -> List[Any]:
        """Add received bytes (bytes-like); return the events they complete, in order.

        Raises :class:`HTTPError` for a bad or over-limit request, and then
        at every later call; the events completed before the bad bytes, in
        the same feed, ride on it as ``exc.events`` (answer them first).
        """
        # Hot path: once per data_received; an empty buffer parses ``data`` in place.
        if self._error is not None:
            raise HTTPError(self._error.status, "closed by an earlier error: %s" % self._error)
        buffer = self._buffer
        if buffer:
            buffer += data
            work: Any = buffer
        else:
            work = data if type(data) is bytes else bytes(data)
        events: List[Any] = []
        try:
            pos = self._parse(work, events)
        except HTTPError as exc:
            self._error, exc.events = exc, events
            buffer.clear()
            raise
        if work is buffer:
            del buffer[:pos]            # O(1): a bytearray drops its front by moving its start
        elif pos < len(work):
            buffer += memoryview(work)[pos:]
        return events

    def _parse(self, work: Any, events: List[Any]) -> int:
        """Run the readers over ``work``; return the index of the first byte to keep."""
        pos, end = 0, len(work)
        while pos < end:
            state = self._state
            if state is _HEAD:
                pos, waiting = self._read_head(work, pos, events)
            elif state is _LENGTH or state is _CHUNK_DATA:
                take = min(self._remaining, end - pos)
                events.append(Data(work[pos:pos + take] if type(work) is bytes
                                   else bytes(work[pos:pos + take])))
                self._remaining -= take
                pos, waiting = pos + take, False
                if not self._remaining:
                    if state is _LENGTH:
                        events.append(_END_OF_MESSAGE)
                    self._state = _HEAD if state is _LENGTH else _CHUNK_END
            elif state is _CHUNK_SIZE:
                pos, waiting = self._read_chunk_size(work, pos)
            elif state is _CHUNK_END:
                if work[pos] != 13 or (end - pos > 1 and work[pos + 1] != 10):
                    raise HTTPError(400, "chunk data not followed by CRLF")
                waiting = end - pos < 2
                if not waiting:
                    pos, self._state = pos + 2, _CHUNK_SIZE
            else:
                pos, waiting = self._read_trailers(work, pos, events)
            if waiting:
                break
        return pos

    def _read_head(self, work: Any, pos: int, events: List[Any]) -> Tuple[int, bool]:
        """Parse the head at ``pos`` if it is complete; return (next index, waiting)."""
        # Hot path: one regex search for the head end, one decode, one split,
        # then one regex match per field line.
        end = len(work)
        while work[pos] == 10 or work[pos] == 13:     # empty lines first (RFC 9112 2.2)
            if work[pos] == 13:
                if end - pos == 1:
                    return pos, True
                if work[pos + 1] != 10:
                    raise HTTPError(400, "bare CR before the request line")
                pos += 1
            pos += 1
            if pos == end:
                return pos, True
        found = _HEAD_END.search(work, pos + self._scan)
        if found is None:
            self._check_partial_head(work, pos)
            return pos, True
        stop = found.start() + 1                    # after the last field line's LF
        text = work[pos:stop].decode("latin-1")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                raise HTTPError(400, "bare CR in the request head")
        lines = text[:-1].split("\n")
        line = lines[0]
        if len(line) > self.max_request_line:
            raise HTTPError(414, "request line longer than %d bytes" % self.max_request_line)
        header_bytes = stop - pos - len(line) - (2 if work[pos + len(line)] == 13 else 1)
        if header_bytes > self.max_header_bytes:
            raise HTTPError(431, "header fields longer than %d bytes" % self.max_header_bytes)
        if len(lines) - 1 > self.max_headers:
            raise HTTPError(431, "more than %d header fields" % self.max_headers)
        request_line = _REQUEST_LINE.fullmatch(line)
        if request_line is None:
            raise HTTPError(400, "malformed request line %r" % line[:80])
        method, target, version = request_line.groups()
        if version != "HTTP/1.1" and version != "HTTP/1.0":
            raise HTTPError(505, "unsupported version %s" % version)
        headers, framing, match = [], {}, _FIELD_LINE.fullmatch
        for index in range(1, len(lines)):
            field = match(lines[index])
            if field is None:
                raise _field_error(lines[index])
            name, value = field.groups()
            name, value = name.lower(), value.strip(" \t")
            headers.append((name, value))
            if name in _FRAMING_FIELDS:
                framing.setdefault(name, []).append(value)
        request = self._make_request(method, target, version[5:], headers, framing)
        events.append(request)
        self._scan, self._line_bytes = 0, -1
        if request.body_kind == "chunked":
            self._state, self._body_bytes = _CHUNK_SIZE, 0
        elif request.content_length:
            self._state, self._remaining = _LENGTH, request.content_length
        else:
            events.append(_END_OF_MESSAGE)
        return found.end(), False

    def _make_request(self, method: str, target: str, version: str,
                      headers: List[Tuple[str, str]], framing: Dict[str, List[str]]) -> RequestHead:
        """Apply the framing fields (RFC 9112 6.3) and build the RequestHead, or raise."""
        lengths, codings = framing.get("content-length"), framing.get("transfer-encoding")
        if version == "1.1" and len(framing.get("host", ())) != 1:
            raise HTTPError(400, "an HTTP/1.1 request needs exactly one Host field")
        body_kind, content_length = "none", None
        if codings is not None:
            if lengths is not None:
                raise HTTPError(400, "both Content-Length and Transfer-Encoding")
            if version == "1.0":
                raise HTTPError(400, "Transfer-Encoding in an HTTP/1.0 request")
            names = _list_items(codings)
            if not names or names[-1] != "chunked" or names.count("chunked") > 1:
                raise HTTPError(400, "Transfer-Encoding %s: not one final chunked" % names)
            if len(names) > 1:
                raise HTTPError(501, "unknown Transfer-Encoding %s" % ", ".join(names[:-1]))
            body_kind = "chunked"
        elif lengths is not None:
            body_kind, content_length = "length", _content_length(lengths)
            if content_length > self.max_body_bytes:
                raise HTTPError(413, "Content-Length over %d bytes" % self.max_body_bytes)
        connection, expect = framing.get("connection"), framing.get("expect")
        options = _list_items(connection) if connection else ()
        if version == "1.1":
            keep_alive = "close" not in options
            expect_continue = [value.lower() for value in expect or ()] == ["100-continue"]
        else:                       # RFC 9110 10.1.1: 1.0's Expect is ignored
            keep_alive, expect_continue = "keep-alive" in options and "close" not in options, False
        return RequestHead(method, target, version, headers, keep_alive, expect_continue,
                           body_kind, content_length)

    def _check_partial_head(self, work: Any, pos: int) -> None:
        """Refuse an unfinished head already over a limit; note how far we searched.

        An unended request line is refused on the byte that passes its limit,
        field lines on their bytes so far less a CR that may begin the empty
        line; their count waits for the head end (the byte limit bounds it).
        """
        end, limit = len(work), self.max_request_line
        if self._line_bytes < 0:
            line_end = work.find(b"\n", pos + self._scan)
            if line_end >= 0:
                self._line_bytes = line_end + 1 - pos
                line_bytes = line_end - pos - (work[line_end - 1] == 13)
            else:
                line_bytes = end - pos - (end - pos == limit + 1 and work[end - 1] == 13)
            if line_bytes > limit:
                raise HTTPError(414, "request line longer than %d bytes" % limit)
        if self._line_bytes >= 0:
            held = end - pos - self._line_bytes - (work[end - 1] == 13)
            if held > self.max_header_bytes:
                raise HTTPError(431, "header fields longer than %d bytes" % self.max_header_bytes)
        self._scan = max(0, end - pos - 2)    # "\n\r\n" may begin in the last two bytes

    def _read_chunk_size(self, work: Any, pos: int) -> Tuple[int, bool]:
        """Parse a ``size[;ext] CRLF`` line at ``pos``; extensions are ignored."""
        line_end = work.find(b"\n", pos + self._scan)
        if line_end < 0 or line_end - pos > MAX_CHUNK_LINE_BYTES:
            if len(work) - pos > MAX_CHUNK_LINE_BYTES:
                raise HTTPError(400, "chunk-size line over %d bytes" % MAX_CHUNK_LINE_BYTES)
            self._scan = len(work) - pos
            return pos, True
        self._scan = 0
        line = bytes(work[pos:line_end])
        size_line = _CHUNK_LINE.fullmatch(line, 0, len(line) - 1)
        if size_line is None or line[-1:] != b"\r":
            raise HTTPError(400, "malformed chunk-size line %r" % line[:40])
        size = int(size_line.group(1), 16)
        self._body_bytes += size
        if self._body_bytes > self.max_body_bytes:
            raise HTTPError(413, "chunked body over the limit of %d bytes" % self.max_body_bytes)
        self._state, self._remaining = (_CHUNK_DATA, size) if size else (_TRAILERS, 0)
        return line_end + 1, False

    def _read_trailers(self, work: Any, pos: int, events: List[Any]) -> Tuple[int, bool]:
        """Read the trailer section at ``pos`` up to its empty line, check it, drop it."""
        end = len(work)
        if work[pos] == 13 and end - pos > 1 and work[pos + 1] == 10:
            stop, after = pos, pos + 2                    # no trailer fields: the usual case
        else:
            stop = work.find(b"\r\n\r\n", pos + self._scan)
            held = (stop if stop >= 0 else end - 3) - pos     # less a partial "\r\n\r\n"
            if held > self.max_header_bytes:
                raise HTTPError(431, "trailer fields longer than %d bytes" % self.max_header_bytes)
            if stop < 0:
                self._scan = max(0, end - pos - 3)
                return pos, True
            after = stop + 4
            lines = work[pos:stop].decode("latin-1").split("\r\n")
            if len(lines) > self.max_headers:
                raise HTTPError(431, "more than %d trailer fields" % self.max_headers)
            for line in lines:
                if _FIELD_LINE.fullmatch(line) is None:
                    raise _field_error(line)
        events.append(_END_OF_MESSAGE)
        self._state, self._scan = _HEAD, 0
        return after, False


def format_response(status: int, headers: Sequence[Tuple[str, str]], body: bytes = b"", *,
                    reason: Optional[str] = None, chunked: bool = False) -> bytes:
    """Return an HTTP/1.1 response head and ``body`` as bytes, fields in the order given.

    Adds ``Content-Length`` unless given, ``chunked`` or a bodiless status
    (1xx, 204, 304). ``chunked`` adds ``Transfer-Encoding: chunked`` and sends
    ``body`` as the first chunk; ``format_chunk`` and ``END_CHUNKS`` follow.
    Raises ValueError for a status outside 100..999, a name that is not a
    token, or CR, LF or another CTL in a value or ``reason``.
    """
    if not isinstance(status, int) or not 100 <= status <= 999:
        raise ValueError("status must be an int in 100..999, got %r" % (status,))
    if reason is None:
        reason = _PHRASES.get(status, "")
    if _CONTROL.search(reason):
        raise ValueError("control character in reason %r" % reason)
    bodyless = status < 200 or status in (204, 304)
    if bodyless and (body or chunked):
        raise ValueError("a %d response carries no body" % status)
    for name, value in headers:
        if _TOKEN_ONLY.fullmatch(name) is None or _CONTROL.search(value):
            raise ValueError("field %r: %r has a bad name or a CTL in its value" % (name, value))
    lines = ["HTTP/1.1 %d %s" % (status, reason)] + ["%s: %s" % field for field in headers]
    given = {name.lower() for name, _ in headers}
    if chunked:
        if "content-length" in given:
            raise ValueError("chunked with a Content-Length field")
        if "transfer-encoding" not in given:
            lines.append("Transfer-Encoding: chunked")
        body = format_chunk(body)
    elif not bodyless and "content-length" not in given:
        lines.append("Content-Length: %d" % len(body))
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body


def format_chunk(data: bytes) -> bytes:
    """Return ``data`` as one chunk: hex size, CRLF, data, CRLF.

    Empty ``data`` gives ``b""``: an empty chunk would end the body, which
    is ``END_CHUNKS``'s job.
    """
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def _list_items(values: Any) -> List[str]:
    """Return the lowercased items of comma-separated field values, empty ones dropped."""
    return [item for value in values for item in
            (part.strip(" \t").lower() for part in value.split(",")) if item]


def _content_length(values: List[str]) -> int:
    """Return the one length that every Content-Length value and list item gives, or raise."""
    items = {item.strip(" \t") for value in values for item in value.split(",")}
    if not all(item.isascii() and item.isdigit() for item in items):
        raise HTTPError(400, "Content-Length %r is not a number" % ", ".join(values))
    lengths = {item.lstrip("0") or "0" for item in items}
    if len(lengths) != 1:
        raise HTTPError(400, "differing Content-Length values: %s" % ", ".join(values))
    digits = lengths.pop()
    if len(digits) > 18:       # int() refuses 4,300 digits; the body limit refuses this anyway
        raise HTTPError(413, "Content-Length of %d digits" % len(digits))
    return int(digits)


def _field_error(line: str) -> HTTPError:
    """Return the error for a field line that did not match, saying what is wrong with it."""
    name, colon, _ = line.partition(":")
    why = ("obs-fold (a line starting with whitespace)" if line[:1] in (" ", "\t") else
           "field line without a colon" if not colon else
           "whitespace between field name and colon" if name.rstrip(" \t") != name else
           "field name is not a token" if _TOKEN_ONLY.fullmatch(name) is None else
           "control character in field value")
    return HTTPError(400, "%s: %r" % (why, line[:80]))
