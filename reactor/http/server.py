"""The HTTP/1.1 server protocol: the parser, a router and a transport, joined.

One connection carries requests one after another (keep-alive), possibly
several in one read (pipelining); answers go out in the order the requests
came. The parser's events drive it::

    RequestHead -> find the route (404 / 405 + Allow answered here)
      buffered route: Data* collected -> EndOfMessage -> handler(request)
      stream_body route: handler(request) at once -> Data -> on_data ... -> on_end
    handler returns  Response           -> head + body in one write
                     None               -> it answers later: request.respond(response)
    body kinds       bytes              -> Content-Length, one write
                     iterable of bytes  -> chunked, pulled while the socket drains
                     FileBody           -> os.sendfile, one call per writable event
                     start_response()   -> chunked, pushed by the handler

While an answer is still being made (deferred, streamed or a file), later
pipelined requests wait, parsed, and reading is held (``HOLD_RESPONSE``),
so one client cannot queue unbounded work.

It is a :class:`~reactor.framed.FramedProtocol` whose frames are the
parser's events, so it inherits the framing layer's protections: a bounded
number of events per pass, the message-rate gate, the partial-frame deadline
(which is the *header timeout*: a head begun must end within
``header_timeout`` seconds however slowly it drips) and the input budget.
Its own timer covers the rest: a new connection must send a head within
``header_timeout``, an idle keep-alive connection is closed after
``keepalive_timeout``, and a body must make progress every ``body_timeout``.

Bad input costs one connection: the parser's :class:`HTTPError` is
answered with its status (400, 413, 414, 431, 501, 505) and
``Connection: close``, the reason is logged and counted by the server, and
the connection closes once the answer is flushed. An exception in a handler
becomes a 500 (the traceback is logged, never sent); if the response had
already begun, the connection is aborted, since its framing is broken.
"""

import logging
from typing import Any, Callable, List, Optional
from urllib.parse import unquote

from ..errors import FramingError
from ..framed import FramedProtocol
from ..protocols import HOLD_RESPONSE
from .head import REASONS, format_head
from .deadlines import Deadlines
from .bodies import FileSender, IterableSender, ResponseWriter
from .messages import FileBody, Headers, Request, Response, as_response, origin_path
from .options import HTTP_OPTION_NAMES, HTTPOptions, HTTPRequestFramer
from .parser import EndOfMessage, HTTPError, RequestHead
from ..websocket.server import upgrade
from .router import Router

__all__ = ["HTTPServerProtocol", "HTTPOptions", "HTTPRequestFramer", "HTTP_OPTION_NAMES",
           "ResponseWriter"]

logger = logging.getLogger("reactor")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class HTTPServerProtocol(Deadlines, FramedProtocol):
    """Serve one connection's requests with ``app`` (a :class:`Router`); see the module doc."""

    def __init__(self, app: Router, options: HTTPOptions) -> None:
        self.app, self.options = app, options
        self.framer = options.framer                # cloned in connection_made
        self.client: Any = None
        self._request: Optional[Request] = None     # the request whose events we are reading
        self._route: Any = None                     # its route, or None: answered already
        self._keep_alive = True
        self._body_parts: Optional[List[bytes]] = None
        self._body_ended = False
        self._on_data: Any = None
        self._on_end: Any = None
        self._busy = False                          # an answer is still being made
        self._waiting: Optional[List[Any]] = None   # pipelined events parked while busy
        self._write_paused = False
        self._producer: Any = None                  # what resume_writing restarts
        self._timer: Any = None
        self._timer_kind: Optional[str] = None
        self._close_when_done = False

    # -- connection life --------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Take the transport; a head must arrive within ``header_timeout``."""
        super().connection_made(transport)
        self._frame_timeout = self.options.header_timeout
        self.client = transport.get_extra_info("peername")
        self._arm("first-head", self.options.header_timeout)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Drop the timer and close what the answer was reading (a file, a generator)."""
        if self._logged is not None:
            self._log_access()                    # an answer cut short: what was sent
        if self._timer is not None:
            self._timer.cancel()
        producer = self._producer
        self._producer = None
        if isinstance(producer, (FileSender, IterableSender)):
            producer.close()                      # the file, or the generator's finally

    def shutdown_requested(self) -> None:
        """The server is draining: the next answer says ``Connection: close`` and ends the
        connection; an idle one is closed after ``DRAIN_IDLE_SECONDS`` of quiet (``deadlines.py``)."""
        if self._upgraded is not None:                # a WebSocket now: it says goodbye
            self._upgraded.shutdown_requested()
            return
        self._draining, self._keep_alive = True, False
        self._idle_if_done()

    def pause_writing(self) -> None:
        """The send buffer passed its high-water mark: producers stop."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The send buffer drained: the producer of the current answer goes on."""
        self._write_paused = False
        producer = self._producer
        if producer is not None:
            producer.resume()

    # -- events from the parser -------------------------------------------------

    def frames_received(self, events: List[Any]) -> None:
        """Handle the parser's events in order; park them while an answer is being made."""
        # Hot path: a keep-alive GET is RequestHead + EndOfMessage, one call.
        transport = self.transport
        for index, event in enumerate(events):
            kind = type(event)
            if kind is RequestHead:
                if self._busy:                    # the next request waits for this answer
                    self._park(events[index:])
                    return
                self._head_received(event)
            elif kind is EndOfMessage:
                self._end_received()
            else:
                self._data_received(event.data)
            if transport.is_closing() or self._upgraded is not None:
                return

    def _framing_failed(self, exc: FramingError) -> None:
        """Answer the requests before the bad bytes first; the bad one waits for them."""
        events = getattr(exc, "events", None)
        if events:
            exc.events = []
            self.frames_received(events)
        if self._busy:
            self._bad_request = exc               # answered and closed by _done
            self.transport.hold_reading(HOLD_RESPONSE)
            return
        super()._framing_failed(exc)

    def framing_error(self, exc: FramingError) -> None:
        """Answer a bad request with its status before the connection closes."""
        if self._request is not None and self._route is None:
            return                            # its request was answered already: just close
        status = exc.status if isinstance(exc, HTTPError) else 400
        body = b"%d %s\n" % (status, REASONS[status].encode())
        self._write_head_and_body(None, Response(
            status, [("Content-Type", "text/plain; charset=utf-8")]), False, body, len(body))
        if self._logged is not None:
            self._log_access()

    def _head_received(self, head: RequestHead) -> None:
        self._timer_kind = None
        target = head.target
        raw_path, _, query = target.partition("?")
        if not raw_path.startswith("/"):
            raw_path = origin_path(target)
            if raw_path is None:
                self._framing_failed(HTTPError(400, "bad request target %r" % target[:100]))
                return
        path = unquote(raw_path) if "%" in raw_path else raw_path
        request = Request(head.method, target, path, query, Headers.from_parser(head.headers),
                          b"", self.client, "HTTP/" + head.version, raw_path, None, self)
        self._request, self._keep_alive = request, head.keep_alive and not self._draining
        self._body_ended = head.body_kind == "none"
        self._expect_continue = head.expect_continue
        route, found = self.app.find(head.method, path)
        if route is None:
            response = (Response(404, body="404 Not Found\n") if found is None else
                        Response(405, [("Allow", found)], "405 Method Not Allowed\n"))
            self._route = None
            self._answer(request, response)
            return
        request.params = found
        self._route = route
        if route.stream_body:
            self._on_data = self._on_end = None
            self._body_parts = []
            self._busy = True
            self._call_handler(request, route)
            return
        if not self._body_ended:
            self._body_parts = []
            self._arm("body", self.options.body_timeout)
            self._frame_timeout = self.options.body_timeout     # a chunk line, not a head
            if self.framer.buffered:
                self._arm_frame_timer()
            if head.expect_continue:
                self.transport.write(_CONTINUE)

    def _data_received(self, data: bytes) -> None:
        if self._route is None:
            return                                # the body of a request answered already
        if self._timer_kind == "body":
            self._timer.reset(self.options.body_timeout)
        if self._on_data is not None:
            self._on_data(data)
        elif self._body_parts is not None:
            self._body_parts.append(data)

    def _end_received(self) -> None:
        route, request = self._route, self._request
        if route is None or request is None:
            self._request = None
            self._idle_if_done()
            return
        self._body_ended = True
        self._frame_timeout = self.options.header_timeout
        if self.framer.buffered:
            self._arm_frame_timer()               # the next head has begun: its own deadline
        if route.stream_body:
            if self._on_end is not None:
                self._request = self._route = None
                self._on_end()
            self._idle_if_done()
            return
        self._timer_kind = None
        parts = self._body_parts
        if parts:
            request.body = parts[0] if len(parts) == 1 else b"".join(parts)
        self._body_parts = None
        self._request = self._route = None
        self._busy = True
        self._call_handler(request, route)

    # -- what a handler asks of the connection (through its Request) -----------

    def respond(self, request: Request, response: Response) -> None:
        """Send the answer to ``request`` (a handler that returned None calls this later).

        An answer for a client that has gone is dropped quietly, as writes to
        a closed transport are; a second answer raises RuntimeError.
        """
        if self.transport.is_closing():
            return
        if self._producer is not None or not self._busy:
            raise RuntimeError("respond() for %r: this request has its answer already"
                               % (request,))
        self._answer(request, response)

    def read_body(self, request: Request, on_data: Callable[[bytes], Any],
                  on_end: Callable[[], Any]) -> None:
        """Start delivering a streamed body (see ``Request.read_body``)."""
        if self._route is None or not self._route.stream_body or request is not self._request:
            raise RuntimeError("read_body() is for a route with stream_body=True, from its "
                               "handler, once per request")
        if self._expect_continue and not self._body_ended:
            self.transport.write(_CONTINUE)
        self._on_data, self._on_end = on_data, on_end
        parts, self._body_parts = self._body_parts or [], None
        for part in parts:
            on_data(part)
        if self._body_ended:
            self._request = self._route = None
            on_end()
        else:
            self._arm("body", self.options.body_timeout)

    def pause_body(self) -> None:
        """Stop reading the socket (the client's TCP window then fills)."""
        self.transport.pause_reading()

    def resume_body(self) -> None:
        """Read the socket again."""
        self.transport.resume_reading()

    def start_response(self, request: Request, response: Response) -> ResponseWriter:
        """Send the head of a chunked answer and return its writer."""
        writer = ResponseWriter(self, request.method == "HEAD", request.version == "HTTP/1.1")
        if not writer.chunked:
            self._keep_alive = False              # HTTP/1.0: the body ends at the close
        response.body = b""
        self._producer = writer
        self._write_head_and_body(request, response, writer.chunked, b"", length=None)
        return writer

    # -- upgrades (websocket/server.py) ---------------------------------------------

    def refuse(self, request: Request, response: Response) -> None:
        """Answer an upgrade request that cannot be granted, then close."""
        self._keep_alive = False
        self._answer(request, response)

    def switch(self, protocol: Any, head: bytes) -> None:
        """Write the 101 ``head`` and give the connection to ``protocol``: no more HTTP on it."""
        if self.framer.buffered:          # the client may not send before our 101 (RFC 6455 4.1)
            self.refuse(protocol.request, Response(400, [], "400 Bad Request: data sent "
                        "before the handshake's answer\n"))
            return
        self._upgraded, self._timer_kind = protocol, None
        if self._frame_timer is not None:
            self._frame_timer.cancel()
        self.transport.write(head)
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if self._timer is not None:       # what HTTP held per connection goes: an idle
            self._timer.cancel()          # WebSocket costs its own state only
            self._timer = None
        del self.framer                   # (the class's idle prototype answers from now on)
        self._report_held = None          # the WebSocket reports its own held input

    # -- answering --------------------------------------------------------------

    def _call_handler(self, request: Request, route: Any) -> None:
        if route.kind == "websocket":
            upgrade(self, request, route)
            return
        try:
            result = route.handler(request)
        except HTTPError as exc:                  # the handler's own refusal: its status
            result = Response(exc.status, body="%d %s: %s\n" % (exc.status, REASONS[exc.status],
                                                               exc))
        except Exception:
            began = self._producer is not None    # its answer began: the framing is broken
            logger.exception("handler %s for %s %s raised; %s",
                             getattr(route.handler, "__name__", route.handler), request.method,
                             request.target[:200],
                             "aborting the connection" if began else "answering 500")
            if began:
                self.transport.abort()
                return
            result = Response(500, body="500 Internal Server Error\n")
        if result is None:                        # request.respond() comes later
            if not route.stream_body:
                self._deferred = request
                self._arm("answer", self.options.answer_timeout)
            return
        if self._producer is not None:
            return                                # it began its own answer: start_response
        if type(result) is not Response:
            result = as_response(result)
            if result is None:
                logger.error("handler for %s %s returned neither a Response, str, bytes, dict, "
                             "list nor None; answering 500", request.method, request.target[:200])
                result = Response(500, body="500 Internal Server Error\n")
        self._answer(request, result)

    def _answer(self, request: Request, response: Response) -> None:
        """Write ``response``; once it is all out, go on with the next request."""
        body = response.body
        head_only = request.method == "HEAD"
        if request is self._request and not self._body_ended:
            self._keep_alive = False              # answered before its body: drop the rest
        if type(body) is bytes:
            self._write_head_and_body(request, response, False, b"" if head_only else body,
                                      length=len(body))
            self._done()
        elif isinstance(body, FileBody):
            self._write_head_and_body(request, response, False, b"", length=body.length)
            if head_only or not body.length:
                body.file.close()
                self._done()
            else:
                self._producer = FileSender(self, body)
                self._producer.resume()
        else:
            writer = self.start_response(request, response)
            if head_only:
                writer.end()
            else:
                self._producer = IterableSender(writer, iter(body))
                self._producer.resume()

    def _write_head_and_body(self, request: Optional[Request], response: Response,
                             streamed: bool, body: bytes, length: Optional[int] = 0) -> None:
        """Write the head (``head.format_head``) and ``body`` in one write."""
        # Hot path: once per response.
        keep_alive = self._keep_alive and request is not None
        try:
            head, keep_alive = format_head(
                response.status, response.headers._fields, self.options.date_fields(),
                keep_alive, request.version if request is not None else "HTTP/1.1",
                request is not None and request.method == "HEAD", length, streamed)
        except UnicodeEncodeError as exc:
            logger.error("response to %r has a field that is not latin-1 (%s); answering 500",
                         request, exc)
            self._keep_alive = False
            error = b"500 Internal Server Error\n"
            self._write_head_and_body(request, Response(500), False, error, len(error))
            return
        if not keep_alive:
            self._close_when_done = True
        self.transport.write(head + body if body else head)
        self.frames_out += 1                      # an answer, in the server's frame counts
        if self.options.access_log:
            self._logged = (request, response.status)
            self.body_bytes_sent = len(body)

    def _done(self) -> None:
        """The current answer is all written: close, or take the next request."""
        self._producer = None
        self._busy = False
        if self._logged is not None:
            self._log_access()
        if self._close_when_done:
            self.transport.close()
            return
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            if self._bad_request is None:
                self.transport.release_reading(HOLD_RESPONSE)
            self.frames_received(waiting)
        if self._busy or self.transport.is_closing():
            return
        if self._bad_request is not None:
            exc, self._bad_request = self._bad_request, None
            super()._framing_failed(exc)
        else:
            self._idle_if_done()

    def _park(self, events: List[Any]) -> None:
        if self._waiting is None:
            self._waiting = events
            self.transport.hold_reading(HOLD_RESPONSE)
        else:
            self._waiting.extend(events)

    _expect_continue = False
    _deferred: Any = None                         # the request a handler answers later
    _upgraded: Any = None                         # the protocol this connection switched to
    _logged: Any = None                           # (request, status) of the answer being sent
    body_bytes_sent = 0                           #: of the current answer (for the access log)

    def _log_access(self) -> None:
        request, status = self._logged
        self._logged = None
        self.options.log_access(self.client, request, status, self.body_bytes_sent)
    _bad_request: Optional[FramingError] = None   # a refusal waiting behind an answer

