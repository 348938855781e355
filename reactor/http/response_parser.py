"""HTTP/1.1 responses as a sans-I/O parser: the client's half of ``parser.py`` (RFC 9112).

``ResponseParser(method).feed`` takes the bytes that answer one request and
returns events; ``feed_eof()`` says the server closed the connection::

    [1xx heads, dropped]  ResponseHead  Data*  EndOfMessage      (then nothing: see below)

A response is read like a request once its head is known, so
:class:`ResponseParser` subclasses :class:`~reactor.http.parser.RequestParser`
and replaces only the head reader: the Content-Length, chunked and trailer
readers are the same code on both sides. What a response adds:

=====================  ======================================================
the request's method   a response to HEAD has no body, whatever its fields say
1xx (but 101)          interim (``100 Continue``, ``103 Early Hints``): dropped
101                    the connection now speaks another protocol: parsing ends
204, 304               no body
no length, no chunked  the body runs until the server closes (``until-close``):
                       ``feed_eof()`` ends it; the connection cannot be reused
=====================  ======================================================

After the final ``EndOfMessage`` the parser reads nothing more: later bytes
stay in ``buffered`` and ``take_rest()`` returns them. After a 101 they are
the first bytes of the new protocol (a WebSocket frame can follow the 101 in
the same packet); after any other response they are a server's mistake, and
a client must not reuse the connection (``buffered`` is not 0).

Refusals raise :class:`~reactor.http.parser.HTTPError` and close the parser.
A malformed or over-limit head carries status 502 (the response was bad, in
a gateway's words), a body over ``max_body_bytes`` 413; the shared chunked
readers keep the request parser's statuses (400, 431). A client reads the
message, not the status. Strict where smuggling lives, as the request
parser is: Content-Length with Transfer-Encoding, differing Content-Lengths,
codings other than one ``chunked``, obs-fold, bare CR.

Discussion: the until-close reader. ``RequestParser._parse`` sends every
state it does not name to its last reader, ``_read_trailers``; a request
never has an until-close body, so parser.py has no such state. We add one
by overriding ``_read_trailers`` to take our state first (one identity test
per trailer section) rather than copying the parse loop. A state-to-reader
table in ``_parse`` would make the seam explicit, at a dict lookup per state.
"""

import re
import sys
from typing import Any, Dict, List, Optional, Tuple

from ..framing.base import CodecEvent
from .parser import (_CHUNK_SIZE, _END_OF_MESSAGE, _FIELD_LINE, _HEAD, _HEAD_END, _LENGTH,
                     DEFAULT_MAX_HEADERS, Data, EndOfMessage, HTTPError, RequestParser,
                     _content_length, _field_error, _list_items)

__all__ = ["ResponseParser", "ResponseHead", "Data", "EndOfMessage", "HTTPError",
           "DEFAULT_MAX_HEAD_BYTES"]

DEFAULT_MAX_HEAD_BYTES = 64 * 1024     #: status line, fields and the empty line, together
_UNLIMITED = sys.maxsize               # max_body_bytes=None

_STATUS_LINE = re.compile(r"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?")
_FRAMING_FIELDS = frozenset(("content-length", "transfer-encoding", "connection"))
_UNTIL_CLOSE = "until-close"           # a state parser.py's loop hands to _read_trailers


class ResponseHead(CodecEvent):
    """The head of the final response (or of a 101): status line, fields, body framing.

    ``version`` is ``"1.1"`` or ``"1.0"``; ``headers`` every field in order,
    as ``(lowercased name, value)``; ``body_kind`` is ``none``, ``length``,
    ``chunked`` or ``until-close``; ``keep_alive`` tells whether the
    connection may carry another request once this response has ended.
    """

    __slots__ = ("status", "reason", "version", "headers", "keep_alive", "body_kind",
                 "content_length")

    def __init__(self, status: int, reason: str, version: str, headers: List[Tuple[str, str]],
                 keep_alive: bool, body_kind: str, content_length: Optional[int]) -> None:
        self.status, self.reason, self.version, self.headers = status, reason, version, headers
        self.keep_alive, self.body_kind, self.content_length = keep_alive, body_kind, content_length


class ResponseParser(RequestParser):
    """Read the response to one request (client side): bytes in, events out.

    ``method`` is the request's (``HEAD`` changes the framing). Limits, each
    refused as it is passed (exactly at a limit passes): ``max_head_bytes``
    for one head, from the status line to the empty line; ``max_headers``
    field lines per head and per trailer section; ``max_body_bytes`` (None:
    no limit) after chunked decoding, at once for a Content-Length; chunk-size
    lines of ``parser.MAX_CHUNK_LINE_BYTES``.
    """

    # No __slots__ of its own: RequestParser.__init__ checks its four limits
    # through ``self.__slots__[:4]``, which would name ours.

    def __init__(self, method: str = "GET", *, max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
                 max_headers: int = DEFAULT_MAX_HEADERS,
                 max_body_bytes: Optional[int] = None) -> None:
        super().__init__(max_request_line=max_head_bytes, max_header_bytes=max_head_bytes,
                         max_headers=max_headers,
                         max_body_bytes=_UNLIMITED if max_body_bytes is None else max_body_bytes)
        self.method = method
        self._finished = False          # the final head (status >= 200, or 101) was read
        self._head: Optional[ResponseHead] = None

    @property
    def max_head_bytes(self) -> int:
        """The most bytes one head may take, its empty line included."""
        return self.max_header_bytes

    def feed_eof(self) -> List[Any]:
        """Tell the parser the server closed; return the last events (``[EndOfMessage]``).

        Ends an until-close body; after a complete response returns ``[]``.
        Raises :class:`HTTPError` (502) if the response was cut short: no
        response at all, a partial head, missing body bytes or chunks.
        """
        if self._error is not None:
            raise HTTPError(self._error.status, "closed by an earlier error: %s" % self._error)
        state = self._state
        if state is _UNTIL_CLOSE:
            self._state = _HEAD
            return [_END_OF_MESSAGE]
        if state is _HEAD and self._finished:
            return []
        head = self._head
        if state is _HEAD:
            why = ("inside the response head (%d bytes)" % len(self._buffer) if self._buffer
                   else "before any response")
        elif state is _LENGTH:
            why = ("with %d of %d body bytes missing"
                   % (self._remaining, head.content_length if head else 0))
        else:
            why = "inside the chunked body"
        self._error = HTTPError(502, "connection closed %s" % why)
        raise self._error

    def take_rest(self) -> bytes:
        """Return and forget the bytes received after the final response ended.

        After a 101 these belong to the new protocol. Call it only after the
        final ``EndOfMessage``: before, the bytes held are a partial head or
        chunk line.
        """
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest

    def _read_head(self, work: Any, pos: int, events: List[Any]) -> Tuple[int, bool]:
        """Parse the head at ``pos`` if it is complete; return (next index, waiting)."""
        # Hot path: once per response: one search for the head end (resumed
        # where the last one stopped), one decode, one split, a regex per line.
        if self._finished:
            return pos, True                        # the rest is the caller's (take_rest)
        found = _HEAD_END.search(work, pos + self._scan)
        stop = len(work) if found is None else found.end()
        if stop - pos > self.max_header_bytes:
            raise HTTPError(502, "response head longer than %d bytes" % self.max_header_bytes)
        if found is None:
            self._scan = max(0, stop - pos - 2)     # "\n\r\n" may begin in the last two bytes
            return pos, True
        self._scan = 0
        text = work[pos:found.start() + 1].decode("latin-1")
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if "\r" in text:
                raise HTTPError(502, "bare CR in the response head")
        lines = text[:-1].split("\n")
        if len(lines) - 1 > self.max_headers:
            raise HTTPError(502, "more than %d header fields in the response" % self.max_headers)
        status_line = _STATUS_LINE.fullmatch(lines[0])
        if status_line is None:
            raise HTTPError(502, "malformed status line %r" % lines[0][:80])
        version, status, reason = status_line.groups()
        if version != "1.1" and version != "1.0":
            raise HTTPError(502, "unsupported version HTTP/%s" % version)
        if status[0] not in "12345":
            raise HTTPError(502, "status %s outside 100..599" % status)
        head = self._make_response(int(status), reason or "", version, lines)
        if head is None:                            # interim 1xx: the final head follows
            return found.end(), False
        self._head, self._finished = head, True
        events.append(head)
        kind = head.body_kind
        if kind == "chunked":
            self._state, self._body_bytes = _CHUNK_SIZE, 0
        elif kind == _UNTIL_CLOSE:
            self._state, self._body_bytes = _UNTIL_CLOSE, 0
        elif head.content_length and kind == "length":
            self._state, self._remaining = _LENGTH, head.content_length
        else:
            events.append(_END_OF_MESSAGE)
        return found.end(), False

    def _make_response(self, status: int, reason: str, version: str,
                       lines: List[str]) -> Optional[ResponseHead]:
        """Parse the field lines, apply the framing rules (RFC 9112 6.3); None for a 1xx."""
        headers: List[Tuple[str, str]] = []
        framing: Dict[str, List[str]] = {}
        for line in lines[1:]:
            field = _FIELD_LINE.fullmatch(line)
            if field is None:
                raise HTTPError(502, str(_field_error(line)))
            name = field.group(1).lower()
            headers.append((name, field.group(2).strip(" \t")))
            if name in _FRAMING_FIELDS:
                framing.setdefault(name, []).append(headers[-1][1])
        if status < 200 and status != 101:
            return None
        lengths, codings = framing.get("content-length"), framing.get("transfer-encoding")
        if lengths is not None and codings is not None:
            raise HTTPError(502, "both Content-Length and Transfer-Encoding in the response")
        if codings is not None and version == "1.0":
            raise HTTPError(502, "Transfer-Encoding in an HTTP/1.0 response")
        content_length = None
        if lengths is not None:
            try:
                content_length = _content_length(lengths)
            except HTTPError as exc:
                raise HTTPError(502, str(exc)) from None
        options = _list_items(framing.get("connection", ()))
        keep_alive = ("close" not in options if version == "1.1" else
                      "keep-alive" in options and "close" not in options)
        if status == 101 or status in (204, 304) or self.method == "HEAD":
            body_kind = "none"
            keep_alive = keep_alive and status != 101
        elif codings is not None:
            names = _list_items(codings)
            if names != ["chunked"]:
                raise HTTPError(502, "Transfer-Encoding %s: only chunked is supported"
                                % ", ".join(names))
            body_kind = "chunked"
        elif content_length is not None:
            body_kind = "length"
            if content_length > self.max_body_bytes:
                raise HTTPError(413, "response Content-Length %d is over max_body_bytes=%d"
                                % (content_length, self.max_body_bytes))
        else:
            body_kind, keep_alive = _UNTIL_CLOSE, False
        return ResponseHead(status, reason, version, headers, keep_alive, body_kind,
                            content_length)

    def _read_trailers(self, work: Any, pos: int, events: List[Any]) -> Tuple[int, bool]:
        """Read an until-close body (see the Discussion above), else the trailers."""
        if self._state is not _UNTIL_CLOSE:
            return super()._read_trailers(work, pos, events)
        self._body_bytes += len(work) - pos
        if self._body_bytes > self.max_body_bytes:
            raise HTTPError(413, "response body over max_body_bytes=%d" % self.max_body_bytes)
        events.append(Data(work[pos:] if type(work) is bytes else bytes(work[pos:])))
        return len(work), False
