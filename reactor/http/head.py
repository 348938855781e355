"""The head of an answer as the server writes it: status line, fields, framing, Connection.

A pure function, so its rules can be read and tested without a socket::

    HTTP/1.1 200 OK                    status line (RFC 9110 reason phrases)
    Date: ... / Server: reactor        once a second, from HTTPOptions
    <the handler's fields>             in its order, but for the three the server owns:
      Content-Length, Transfer-Encoding  the server frames every body itself
      Connection                         "close" is honoured, the rest replaced
    Content-Length: N | Transfer-Encoding: chunked | neither (to HTTP/1.0, until close)
    Connection: close | keep-alive     close when either side wants it; keep-alive
                                       spelled out only to HTTP/1.0, where it is not the default

One exception keeps a handler's Content-Length: an empty answer to HEAD,
where it states the length a GET would get (a static file handler does).
1xx, 204 and 304 answers carry no Content-Length (RFC 9110 8.6).
"""

from http import HTTPStatus
from typing import Any, Optional, Tuple

#: RFC 9110's reason phrases where Python's HTTPStatus still has RFC 2616's.
REASONS = dict((status.value, status.phrase) for status in HTTPStatus)
REASONS.update({413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable",
                422: "Unprocessable Content"})
_STATUS_LINES = {status: "HTTP/1.1 %d %s\r\n" % (status, phrase)
                 for status, phrase in REASONS.items()}
_FRAMING_NAMES = frozenset(("content-length", "transfer-encoding", "connection"))


def format_head(status: int, fields: Any, date_fields: str, keep_alive: bool,
                version: str = "HTTP/1.1", head_request: bool = False,
                length: Optional[int] = 0, chunked: bool = False) -> Tuple[bytes, bool]:
    """Return the head's bytes and whether the connection stays open after this answer.

    ``fields`` are the handler's ``(name, value)`` pairs; ``length`` the
    body's size (None: unknown, the body ends at the close); ``chunked``
    for a streamed body. Raises UnicodeEncodeError for a field that is not
    latin-1.
    """
    # Hot path: once per answer.
    lines = [_STATUS_LINES.get(status) or "HTTP/1.1 %d \r\n" % status, date_fields]
    states_length = False
    for name, value in fields:
        lower = name.lower()
        if lower in _FRAMING_NAMES:
            if lower == "connection":
                keep_alive = keep_alive and "close" not in value.lower()
                continue
            if lower != "content-length" or length or not head_request:
                continue
            states_length = True
        lines.append("%s: %s\r\n" % (name, value))
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif length is not None and not states_length and status >= 200 and status != 204 \
            and status != 304:
        lines.append("Content-Length: %d\r\n" % length)
    if not keep_alive:
        lines.append("Connection: close\r\n")
    elif version == "HTTP/1.0":
        lines.append("Connection: keep-alive\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1"), keep_alive
