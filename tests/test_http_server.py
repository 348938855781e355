"""The HTTP/1.1 server (reactor/http/server.py) end to end, over real sockets on 127.0.0.1.

The client is a raw socket (plain or TLS) read and written from the test
thread, between passes of the server's loop, so the whole exchange runs on
one thread and every byte on the wire is the server's own. Responses are
read with ``parse_response`` below, a small reader kept here so that these
tests do not depend on the library's response parser. Every server runs
with an injected wall clock, so ``Date`` is fixed and responses are
compared whole; timeouts run on a FakeClock and nothing sleeps.
"""

import collections
import fcntl
import logging
import os
import socket
import ssl
import struct
import termios
import time
from http import HTTPStatus

import pytest

from reactor import Limits
from reactor.http import FileBody, HTTPError, Response, Router
from reactor.http.deadlines import DRAIN_IDLE_SECONDS

from .support.certs import raw_tls_client, server_ctx
from .support.loops import advance, run_until

WALL_CLOCK = 784111777.0
DATE = "Sun, 06 Nov 1994 08:49:37 GMT"
TEXT = ("Content-Type", "text/plain; charset=utf-8")
HELLO = b"Hello, world!"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
KIB = 1024
MIB = 1024 * 1024
#: A small client receive buffer: a client that does not read stops the
#: server within a few hundred KiB instead of the tens of MiB autotuning allows.
SMALL_RCVBUF = 64 * KIB
PASS_WAIT_SECONDS = 0.002

Reply = collections.namedtuple("Reply", "status reason headers body")
#: The reason phrases RFC 9110 renamed (Python's HTTPStatus keeps RFC 2616's).
RFC9110_REASONS = {413: "Content Too Large", 414: "URI Too Long", 416: "Range Not Satisfiable"}


# -- the client side ------------------------------------------------------------

def parse_response(buffer, head_only=False, closed=False):
    """Return ``(Reply, bytes used)`` for the first whole response in ``buffer``, or None.

    The body is framed by Content-Length, chunked coding, or (neither
    given) the end of the connection, which ``closed`` tells. ``head_only``
    is for the answer to a HEAD request; 1xx, 204 and 304 never have a body.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    version, status, reason = lines[0].split(" ", 2)
    assert version == "HTTP/1.1", lines[0]
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    fields = {name.lower(): value for name, value in headers}
    status, pos = int(status), end + 4
    if head_only or status < 200 or status in (204, 304):
        body = b""
    elif fields.get("transfer-encoding") == "chunked":
        spans = []                        # find the end first: no copying until it is all here
        while True:
            line_end = buffer.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buffer[pos:line_end]), 16)
            start = line_end + 2
            if len(buffer) < start + size + 2:
                return None
            assert buffer[start + size:start + size + 2] == b"\r\n", "chunk not ended by CRLF"
            pos = start + size + 2
            if not size:
                break
            spans.append((start, start + size))
        body = b"".join(bytes(buffer[start:stop]) for start, stop in spans)
    elif "content-length" in fields:
        length = int(fields["content-length"])
        if len(buffer) < pos + length:
            return None
        body, pos = bytes(buffer[pos:pos + length]), pos + length
    elif closed:
        body, pos = bytes(buffer[pos:]), len(buffer)
    else:
        return None
    return Reply(status, reason, headers, body), pos


class Client:
    """A raw client socket (plain or TLS) whose every wait runs passes of the server's loop."""

    def __init__(self, loop, sock):
        self.loop, self.sock = loop, sock
        sock.setblocking(False)
        self.received = bytearray()
        self.closed = False

    def send(self, data, timeout=5.0):
        """Send all of ``data``, running loop passes while the kernel is full."""
        view = memoryview(data)
        deadline = time.monotonic() + timeout
        while view:
            view = view[self.send_some(view):]
            if view:
                assert time.monotonic() < deadline, "could not send within %.1f s" % timeout
                self.pump()

    def send_some(self, data):
        """Send what the kernel takes now (no waiting); return how many bytes that was."""
        try:
            return self.sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            return 0

    def pump(self, passes=1, read=True):
        """Run loop passes, each followed (if ``read``) by reading what arrived."""
        for _ in range(passes):
            self.loop.run_once(PASS_WAIT_SECONDS)
            if read:
                self.read_available()

    def read_available(self):
        while not self.closed:
            try:
                chunk = self.sock.recv(256 * KIB)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except (ConnectionResetError, ssl.SSLZeroReturnError, ssl.SSLEOFError):
                chunk = b""
            if not chunk:
                self.closed = True
                return
            self.received += chunk

    def wait(self, predicate, timeout=5.0):
        """Pump until ``predicate()`` holds; fail after ``timeout`` real seconds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, "timed out; received %r" % self.received[-300:]
            self.pump()

    def response(self, head_only=False, timeout=5.0):
        """Wait for one whole response, take it off the front of ``received`` and return it."""
        found = []

        def whole():
            found[:] = [parse_response(self.received, head_only, self.closed)]
            return found[0] is not None or self.closed
        self.wait(whole, timeout)
        assert found[0] is not None, "connection closed before a response"
        reply, used = found[0]
        del self.received[:used]
        return reply

    def wait_closed(self, timeout=5.0):
        """Pump until the server ends the connection."""
        self.wait(lambda: self.closed, timeout)

    def quiet(self, passes=20):
        """Pump ``passes`` times; return what arrived (expected: nothing)."""
        self.pump(passes)
        return bytes(self.received)

    def close(self):
        self.sock.close()


class Harness:
    """Servers and clients of one test on one loop, all closed at the end."""

    def __init__(self, loop):
        self.loop = loop
        self.servers, self.clients = [], []

    def serve(self, app, **options):
        """Serve ``app`` on 127.0.0.1 with a fixed wall clock and ``options``; return the Server."""
        options.setdefault("wall_clock", lambda: WALL_CLOCK)
        server = self.loop.listen_http(app, "127.0.0.1", 0, **options)
        self.servers.append(server)
        return server

    def connect(self, server, tls=False, rcvbuf=None):
        """Return a Client connected to ``server`` (over TLS with the test CA if ``tls``)."""
        address = server.addresses[0][:2]
        if tls:
            sock = raw_tls_client(self.loop, address)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(5)
            sock.connect(address)
        client = Client(self.loop, sock)
        self.clients.append(client)
        return client

    def close(self):
        for client in self.clients:
            client.close()
        for server in self.servers:
            server.close()


@pytest.fixture
def http(net):
    """A harness on a real-clock reactor."""
    harness = Harness(net)
    yield harness
    harness.close()


@pytest.fixture
def fake_http(fake_net):
    """A harness on a reactor whose time moves only with ``fake_http.loop.clock``."""
    harness = Harness(fake_net)
    yield harness
    harness.close()


def request(method="GET", target="/", fields=(), body=b"", version="HTTP/1.1"):
    """Return a request as bytes; HTTP/1.1 ones get ``Host: test`` first."""
    lines = ["%s %s %s" % (method, target, version)]
    if version == "HTTP/1.1":
        lines.append("Host: test")
    lines.extend("%s: %s" % field for field in fields)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def closes_at(loop, client, seconds):
    """Move the fake clock: open and silent until 0.1 s before ``seconds``, closed 0.1 s after."""
    advance(loop, loop.clock, seconds - 0.1)
    assert client.quiet(5) == b"" and not client.closed
    advance(loop, loop.clock, 0.2)
    client.wait_closed(timeout=2)


def chunked(*pieces):
    """Return ``pieces`` in chunked coding, ended."""
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def head(*fields):
    """Return the fields the server leads every response with, then ``fields``."""
    return [("Date", DATE), ("Server", "reactor")] + list(fields)


def length(body):
    """Return the Content-Length field of ``body``."""
    return ("Content-Length", str(len(body)))


def error_reply(status, *fields):
    """Return the server's own answer to bad input or an unknown route with ``status``."""
    body = b"%d %s\n" % (status, RFC9110_REASONS.get(status, HTTPStatus(status).phrase).encode())
    return Reply(status, RFC9110_REASONS.get(status, HTTPStatus(status).phrase),
                 head(TEXT, length(body), *fields), body)


def hello_app():
    """A router with ``GET /`` (Hello, world!) and ``/echo`` (method, target and body back)."""
    app = Router()

    @app.route("/")
    def hello(request):
        return Response(200, body=HELLO)

    @app.route("/echo", methods=["GET", "POST"])
    def echo(request):
        return Response(200, body=b"%s %s %s" % (request.method.encode(),
                                                  request.target.encode(), request.body))
    return app


def hello_reply(*fields):
    """Return the answer of ``GET /``, with ``fields`` after its Content-Length."""
    return Reply(200, "OK", head(length(HELLO), *fields), HELLO)


def pattern(size):
    """Return ``size`` bytes of numbered 8-byte lines: a lost, repeated or moved piece shows."""
    return b"".join(b"%07d\n" % i for i in range(size // 8 + 1))[:size]


def run_while_moving(loop, count, passes=30, timeout=5.0):
    """Run passes until ``count()`` stays the same for ``passes`` passes in a row."""
    deadline = time.monotonic() + timeout
    last, still = count(), 0
    while still < passes:
        assert time.monotonic() < deadline, "still moving after %.1f s" % timeout
        loop.run_once(PASS_WAIT_SECONDS)
        now = count()
        still = still + 1 if now == last else 0
        last = now
    return last


# -- answers ----------------------------------------------------------------------

def test_get_hello_is_answered_with_date_server_and_length(http):
    """A GET gets its status line, Date (IMF-fixdate, wall clock), Server, Content-Length, body."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request())
    client.wait(lambda: parse_response(client.received) is not None)
    assert bytes(client.received) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
        b"Server: reactor\r\n"
        b"Content-Length: 13\r\n"
        b"\r\n"
        b"Hello, world!")
    assert client.quiet() == bytes(client.received) and not client.closed


def test_str_body_gets_a_utf8_text_content_type(http):
    """A str body is sent as UTF-8 with Content-Type text/plain; charset=utf-8."""
    app = Router()
    app.add_route("/", lambda request: Response(200, body="caf\u00e9"))
    server = http.serve(app)
    client = http.connect(server)
    client.send(request())
    assert client.response() == Reply(200, "OK", head(TEXT, ("Content-Length", "5")),
                                      "caf\u00e9".encode())


def test_handler_framing_fields_are_replaced_by_the_servers(http):
    """A handler's Content-Length and Transfer-Encoding never reach the wire; the server frames."""
    app = Router()
    app.add_route("/", lambda request: Response(
        200, [("Content-Length", "999"), ("Transfer-Encoding", "gzip"), ("X-Kept", "yes")],
        b"hi"))
    server = http.serve(app)
    client = http.connect(server)
    client.send(request() + request())
    expected = Reply(200, "OK", head(("X-Kept", "yes"), ("Content-Length", "2")), b"hi")
    assert [client.response(), client.response()] == [expected, expected]


def test_pipelined_requests_are_answered_in_order_on_one_connection(http):
    """Ten requests in one send (GET, POSTs sized and chunked) get ten answers, in order."""
    server = http.serve(hello_app())
    client = http.connect(server)
    requests, expected = [], []
    for i in range(10):
        if i % 3 == 0:
            requests.append(request("GET", "/echo?i=%d" % i))
            expected.append(b"GET /echo?i=%d " % i)
        elif i % 3 == 1:
            body = b"body %d" % i
            requests.append(request("POST", "/echo?i=%d" % i, [length(body)], body))
            expected.append(b"POST /echo?i=%d body %d" % (i, i))
        else:
            requests.append(request("POST", "/echo?i=%d" % i,
                                    [("Transfer-Encoding", "chunked")],
                                    chunked(b"chunk", b"ed %d" % i)))
            expected.append(b"POST /echo?i=%d chunked %d" % (i, i))
    client.send(b"".join(requests))
    replies = [client.response() for _ in range(10)]
    assert [(reply.status, reply.body) for reply in replies] == [(200, body) for body in expected]
    assert client.quiet() == b"" and not client.closed
    assert server.stats()["accepted"] == 1


# -- keep-alive -------------------------------------------------------------------

def test_http11_keeps_the_connection_open_by_default(http):
    """HTTP/1.1 without Connection: no Connection field in the answer; the next request works."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request())
    assert client.response() == hello_reply()
    assert client.quiet() == b"" and not client.closed
    client.send(request())
    assert client.response() == hello_reply()
    assert server.stats()["accepted"] == 1


def test_connection_close_is_echoed_and_the_server_closes(http):
    """HTTP/1.1 with Connection: close is answered with Connection: close, then closed."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request(fields=[("Connection", "close")]))
    assert client.response() == hello_reply(("Connection", "close"))
    client.wait_closed()
    assert client.received == b""


def test_handler_connection_close_is_honoured(http):
    """A handler that sets Connection: close gets it on the wire, and the connection closes."""
    app = Router()
    app.add_route("/", lambda request: Response(200, [("Connection", "close")], HELLO))
    server = http.serve(app)
    client = http.connect(server)
    client.send(request())
    assert client.response() == hello_reply(("Connection", "close"))
    client.wait_closed()


def test_http10_without_keep_alive_is_closed_after_its_answer(http):
    """An HTTP/1.0 request without Connection: keep-alive is answered with Connection: close."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request(version="HTTP/1.0"))
    assert client.response() == hello_reply(("Connection", "close"))
    client.wait_closed()


def test_http10_keep_alive_is_granted_and_the_connection_reused(http):
    """HTTP/1.0 with Connection: keep-alive gets Connection: keep-alive and a second answer."""
    server = http.serve(hello_app())
    client = http.connect(server)
    for _ in range(2):
        client.send(request(fields=[("Connection", "keep-alive")], version="HTTP/1.0"))
        assert client.response() == hello_reply(("Connection", "keep-alive"))
        assert client.quiet() == b"" and not client.closed
    assert server.stats()["accepted"] == 1


# -- Expect: 100-continue --------------------------------------------------------

def test_expect_continue_gets_100_before_the_body_is_sent(http):
    """With Expect: 100-continue the 100 arrives first; the body follows, then the answer."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request("POST", "/echo", [length(b"hello"), ("Expect", "100-continue")]))
    client.wait(lambda: len(client.received) >= len(CONTINUE))
    assert client.quiet() == CONTINUE
    del client.received[:]
    client.send(b"hello")
    assert client.response() == Reply(200, "OK", head(("Content-Length", "16")),
                                      b"POST /echo hello")


def test_expect_continue_for_an_unknown_route_gets_the_404_and_no_100(http):
    """A request answered before its body (404) gets no 100 Continue, and the connection closes."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request("POST", "/nowhere", [length(b"hello"), ("Expect", "100-continue")]))
    assert client.response() == error_reply(404, ("Connection", "close"))
    client.wait_closed()
    assert client.received == b""


# -- routing: 404, 405, HEAD --------------------------------------------------------

def test_unknown_path_is_404_and_the_connection_goes_on(http):
    """A path no route matches gets 404 Not Found; the connection stays usable."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request(target="/missing") + request())
    assert client.response() == error_reply(404)
    assert client.response() == hello_reply()


def test_wrong_method_is_405_with_the_allowed_methods(http):
    """A known path with another method gets 405 and Allow: the route's methods (HEAD with GET)."""
    app = hello_app()
    app.add_route("/things", lambda request: Response(201), methods=["PUT", "POST"])
    server = http.serve(app)
    client = http.connect(server)
    client.send(request("DELETE", "/") + request("GET", "/things") + request())
    body = b"405 Method Not Allowed\n"
    assert client.response() == Reply(405, "Method Not Allowed",
                                      head(("Allow", "GET, HEAD"), TEXT, length(body)), body)
    assert client.response() == Reply(405, "Method Not Allowed",
                                      head(("Allow", "POST, PUT"), TEXT, length(body)), body)
    assert client.response() == hello_reply()


def test_head_of_a_get_route_sends_the_get_head_without_body(http):
    """HEAD is served by the GET route: same fields, the GET body's Content-Length, no body."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request("HEAD", "/"))
    assert client.response(head_only=True) == Reply(200, "OK", head(length(HELLO)), b"")
    assert client.quiet() == b""
    client.send(request())
    assert client.response() == hello_reply()


def test_head_of_a_streamed_route_sends_no_chunks_and_pulls_nothing(http):
    """HEAD of a route answering with a generator: the chunked head only, nothing pulled."""
    pulled = []

    def chunks():
        for piece in (b"a", b"b"):
            pulled.append(piece)
            yield piece
    app = Router()
    app.add_route("/stream", lambda request: Response(200, body=chunks()))
    server = http.serve(app)
    client = http.connect(server)
    client.send(request("HEAD", "/stream"))
    assert client.response(head_only=True) == Reply(
        200, "OK", head(("Transfer-Encoding", "chunked")), b"")
    assert client.quiet() == b"" and pulled == []
    client.send(request("GET", "/stream"))
    assert client.response() == Reply(200, "OK", head(("Transfer-Encoding", "chunked")), b"ab")


# -- handler failures -------------------------------------------------------------

def test_handler_exception_is_500_logged_not_sent_and_the_connection_goes_on(http, caplog):
    """A raising handler: 500 without the traceback, which is logged; the next request works."""
    app = hello_app()

    @app.route("/boom")
    def boom(request):
        raise RuntimeError("secret detail")
    server = http.serve(app)
    client = http.connect(server)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        client.send(request(target="/boom") + request())
        body = b"500 Internal Server Error\n"
        assert client.response() == Reply(500, "Internal Server Error",
                                          head(TEXT, length(body)), body)
        assert client.response() == hello_reply()
    failures = [(record.name, record.levelname, repr(record.exc_info[1]))
                for record in caplog.records if record.exc_info]
    assert failures == [("reactor", "ERROR", "RuntimeError('secret detail')")]


@pytest.mark.parametrize("result", [42, (b"x", 201), object()], ids=["int", "tuple", "object"])
def test_handler_returning_a_wrong_type_is_500(http, caplog, result):
    """A handler returning no Response, bytes, str, dict, list or None gets 500, logged."""
    app = hello_app()
    app.add_route("/wrong", lambda request: result)
    server = http.serve(app)
    client = http.connect(server)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        client.send(request(target="/wrong") + request())
        body = b"500 Internal Server Error\n"
        assert client.response() == Reply(500, "Internal Server Error",
                                          head(TEXT, length(body)), body)
        assert client.response() == hello_reply()
    assert [(record.name, record.levelname) for record in caplog.records] == [
        ("reactor", "ERROR")]


@pytest.mark.parametrize("result, body", [({"a": 1}, b'{"a": 1}'), ([1, "x"], b'[1, "x"]')],
                         ids=["dict", "list"])
def test_handler_returning_a_dict_or_list_is_json(http, result, body):
    """A dict or list becomes a 200 with its JSON and an application/json type."""
    app = hello_app()
    app.add_route("/json", lambda request: result)
    client = http.connect(http.serve(app))
    client.send(request(target="/json"))
    assert client.response() == Reply(200, "OK", head(("Content-Type", "application/json"),
                                                      length(body)), body)


def test_a_handler_raising_http_error_gets_its_status_and_message(http):
    """raise HTTPError(422, why) in a handler answers 422 with the message; bad JSON is a 400."""
    app = hello_app()

    @app.route("/check", methods=["POST"])
    def check(request):
        value = request.json()
        if "name" not in value:
            raise HTTPError(422, "name is required")
        return Response(200, body=value["name"])
    client = http.connect(http.serve(app))
    client.send(request("POST", "/check", [("Content-Length", "10")], b'{"age": 3}') +
                request("POST", "/check", [("Content-Length", "9")], b"{not json"))
    first, second = client.response(), client.response()
    assert (first.status, first.body) == (422, b"422 Unprocessable Content: name is required\n")
    assert second.status == 400 and second.body.startswith(b"400 Bad Request: the body is not JSON")


def test_handler_returning_bytes_is_a_200(http):
    """A handler may return bare bytes: a 200 with that body."""
    app = Router()
    app.add_route("/", lambda request: HELLO)
    server = http.serve(app)
    client = http.connect(server)
    client.send(request())
    assert client.response() == hello_reply()


def test_generator_failing_mid_body_aborts_the_connection(http, caplog):
    """A body generator that raises after the head is sent: the connection is cut, not ended."""
    def chunks():
        yield b"first"
        raise RuntimeError("generator broke")
    app = hello_app()
    app.add_route("/broken", lambda request: Response(200, body=chunks()))
    server = http.serve(app)
    client = http.connect(server)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        client.send(request(target="/broken"))
        client.wait_closed()
    assert bytes(client.received).endswith(b"5\r\nfirst\r\n")      # never the final 0 chunk
    assert [repr(record.exc_info[1]) for record in caplog.records if record.exc_info] == [
        "RuntimeError('generator broke')"]


def test_handler_raising_after_start_response_aborts_the_connection(http, caplog):
    """A handler that raises once its response has begun: the connection is cut, no 500 follows."""
    app = hello_app()

    @app.route("/half")
    def half(request):
        writer = request.start_response(200)
        writer.write(b"partial")
        raise RuntimeError("after the head")
    server = http.serve(app)
    client = http.connect(server)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        client.send(request(target="/half"))
        client.wait_closed(timeout=2)
    assert bytes(client.received).endswith(b"7\r\npartial\r\n")
    assert b"500" not in client.received


# -- answering later ------------------------------------------------------------------

def test_deferred_answer_holds_the_pipelined_request_behind_it(fake_http):
    """A handler returns None and responds a second later; the next request waits, then follows."""
    loop = fake_http.loop
    app = hello_app()

    @app.route("/later")
    def later(request):
        loop.call_later(1.0, request.respond, Response(200, body=b"late"))
    server = fake_http.serve(app)
    client = fake_http.connect(server)
    client.send(request(target="/later") + request())
    assert client.quiet() == b""
    advance(loop, loop.clock, 0.9)
    assert client.quiet() == b""
    advance(loop, loop.clock, 0.2)
    assert [client.response(), client.response()] == [
        Reply(200, "OK", head(("Content-Length", "4")), b"late"), hello_reply()]


def test_responding_twice_raises(fake_http):
    """request.respond() after the answer went out raises RuntimeError; the wire sees one answer."""
    loop = fake_http.loop
    outcomes = []
    app = hello_app()

    @app.route("/later")
    def later(request):
        def answer_twice():
            request.respond(Response(200, body=b"once"))
            try:
                request.respond(Response(200, body=b"twice"))
            except RuntimeError:
                outcomes.append("refused")
        loop.call_later(1.0, answer_twice)
    server = fake_http.serve(app)
    client = fake_http.connect(server)
    client.send(request(target="/later"))
    assert client.quiet() == b""                     # the handler has run: its timer is set
    advance(loop, loop.clock, 1.1)
    assert client.response() == Reply(200, "OK", head(("Content-Length", "4")), b"once")
    assert client.quiet() == b"" and outcomes == ["refused"]


def test_an_answer_for_a_client_that_has_gone_is_dropped_quietly(fake_http, caplog):
    """request.respond() after the client closed neither raises nor logs an error."""
    loop = fake_http.loop
    outcomes = []
    app = hello_app()

    @app.route("/later")
    def later(request):
        def answer():
            request.respond(Response(200, body=b"too late"))
            outcomes.append("answered")
        loop.call_later(1.0, answer)
    server = fake_http.serve(app)
    client = fake_http.connect(server)
    client.send(request(target="/later"))
    assert client.quiet() == b""
    client.close()
    run_until(loop, lambda: len(server) == 0)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        advance(loop, loop.clock, 1.1)
    assert outcomes == ["answered"] and not caplog.records


# -- streamed responses -------------------------------------------------------------

def test_generator_body_is_pulled_only_as_fast_as_the_client_reads(http):
    """400 chunks of 64 KiB: few are pulled while the client does not read; then all arrive."""
    size, count = 64 * KIB, 400
    pulled = []

    def chunks():
        for i in range(count):
            pulled.append(i)
            yield bytes([i % 251]) * size
    app = Router()
    app.add_route("/big", lambda request: Response(200, body=chunks()))
    server = http.serve(app)
    client = http.connect(server, rcvbuf=SMALL_RCVBUF)
    client.send(request(target="/big"))
    run_until(http.loop, lambda: pulled, timeout=2)
    transport = server.connections()[0]
    buffered = []

    def pulled_so_far():
        buffered.append(transport.get_write_buffer_size())
        return len(pulled)
    stalled_at = run_while_moving(http.loop, pulled_so_far)
    kernel = (transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
              + client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    assert stalled_at * size <= kernel + 64 * KIB + 2 * size, (stalled_at, kernel)
    assert stalled_at < count // 4
    assert max(buffered) <= 64 * KIB + size
    reply = client.response(timeout=20)
    assert reply.headers == head(("Transfer-Encoding", "chunked"))
    assert len(reply.body) == size * count
    assert reply.body == b"".join(bytes([i % 251]) * size for i in range(count))


def test_push_writer_pauses_with_the_client_and_resumes(http):
    """start_response: write while not is_paused(), on_resume goes on, end() finishes the body."""
    size, count = 64 * KIB, 200
    state = {"written": 0, "paused_at": []}
    app = Router()

    @app.route("/live")
    def live(request):
        writer = request.start_response(200, [("Content-Type", "application/octet-stream")])

        def produce():
            while not writer.is_paused() and state["written"] < count:
                writer.write(bytes([state["written"] % 251]) * size)
                state["written"] += 1
            if writer.is_paused():
                state["paused_at"].append(state["written"])
            elif state["written"] == count:
                writer.end()
        writer.on_resume = produce
        produce()
    server = http.serve(app)
    client = http.connect(server, rcvbuf=SMALL_RCVBUF)
    client.send(request(target="/live"))
    run_until(http.loop, lambda: state["paused_at"], timeout=2)
    stalled_at = run_while_moving(http.loop, lambda: state["written"])
    assert stalled_at < count // 2
    reply = client.response(timeout=20)
    assert reply.headers == head(("Content-Type", "application/octet-stream"),
                                 ("Transfer-Encoding", "chunked"))
    assert reply.body == b"".join(bytes([i % 251]) * size for i in range(count))
    assert len(state["paused_at"]) > 1 and state["written"] == count
    client.send(request(target="/live"))                # the connection goes on
    state.update(written=0, paused_at=[])
    assert client.response(timeout=20).body == reply.body


def test_push_writer_to_http10_sends_the_body_until_close(http):
    """An HTTP/1.0 client of start_response: no chunking, no length; the body ends at the close."""
    app = Router()

    @app.route("/live")
    def live(request):
        writer = request.start_response(200)
        writer.write(b"one ")
        writer.write(b"two")
        writer.end()
    server = http.serve(app)
    client = http.connect(server)
    client.send(request(target="/live", fields=[("Connection", "keep-alive")],
                        version="HTTP/1.0"))
    client.wait_closed(timeout=2)
    reply, _ = parse_response(client.received, closed=True)
    assert reply == Reply(200, "OK", head(("Connection", "close")), b"one two")


# -- streamed request bodies -----------------------------------------------------------

def upload_app(seen):
    """A router whose ``POST /upload`` streams its body into ``seen`` and answers at the end."""
    app = Router()

    @app.route("/upload", methods=["POST"], stream_body=True)
    def upload(request):
        seen["request"] = request
        pieces = seen.setdefault("pieces", [])

        def on_end():
            total = sum(len(piece) for piece in pieces)
            request.respond(Response(200, body=b"%d bytes" % total))
        request.read_body(lambda data: pieces.append(bytes(data)), on_end)
    return app


def test_streamed_chunked_upload_arrives_in_pieces_then_on_end(http):
    """A 2 MiB chunked upload reaches on_data in pieces, whole and in order; on_end answers."""
    seen = {}
    server = http.serve(upload_app(seen), max_body_bytes=16 * MIB)
    client = http.connect(server)
    payload = pattern(2 * MIB)
    pieces = [payload[start:start + 16 * KIB] for start in range(0, len(payload), 16 * KIB)]
    client.send(request("POST", "/upload", [("Transfer-Encoding", "chunked")],
                        chunked(*pieces)))
    assert client.response() == Reply(200, "OK", head(("Content-Length", "13")),
                                      b"2097152 bytes")
    assert b"".join(seen["pieces"]) == payload and len(seen["pieces"]) > 1
    client.send(request())
    assert client.response() == error_reply(404)


def test_streamed_content_length_upload_arrives_whole(http):
    """A 2 MiB Content-Length upload reaches on_data whole and in order; on_end answers."""
    seen = {}
    server = http.serve(upload_app(seen), max_body_bytes=16 * MIB)
    client = http.connect(server)
    payload = pattern(2 * MIB)
    client.send(request("POST", "/upload", [length(payload)], payload))
    assert client.response().body == b"2097152 bytes"
    assert b"".join(seen["pieces"]) == payload and len(seen["pieces"]) > 1


def test_streamed_upload_with_expect_continue_gets_100_at_read_body(http):
    """A streaming route sends the 100 Continue when its handler asks for the body."""
    seen = {}
    server = http.serve(upload_app(seen))
    client = http.connect(server)
    client.send(request("POST", "/upload", [length(b"abc"), ("Expect", "100-continue")]))
    client.wait(lambda: len(client.received) >= len(CONTINUE))
    assert client.quiet() == CONTINUE
    del client.received[:]
    client.send(b"abc")
    assert client.response().body == b"3 bytes"


def test_pause_body_stops_delivery_and_resume_body_restarts_it(http):
    """After pause_body() no pieces arrive however much the client sends; resume_body() goes on."""
    seen = {}
    app = Router()

    @app.route("/upload", methods=["POST"], stream_body=True)
    def upload(request):
        pieces = seen["pieces"] = []

        def on_data(data):
            pieces.append(bytes(data))
            if len(pieces) == 1:
                request.pause_body()

        def on_end():
            request.respond(Response(200, body=b"%d bytes" % sum(map(len, pieces))))
        seen["request"] = request
        request.read_body(on_data, on_end)
    server = http.serve(app, max_body_bytes=64 * MIB)
    client = http.connect(server)
    payload = pattern(32 * MIB)
    wire = memoryview(request("POST", "/upload", [length(payload)]) + payload)
    sent = client.send_some(wire)
    run_until(http.loop, lambda: seen.get("pieces"))

    def delivered_while_sending():
        nonlocal sent
        sent += client.send_some(wire[sent:])
        return sum(map(len, seen["pieces"])), sent
    stalled_at, sent_at_stall = run_while_moving(http.loop, delivered_while_sending)
    assert stalled_at < len(payload) and sent_at_stall < len(wire)
    assert client.quiet() == b""
    seen["request"].resume_body()
    client.wait(lambda: delivered_while_sending()[1] == len(wire), timeout=20)
    assert client.response(timeout=20).body == b"33554432 bytes"
    assert b"".join(seen["pieces"]) == payload


def test_streamed_route_answering_before_the_body_closes_the_connection(http):
    """A stream_body handler answering without reading the body: Connection: close, closed."""
    app = Router()
    app.add_route("/upload", lambda request: Response(401, body=b"no"), methods=["POST"],
                  stream_body=True)
    server = http.serve(app)
    client = http.connect(server)
    client.send(request("POST", "/upload", [length(b"x" * 100)], b"x" * 50))
    assert client.response() == Reply(401, "Unauthorized",
                                      head(("Content-Length", "2"), ("Connection", "close")),
                                      b"no")
    client.wait_closed()


# -- bad input ---------------------------------------------------------------------

BAD_REQUESTS = [
    ("content-length-and-chunked", 400,
     b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("two-content-lengths", 400,
     b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"
     b"hello!"),
    ("obs-fold", 400, b"GET / HTTP/1.1\r\nHost: test\r\nX-Folded: a\r\n  b\r\n\r\n"),
    ("bare-cr", 400, b"GET / HTTP/1.1\r\nHost: test\r\nX-A: a\rb\r\n\r\n"),
    ("space-before-colon", 400, b"GET / HTTP/1.1\r\nHost : test\r\n\r\n"),
    ("gzip-then-chunked", 501,
     b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("chunked-then-gzip", 400,
     b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("request-line-over-8-KiB", 414,
     b"GET /" + b"a" * 8200 + b" HTTP/1.1\r\nHost: test\r\n\r\n"),
    ("header-block-over-64-KiB", 431,
     b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"b" * (64 * KIB) + b"\r\n\r\n"),
    ("101-header-fields", 431,
     b"GET / HTTP/1.1\r\nHost: test\r\n"
     + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"),
    ("content-length-over-max-body", 413,
     b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1001\r\n\r\n" + b"x" * 1001),
    ("chunked-over-max-body", 413,
     b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"1f4\r\n" + b"x" * 500 + b"\r\n" + b"1f5\r\n" + b"x" * 501 + b"\r\n0\r\n\r\n"),
    ("http-2.0", 505, b"GET / HTTP/2.0\r\nHost: test\r\n\r\n"),
    ("relative-target", 400, b"GET hello HTTP/1.1\r\nHost: test\r\n\r\n"),
    ("no-host", 400, b"GET / HTTP/1.1\r\n\r\n"),
]


@pytest.mark.parametrize("name,status,raw", BAD_REQUESTS, ids=[bad[0] for bad in BAD_REQUESTS])
def test_bad_request_is_answered_closed_and_counted(http, name, status, raw):
    """Bad input gets its status and Connection: close, then the close; the server serves on."""
    server = http.serve(hello_app(), max_body_bytes=1000)
    client = http.connect(server)
    client.send(raw)
    assert client.response() == error_reply(status, ("Connection", "close"))
    client.wait_closed()
    assert client.received == b""
    second = http.connect(server)
    second.send(request())
    assert second.response() == hello_reply()
    assert server.stats()["rejected_framing"] == 1


@pytest.mark.parametrize("raw", [
    b"GET /" + b"a" * (8192 - len("GET / HTTP/1.1") - 1) + b" HTTP/1.1\r\nHost: test\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: test\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(99))
    + b"\r\n",
    b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000,
    b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"1f4\r\n" + b"x" * 500 + b"\r\n" + b"1f4\r\n" + b"x" * 500 + b"\r\n0\r\n\r\n",
], ids=["8192-byte-request-line", "100-header-fields", "content-length-at-max",
        "chunked-at-max"])
def test_requests_exactly_at_a_limit_are_served(http, raw):
    """A request line of 8192 bytes, 100 fields, a body of exactly max_body_bytes: not refused."""
    server = http.serve(hello_app(), max_body_bytes=1000)
    client = http.connect(server)
    client.send(raw + request())
    assert client.response().status in (200, 404)
    assert client.response() == hello_reply()
    assert server.stats()["rejected_framing"] == 0


def test_requests_before_a_bad_one_are_answered_first(http):
    """Good pipelined requests ahead of bad bytes get their answers, then the 400 and the close."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request() + request("GET", "/echo") + b"GET / HTTP/1.1\r\nHost : test\r\n\r\n")
    assert [client.response(), client.response().body, client.response()] == [
        hello_reply(), b"GET /echo ", error_reply(400, ("Connection", "close"))]
    client.wait_closed()


def test_bad_bytes_behind_a_deferred_answer_wait_for_it(fake_http):
    """A deferred answer pipelined ahead of bad bytes is still sent, then the 400 and the close."""
    loop = fake_http.loop
    app = hello_app()

    @app.route("/later")
    def later(request):
        loop.call_later(1.0, request.respond, Response(200, body=b"late"))
    server = fake_http.serve(app)
    client = fake_http.connect(server)
    client.send(request(target="/later") + b"GET / HTTP/1.1\r\nHost : test\r\n\r\n")
    assert client.quiet() == b""
    advance(loop, loop.clock, 1.1)
    assert [client.response(), client.response()] == [
        Reply(200, "OK", head(("Content-Length", "4")), b"late"),
        error_reply(400, ("Connection", "close"))]
    client.wait_closed(timeout=1)


def test_bad_bytes_behind_a_file_answer_do_not_cut_the_file(http, tmp_path):
    """A file being sent when bad bytes arrive behind its request is sent whole, then the 400."""
    data = pattern(5 * MIB)
    path = tmp_path / "five.bin"
    path.write_bytes(data)
    server = http.serve(file_app(str(path), []))
    client = http.connect(server)
    client.send(request(target="/file") + b"GET / HTTP/1.1\r\nHost : test\r\n\r\n")
    assert client.response(timeout=10) == Reply(200, "OK", head(length(data)), data)
    assert client.response() == error_reply(400, ("Connection", "close"))
    client.wait_closed()


def test_requests_after_connection_close_are_not_answered(http):
    """Requests pipelined behind one with Connection: close are dropped with the connection."""
    calls = []
    app = Router()
    app.add_route("/", lambda request: calls.append(request.target) or Response(200, body=HELLO))
    server = http.serve(app)
    client = http.connect(server)
    client.send(request(fields=[("Connection", "close")]) + request() + request())
    assert client.response() == hello_reply(("Connection", "close"))
    client.wait_closed()
    assert client.received == b"" and calls == ["/"]


# -- timeouts (FakeClock) -----------------------------------------------------------

def connected(harness, server, **connect_options):
    """Connect and run passes until the server has accepted (its timers start there)."""
    client = harness.connect(server, **connect_options)
    run_until(harness.loop, lambda: len(server) == 1)
    return client


def test_slowloris_head_is_closed_header_timeout_after_its_first_byte(fake_http):
    """A head dripped a byte a second is closed header_timeout after its first byte, not later."""
    loop = fake_http.loop
    server = fake_http.serve(hello_app(), header_timeout=10, keepalive_timeout=5)
    client = connected(fake_http, server)
    advance(loop, loop.clock, 5)
    drip = iter(b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"s" * 100)
    client.send(bytes([next(drip)]))                 # the first byte, 5 s after connecting
    client.pump(3)
    for _ in range(9):                               # 9 s of a byte a second
        advance(loop, loop.clock, 1)
        client.send(bytes([next(drip)]))
        client.pump(3)
    closes_at(loop, client, 1)                   # 10 s after the first byte
    assert client.received == b""
    assert server.stats()["rejected_timeout"] == 1


def test_silent_connection_is_closed_at_header_timeout(fake_http):
    """A connection that sends nothing is closed header_timeout after it was accepted."""
    loop = fake_http.loop
    server = fake_http.serve(hello_app(), header_timeout=10)
    client = connected(fake_http, server)
    closes_at(loop, client, 10)
    assert client.received == b""
    assert server.stats()["rejected_timeout"] == 1


def test_idle_keep_alive_is_closed_keepalive_timeout_after_the_last_answer(fake_http):
    """An idle keep-alive connection lives keepalive_timeout after its last answer, then closes."""
    loop = fake_http.loop
    server = fake_http.serve(hello_app(), header_timeout=10, keepalive_timeout=5)
    client = connected(fake_http, server)
    client.send(request())
    assert client.response() == hello_reply()
    advance(loop, loop.clock, 4.9)
    assert client.quiet(5) == b"" and not client.closed
    client.send(request())                           # the second answer moves the deadline
    assert client.response() == hello_reply()
    closes_at(loop, client, 5)
    assert client.received == b""


def test_stalled_body_is_closed_at_body_timeout(fake_http):
    """Each body byte moves the deadline; body_timeout seconds without one close the connection."""
    loop = fake_http.loop
    server = fake_http.serve(hello_app(), header_timeout=10, body_timeout=30)
    client = connected(fake_http, server)
    client.send(request("POST", "/echo", [("Content-Length", "10")], b"abc"))
    client.pump(3)
    advance(loop, loop.clock, 29)
    client.send(b"d")
    client.pump(3)
    closes_at(loop, client, 30)
    assert client.received == b""
    assert server.stats()["rejected_timeout"] == 1


def test_stalled_chunked_body_is_closed_at_body_timeout(fake_http):
    """A chunked body stopped mid chunk-size line is closed at body_timeout, not header_timeout."""
    loop = fake_http.loop
    server = fake_http.serve(hello_app(), header_timeout=10, body_timeout=30)
    client = connected(fake_http, server)
    client.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")], b"3\r\nabc\r\n1"))
    client.pump(3)
    closes_at(loop, client, 30)
    assert client.received == b""


def test_partial_head_after_a_chunked_body_gets_header_timeout(fake_http):
    """The next head begun in the read that ends a chunked body must end within header_timeout."""
    loop = fake_http.loop
    server = fake_http.serve(hello_app(), header_timeout=10, body_timeout=30)
    client = connected(fake_http, server)
    client.send(request("POST", "/echo", [("Transfer-Encoding", "chunked")], b"3\r\nabc\r\n"))
    client.pump(3)
    client.send(b"0\r\n\r\nGET / HT")
    assert client.response() == Reply(200, "OK", head(("Content-Length", "14")),
                                      b"POST /echo abc")
    closes_at(loop, client, 10)
    assert server.stats()["rejected_timeout"] == 1


# -- files ----------------------------------------------------------------------------

def file_app(path, opened):
    """A router serving ``path`` at ``/file`` and a part at ``/range/{offset}/{length}``."""
    app = Router()

    def open_file():
        handle = open(path, "rb")
        opened.append(handle)
        return handle

    @app.route("/file")
    def whole(request):
        return Response(200, body=FileBody(open_file(), 0, os.path.getsize(path)))

    @app.route("/range/{offset}/{length}")
    def part(request):
        return Response(206, body=FileBody(open_file(), int(request.params["offset"]),
                                           int(request.params["length"])))
    return app


@pytest.fixture
def five_mib(tmp_path):
    """A 5 MiB file of distinct lines, and its bytes."""
    data = pattern(5 * MIB)
    path = tmp_path / "five.bin"
    path.write_bytes(data)
    return str(path), data


def unread_bytes(sock):
    """Return how many bytes wait in ``sock``'s kernel receive queue, not yet read."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_file_body_is_paced_by_the_client_and_arrives_exact(http, five_mib, tls):
    """A 5 MiB FileBody: the send buffer stays small while the client does not read; all arrive."""
    path, data = five_mib
    opened = []
    server = http.serve(file_app(path, opened), ssl=server_ctx() if tls else None)
    client = http.connect(server, tls=tls)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    client.send(request(target="/file"))
    run_until(http.loop, lambda: opened)
    transport = server.connections()[0]
    buffered = []

    def arrived_unread():
        buffered.append(transport.get_write_buffer_size())
        return unread_bytes(client.sock)
    assert run_while_moving(http.loop, arrived_unread) < len(data)
    assert max(buffered) < MIB
    reply = client.response(timeout=20)
    assert reply == Reply(200, "OK", head(length(data)), data)
    run_until(http.loop, lambda: opened[0].closed)
    client.send(request(target="/range/1000/3000"))
    assert client.response() == Reply(206, "Partial Content", head(("Content-Length", "3000")),
                                      data[1000:4000])


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_file_bytes_count_in_the_servers_bytes_out(http, five_mib, tls):
    """stats()["bytes_out"] includes a file's bytes, sent with sendfile or through TLS."""
    path, data = five_mib
    server = http.serve(file_app(path, []), ssl=server_ctx() if tls else None)
    client = http.connect(server, tls=tls)
    client.send(request(target="/file", fields=[("Connection", "close")]))
    assert client.response(timeout=20).body == data
    client.wait_closed()
    client.close()
    run_until(http.loop, lambda: len(server) == 0)
    assert server.stats()["bytes_out"] >= len(data)


def test_head_of_a_file_route_states_its_length_and_closes_the_file(http, five_mib):
    """HEAD of a FileBody route: its Content-Length, no body, and the server closes the file."""
    path, data = five_mib
    opened = []
    server = http.serve(file_app(path, opened))
    client = http.connect(server)
    client.send(request("HEAD", "/file"))
    assert client.response(head_only=True) == Reply(200, "OK", head(length(data)), b"")
    run_until(http.loop, lambda: opened[0].closed)
    assert client.quiet() == b""


def test_file_shorter_than_promised_cuts_the_connection(http, tmp_path):
    """A FileBody whose file holds fewer bytes than its length: the connection is closed short."""
    path = tmp_path / "short.bin"
    path.write_bytes(b"x" * 1000)
    opened = []
    app = Router()

    @app.route("/short")
    def short(request):
        handle = open(str(path), "rb")
        opened.append(handle)
        return Response(200, body=FileBody(handle, 0, 5000))
    server = http.serve(app)
    client = http.connect(server)
    client.send(request(target="/short"))
    client.wait_closed()
    assert bytes(client.received).endswith(b"\r\n\r\n" + b"x" * 1000)
    run_until(http.loop, lambda: opened[0].closed)


# -- HTTPS ----------------------------------------------------------------------------

def test_https_get(http):
    """A GET over TLS (the test CA, host localhost) is answered like one in the clear."""
    server = http.serve(hello_app(), ssl=server_ctx())
    client = http.connect(server, tls=True)
    client.send(request() + request("POST", "/echo", [length(b"secret")], b"secret"))
    assert client.response() == hello_reply()
    assert client.response().body == b"POST /echo secret"


# -- access log -----------------------------------------------------------------------

def test_access_log_writes_one_common_log_format_line_per_request(http, caplog):
    """With access_log=True each answer is one INFO line on reactor.access in Common Log Format."""
    server = http.serve(hello_app(), access_log=True)
    client = http.connect(server)
    with caplog.at_level(logging.INFO, logger="reactor.access"):
        client.send(request() + request(target="/missing"))
        client.response()
        client.response()
    assert [(record.name, record.levelname, record.getMessage()) for record in caplog.records
            if record.name == "reactor.access"] == [
        ("reactor.access", "INFO",
         '127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] "GET / HTTP/1.1" 200 13'),
        ("reactor.access", "INFO",
         '127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] "GET /missing HTTP/1.1" 404 14')]


def test_access_log_is_off_by_default(http, caplog):
    """Without access_log nothing is logged on reactor.access."""
    server = http.serve(hello_app())
    client = http.connect(server)
    with caplog.at_level(logging.INFO, logger="reactor.access"):
        client.send(request())
        client.response()
    assert [record for record in caplog.records if record.name == "reactor.access"] == []


# -- protections ----------------------------------------------------------------------

def test_denied_source_is_closed_before_any_handler_runs(http):
    """limits=Limits(deny=...) closes a denied client at once, unanswered, and counts it."""
    calls = []
    app = Router()
    app.add_route("/", lambda request: calls.append(request) or Response(200, body=HELLO))
    server = http.serve(app, limits=Limits(deny=("127.0.0.0/8",)))
    client = http.connect(server)
    client.send_some(request())
    client.wait_closed()
    assert client.received == b"" and calls == []
    assert server.stats()["rejected_filter"] == 1


def test_max_connections_refuses_the_extra_connection_only(http):
    """Past max_connections a new client is closed; the open one is still served."""
    server = http.serve(hello_app(), max_connections=1)
    first = connected(http, server)
    extra = http.connect(server)
    extra.wait_closed()
    assert extra.received == b""
    first.send(request())
    assert first.response() == hello_reply()
    assert server.stats()["rejected_max_connections"] == 1


def test_sendfile_is_refused_on_a_tls_connection(http, five_mib):
    """The kernel cannot encrypt: sendfile on a TLS stack raises instead of sending plaintext."""
    path, _ = five_mib
    server = http.serve(file_app(path, []), ssl=server_ctx())
    client = http.connect(server, tls=True)
    run_until(http.loop, lambda: len(server) == 1)
    with open(path, "rb") as file, pytest.raises(NotImplementedError, match="encryption"):
        server.connections()[0].sendfile(file, 0, 10)
    client.close()


def test_a_generator_body_is_closed_when_the_client_leaves_mid_stream(http):
    """The connection ends before the body does: the generator's finally runs at once."""
    events = []

    def chunks():
        try:
            while True:
                yield b"x" * (64 * KIB)
        finally:
            events.append("finally")
    app = Router()
    app.add_route("/endless", lambda request: Response(200, body=chunks()))
    server = http.serve(app)
    client = http.connect(server, rcvbuf=SMALL_RCVBUF)
    client.send(request(target="/endless"))
    run_until(http.loop, lambda: len(server) == 1)
    client.pump(20, read=False)
    assert events == []
    client.close()
    run_until(http.loop, lambda: events == ["finally"])



# -- what a first user found --------------------------------------------------------

def test_a_handler_that_never_answers_gets_a_500_at_answer_timeout(fake_http, caplog):
    """A deferred answer that never comes: 500 and a close at answer_timeout, not before."""
    loop = fake_http.loop
    app = hello_app()
    app.add_route("/lost", lambda request: None)
    server = fake_http.serve(app, answer_timeout=3.0)
    client = fake_http.connect(server)
    client.send(request(target="/lost") + request())
    assert client.quiet() == b""                      # the handler has run and not answered
    advance(loop, loop.clock, 2.9)
    assert client.quiet() == b""
    with caplog.at_level(logging.ERROR, logger="reactor"):
        advance(loop, loop.clock, 0.2)
        body = b"500 Internal Server Error\n"
        assert client.response() == Reply(500, "Internal Server Error",
                                          head(TEXT, length(body), ("Connection", "close")), body)
        client.wait_closed()
    assert any("did not answer within 3 s" in record.getMessage() for record in caplog.records)


def test_shutdown_lets_a_deferred_answer_finish_and_closes_idle_connections(fake_http):
    """server.shutdown(grace): the answer under way is sent with a close; an idle connection
    is closed after DRAIN_IDLE_SECONDS of quiet; a request that comes first is answered with
    Connection: close, never lost."""
    loop = fake_http.loop
    app = hello_app()

    @app.route("/later")
    def later(request):
        loop.call_later(1.5, request.respond, Response(200, body=b"late"))
    server = fake_http.serve(app)
    busy, idle, late = (fake_http.connect(server) for _ in range(3))
    for client in (idle, late):
        client.send(request())
        assert client.response() == hello_reply()
    busy.send(request(target="/later"))
    assert busy.quiet() == b""
    server.shutdown(5.0)
    advance(loop, loop.clock, 0.5)
    late.send(request())
    assert late.response() == hello_reply(("Connection", "close"))
    late.wait_closed()
    assert idle.quiet() == b""                          # not closed yet: quiet for 0.5 s
    advance(loop, loop.clock, DRAIN_IDLE_SECONDS)
    idle.wait_closed()
    advance(loop, loop.clock, 0.5)
    assert busy.response() == Reply(200, "OK", head(("Content-Length", "4"),
                                                    ("Connection", "close")), b"late")
    busy.wait_closed()
    run_until(loop, lambda: len(server) == 0)


def test_shutdown_lets_a_file_finish(http, five_mib):
    """A 5 MiB file under way when shutdown begins arrives whole before the close."""
    path, data = five_mib
    server = http.serve(file_app(path, []))
    client = http.connect(server, rcvbuf=SMALL_RCVBUF)
    client.send(request(target="/file"))
    client.pump(5, read=False)
    server.shutdown(30.0)
    assert client.response(timeout=20).body == data      # its head went out before: no close field
    client.wait_closed()


def test_access_log_counts_the_bytes_sent_and_logs_refusals(http, caplog):
    """A cut answer is logged with what was sent, when it ends; a refused request as "-"."""
    def endless(request):
        def chunks():
            while True:
                yield b"y" * 1000
        return Response(200, body=chunks())
    app = hello_app()
    app.add_route("/endless", endless)
    server = http.serve(app, access_log=True)
    with caplog.at_level(logging.INFO, logger="reactor.access"):
        cut = http.connect(server, rcvbuf=SMALL_RCVBUF)
        cut.send(request(target="/endless"))
        cut.pump(10)
        assert not [r for r in caplog.records if r.name == "reactor.access"]
        cut.close()
        run_until(http.loop, lambda: [r for r in caplog.records if r.name == "reactor.access"])
        bad = http.connect(server)
        bad.send(b"GET / HTTP/1.1\r\n\r\n")                         # no Host
        bad.wait_closed()
    lines = [r.getMessage() for r in caplog.records if r.name == "reactor.access"]
    sent = int(lines[0].rsplit(" ", 1)[1])
    assert '"GET /endless HTTP/1.1" 200 ' in lines[0] and 0 < sent < 100 * MIB
    assert lines[1].endswith('"-" 400 16')


def test_listen_http_refuses_an_app_without_a_router_and_unknown_keywords(http):
    """A function where a Router belongs, or a misspelt option, raises TypeError at once."""
    with pytest.raises(TypeError, match="needs a reactor.http.Router"):
        http.loop.listen_http(lambda request: "hi", "127.0.0.1", 0)
    with pytest.raises(TypeError, match="unknown keyword.*bogus"):
        http.loop.listen_http(hello_app(), "127.0.0.1", 0, bogus=1)


def test_str_chunks_and_a_str_to_the_writer_are_sent_as_utf8(http):
    """A generator of str, and writer.write(str), send UTF-8 like a str body does."""
    app = Router()
    app.add_route("/gen", lambda request: Response(200, body=iter(["h\u00e9", "llo"])))

    @app.route("/push")
    def push(request):
        writer = request.start_response(200)
        writer.write("caf\u00e9")
        writer.end()
    client = http.connect(http.serve(app))
    client.send(request(target="/gen") + request(target="/push"))
    assert client.response().body == "h\u00e9llo".encode("utf-8")
    assert client.response().body == "caf\u00e9".encode("utf-8")


def test_a_header_value_that_is_not_a_str_is_a_clear_type_error():
    """Response(200, {"X": ["a", "b"]}) says values must be str, not a regex TypeError."""
    with pytest.raises(TypeError, match="must be str"):
        Response(200, {"X-Multi": ["a", "b"]})


def test_the_servers_counters_count_requests_and_answers(http):
    """stats() counts each parser event in and each answer out (frames_in, frames_out)."""
    server = http.serve(hello_app())
    client = http.connect(server)
    client.send(request() + request())
    assert [client.response(), client.response()] == [hello_reply(), hello_reply()]
    client.close()
    run_until(http.loop, lambda: len(server) == 0)
    stats = server.stats()
    assert (stats["frames_in"], stats["frames_out"]) == (4, 2)     # head + end, twice
