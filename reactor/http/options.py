"""An HTTP server's settings: timeouts, request limits, the access log, the Date line.

One ``HTTPOptions`` is shared by every connection of a server (``listen_http``
builds it from its keywords, ``HTTP_OPTION_NAMES``). It also holds the parser
prototype each connection clones, and the cached ``Date``/``Server`` lines:
``Date`` changes once a second, so it is formatted once a second, not once
per response (RFC 9110 6.6.1 asks for the time the response was made, to
the second).

Discussion: the wall clock. Only the loop reads the monotonic clock; Date
is a wall-clock time, so it comes from ``wall_clock`` (``time.time`` unless
a test injects another), never from the loop's clock, which may be fake.
"""

import logging
import time
from email.utils import formatdate
from typing import Any, Callable, Optional

from .parser import (DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS,
                     DEFAULT_MAX_REQUEST_LINE, RequestParser)

SERVER_NAME = "reactor"
access_logger = logging.getLogger("reactor.access")

#: The keywords ``HTTPOptions`` takes (``listen_http`` passes these on, the rest to listen_tcp).
HTTP_OPTION_NAMES = ("header_timeout", "keepalive_timeout", "body_timeout", "answer_timeout",
                     "max_request_line",
                     "max_header_bytes", "max_headers", "max_body_bytes", "access_log",
                     "server_name", "wall_clock")


class HTTPOptions:
    """A server's HTTP settings, shared by its connections; see ``listen_http``.

    Timeouts are in seconds (None: no limit); the limits are the parser's,
    each answered with its status.
    """

    def __init__(self, header_timeout: Optional[float] = 10.0,
                 keepalive_timeout: Optional[float] = 5.0,
                 body_timeout: Optional[float] = 30.0,
                 answer_timeout: Optional[float] = 60.0,
                 max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
                 max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
                 max_headers: int = DEFAULT_MAX_HEADERS,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 access_log: bool = False, server_name: str = SERVER_NAME,
                 wall_clock: Callable[[], float] = time.time) -> None:
        for name, value in (("header_timeout", header_timeout),
                            ("keepalive_timeout", keepalive_timeout),
                            ("body_timeout", body_timeout),
                            ("answer_timeout", answer_timeout)):
            if value is not None and not 0 < value < float("inf"):
                raise ValueError("%s must be a finite number of seconds > 0 or None, got %r"
                                 % (name, value))
        self.header_timeout, self.keepalive_timeout = header_timeout, keepalive_timeout
        self.body_timeout, self.answer_timeout = body_timeout, answer_timeout
        self.framer = HTTPRequestFramer(max_request_line, max_header_bytes, max_headers,
                                        max_body_bytes)
        self.access_log, self.server_name, self.wall_clock = access_log, server_name, wall_clock
        self._second = -1
        self._date_fields = ""

    def log_access(self, client: Any, request: Any, status: int, length: int) -> None:
        """Log one answer in Common Log Format on ``reactor.access``: body bytes actually sent.

        A request refused before it could be read (400, 414 ...) is logged as ``"-"``.
        """
        now = time.gmtime(self.wall_clock())
        host = client[0] if isinstance(client, tuple) else "-"
        line = ("-" if request is None else
                "%s %s %s" % (request.method, request.target, request.version))
        access_logger.info('%s - - [%s] "%s" %d %s', host,
                           time.strftime("%d/%b/%Y:%H:%M:%S +0000", now), line, status,
                           length or "-")

    def date_fields(self) -> str:
        """Return the ``Date`` and ``Server`` lines, formatted once per second."""
        now = int(self.wall_clock())
        if now != self._second:
            self._second = now
            self._date_fields = "Date: %s\r\nServer: %s\r\n" % (
                formatdate(now, usegmt=True), self.server_name)
        return self._date_fields


class HTTPRequestFramer(RequestParser):
    """A :class:`RequestParser` that the framing layer can clone per connection."""

    __slots__ = ()

    def clone(self) -> "HTTPRequestFramer":
        """Return a fresh parser with the same limits."""
        return HTTPRequestFramer(self.max_request_line, self.max_header_bytes,
                                 self.max_headers, self.max_body_bytes)
