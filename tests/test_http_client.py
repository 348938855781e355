"""The HTTP/1.1 client (reactor/http/client.py, pool.py) against real servers on 127.0.0.1.

Two kinds of server, each on a thread: the standard library's
``ThreadingHTTPServer`` for well-behaved HTTP/1.1 (keep-alive, HEAD, POST,
TLS), and :class:`CannedServer`, a raw socket that writes exactly the bytes
a test gives it (chunked, until-close, malformed, truncated, silent). Both
count the connections they accept, which is how reuse is proven.
"""

import http.server
import socket
import ssl
import threading
import time

import pytest

from reactor import ConnectRefusedError, Protocol
from reactor.http.client import (ClientResponse, HTTPProtocolError, HTTPTimeoutError,
                                 IncompleteResponseError, PoolClosedError, ResponseTooLargeError,
                                 http_request)
from reactor.http.parser import HTTPError
from reactor.http.pool import ConnectionPool, default_pool

from .support.certs import client_ctx, server_ctx
from .support.loops import advance, run_passes, run_until
from .support.peers import free_port
from .support.processes import open_fds

OK_HELLO = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"


# -- the servers ------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    """Answers every method with ``METHOD PATH BODY``; ``/close`` adds Connection: close,
    ``/status/N`` answers N."""

    protocol_version = "HTTP/1.1"
    timeout = 5

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append((self.command, self.path, self.headers.items(), body))
        status = int(self.path[8:]) if self.path.startswith("/status/") else 200
        payload = b"%s %s %s" % (self.command.encode(), self.path.encode(), body)
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer

    def finish(self):
        super().finish()
        self.server.finished.append(self.client_address)

    def log_message(self, *args):
        pass


class StdlibServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that records requests and connections, and joins its threads."""

    daemon_threads = False                  # server_close() joins every handler thread

    def __init__(self, tls=None):
        super().__init__(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.requests, self.accepted, self.finished = [], [], []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02})
        self.thread.start()

    def get_request(self):
        sock, address = super().get_request()
        self.accepted.append(sock)
        return sock, address

    def url(self, path="/", scheme="http"):
        return "%s://127.0.0.1:%d%s" % (scheme, self.server_port, path)

    def stop(self):
        self.shutdown()
        for sock in self.accepted:          # wake handlers blocked reading a kept-alive socket
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server_close()
        self.thread.join(5)


class CannedServer:
    """A raw-socket server thread: connection number n (from 1) goes to ``script(server, conn, n)``.

    ``read_request(conn)`` reads one request (head, and a Content-Length body)
    and records it; it returns None at EOF.
    """

    def __init__(self, script):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.02)
        self.port = self.listener.getsockname()[1]
        self.accepted, self.requests, self.errors = 0, [], []
        self.current = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.serve)
        self.thread.start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def serve(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            self.accepted += 1
            with conn:
                conn.settimeout(5)
                self.current = conn
                try:
                    self.script(self, conn, self.accepted)
                except OSError:
                    pass                                # the client went away
                except Exception as exc:                # reported by stop()
                    self.errors.append(exc)
                self.current = None

    def read_request(self, conn):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                while len(body) < int(line.split(b":")[1]):
                    body += conn.recv(65536)
        self.requests.append(head + b"\r\n\r\n" + body)
        return head + b"\r\n\r\n" + body

    def stop(self):
        self.stopping.set()
        current = self.current
        if current is not None:
            try:
                current.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)
        self.listener.close()
        assert not self.thread.is_alive() and not self.errors, self.errors


@pytest.fixture
def servers():
    """Start servers on demand: ``servers.stdlib(tls=None)``, ``servers.canned(script)``."""
    started = []

    class Servers:
        @staticmethod
        def stdlib(tls=None):
            started.append(StdlibServer(tls))
            return started[-1]

        @staticmethod
        def canned(script):
            started.append(CannedServer(script))
            return started[-1]
    yield Servers
    for server in started:
        server.stop()


@pytest.fixture
def pool(net):
    """A connection pool on the test's loop, closed at the end."""
    pool = ConnectionPool(net)
    yield pool
    pool.close()
    run_passes(net, 3)


def fetch(loop, method, url, **options):
    """Run one request to its end; return (response, error), checking the callback grammar."""
    calls = []
    http_request(loop, method, url, on_response=lambda *outcome: calls.append(outcome),
                 **options)
    assert calls == []                       # never inside http_request
    run_until(loop, lambda: calls)
    run_passes(loop, 3)
    assert len(calls) == 1 and (calls[0][0] is None) != (calls[0][1] is None), calls
    return calls[0]


def get(loop, url, **options):
    """GET ``url``; return the response (the test fails on an error)."""
    response, error = fetch(loop, "GET", url, **options)
    assert error is None, error
    return response


def serve_each(*answers):
    """A script that reads requests on one connection and writes ``answers`` in turn."""
    def script(server, conn, number):
        for answer in answers:
            if server.read_request(conn) is None:
                return
            conn.sendall(answer)
        server.read_request(conn)            # hold the connection until the client closes
    return script


# -- requests and responses --------------------------------------------------------

def test_a_get_returns_status_reason_headers_and_body(net, pool, servers):
    """A GET comes back whole: status, reason, version, Headers and body."""
    server = servers.stdlib()
    response = get(net, server.url("/hello?x=1"), pool=pool)
    assert isinstance(response, ClientResponse)
    assert (response.status, response.reason, response.version) == (200, "OK", "HTTP/1.1")
    assert response.body == b"GET /hello?x=1 " and response.headers["content-length"] == "15"
    assert response.headers.get("SERVER", "").startswith("BaseHTTP")


def test_the_request_carries_host_user_agent_and_the_callers_headers(net, pool, servers):
    """Host and User-Agent are set, caller fields follow, an empty GET has no Content-Length."""
    server = servers.canned(serve_each(OK_HELLO))
    get(net, server.url("/p?q=1#frag"), pool=pool, headers=[("X-A", "1"), ("x-a", "2")])
    assert server.requests == [b"GET /p?q=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: reactor"
                               b"\r\nX-A: 1\r\nx-a: 2\r\n\r\n" % server.port]


def test_a_body_is_sent_with_its_content_length(net, pool, servers):
    """POST sends Content-Length and the body; an empty POST says Content-Length: 0."""
    server = servers.stdlib()
    assert get_body(net, pool, "POST", server.url("/up"), b"payload") == b"POST /up payload"
    assert get_body(net, pool, "POST", server.url("/up"), b"") == b"POST /up "
    assert [dict(request[2]).get("Content-Length") for request in server.requests] == ["7", "0"]


def get_body(loop, pool, method, url, body):
    response, error = fetch(loop, method, url, body=body, pool=pool)
    assert error is None, error
    return response.body


def test_head_gets_no_body_and_the_connection_is_reused(net, pool, servers):
    """A HEAD response's Content-Length describes a body that is not sent; the connection lives."""
    server = servers.stdlib()
    response, error = fetch(net, "HEAD", server.url("/h"), pool=pool)
    assert error is None and response.body == b"" and response.headers["content-length"] == "8"
    assert get(net, server.url("/h"), pool=pool).body == b"GET /h "
    assert len(server.accepted) == 1


def test_a_chunked_response_is_reassembled(net, pool, servers):
    """Chunks (with an extension and a trailer) come back as one body; the connection is reused."""
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;x=y\r\nabcd\r\n3\r\nefg\r\n0\r\nTrailer: t\r\n\r\n")
    server = servers.canned(serve_each(chunked, chunked))
    assert get(net, server.url(), pool=pool).body == b"abcdefg"
    assert get(net, server.url(), pool=pool).body == b"abcdefg"
    assert server.accepted == 1


def test_an_until_close_response_ends_at_eof_and_is_not_reused(net, pool, servers):
    """A response without length ends when the server closes; the next request reconnects."""
    def script(server, conn, number):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
        time.sleep(0.05)
        conn.sendall(b"part two")
    server = servers.canned(script)
    assert get(net, server.url(), pool=pool).body == b"part one, part two"
    assert pool.idle_connections == 0
    assert get(net, server.url(), pool=pool).body == b"part one, part two"
    assert server.accepted == 2


def test_interim_1xx_responses_are_skipped(net, pool, servers):
    """100 Continue and 103 Early Hints before the final response do not reach the caller."""
    server = servers.canned(serve_each(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\n"
                                       b"Link: </a>\r\n\r\n" + OK_HELLO))
    response = get(net, server.url(), pool=pool)
    assert (response.status, response.body) == (200, b"hello")


# -- keep-alive ----------------------------------------------------------------------

def test_sequential_requests_reuse_one_connection(net, pool, servers):
    """Three requests in a row ride one TCP connection, which then waits idle in the pool."""
    server = servers.stdlib()
    for path in ("/a", "/b", "/c"):
        assert get(net, server.url(path), pool=pool).body == b"GET %s " % path.encode()
    assert len(server.accepted) == 1 and pool.idle_connections == 1


def test_concurrent_requests_open_a_connection_each(net, pool, servers):
    """Requests in flight together use separate connections; both are kept afterwards."""
    server = servers.stdlib()
    calls = []
    for path in ("/1", "/2"):
        http_request(net, "GET", server.url(path), pool=pool,
                     on_response=lambda *outcome: calls.append(outcome))
    run_until(net, lambda: len(calls) == 2)
    assert sorted(response.body for response, _ in calls) == [b"GET /1 ", b"GET /2 "]
    assert len(server.accepted) == 2 and pool.idle_connections == 2


def test_connection_close_is_not_reused(net, pool, servers):
    """A response that says Connection: close is not pooled; the next request reconnects."""
    server = servers.stdlib()
    assert get(net, server.url("/close"), pool=pool).status == 200
    assert pool.idle_connections == 0
    get(net, server.url("/next"), pool=pool)
    assert len(server.accepted) == 2


def test_bytes_after_the_response_stop_reuse(net, pool, servers):
    """A server that sends more than the response said is not trusted with another request."""
    server = servers.canned(serve_each(OK_HELLO + b"junk"))
    assert get(net, server.url(), pool=pool).body == b"hello"
    assert pool.idle_connections == 0


def test_a_connection_closed_while_idle_is_not_reused(net, pool, servers):
    """When the server closes an idle connection, the next request opens a new one."""
    def script(server, conn, number):
        server.read_request(conn)
        conn.sendall(OK_HELLO)
    server = servers.canned(script)            # closes each connection after one answer
    get(net, server.url(), pool=pool)
    run_until(net, lambda: pool.idle_connections == 0)
    assert get(net, server.url(), pool=pool).body == b"hello" and server.accepted == 2


def server_drops_second_request(server, conn, number):
    """Answer the first request on connection 1; read the second and close without a word."""
    server.read_request(conn)
    conn.sendall(OK_HELLO)
    if number == 1:
        server.read_request(conn)
        return
    server.read_request(conn)


def test_an_idempotent_request_is_retried_once_on_a_fresh_connection(net, pool, servers):
    """A GET whose reused connection closes before any response byte is sent again, and works."""
    server = servers.canned(server_drops_second_request)
    get(net, server.url("/1"), pool=pool)
    assert get(net, server.url("/2"), pool=pool).body == b"hello"
    assert server.accepted == 2 and len(server.requests) == 3


def test_a_post_is_not_retried(net, pool, servers):
    """A POST on a reused connection that closes unanswered fails: it may have run."""
    server = servers.canned(server_drops_second_request)
    get(net, server.url("/1"), pool=pool)
    response, error = fetch(net, "POST", server.url("/2"), body=b"x", pool=pool)
    assert isinstance(error, IncompleteResponseError)
    assert "without answering" in str(error) and "POST is not retried" in str(error)
    assert server.accepted == 1


def test_idle_connections_close_after_the_idle_timeout(fake_net, servers):
    """An idle connection closes once idle_timeout_seconds pass (fake clock), and is forgotten."""
    server = servers.stdlib()
    pool = ConnectionPool(fake_net, idle_timeout_seconds=10.0)
    get(fake_net, server.url(), pool=pool)
    advance(fake_net, fake_net.clock, 9.9)
    assert pool.idle_connections == 1
    advance(fake_net, fake_net.clock, 0.2)
    assert pool.idle_connections == 0
    run_until(fake_net, lambda: server.finished)          # the server saw the close
    get(fake_net, server.url(), pool=pool)
    assert len(server.accepted) == 2
    pool.close()


def test_the_idle_cap_closes_the_oldest(net, servers):
    """With max_idle_per_host=2, a third idle connection pushes the oldest out."""
    server = servers.stdlib()
    pool = ConnectionPool(net, max_idle_per_host=2)
    calls = []
    for path in ("/1", "/2", "/3"):
        http_request(net, "GET", server.url(path), pool=pool,
                     on_response=lambda *outcome: calls.append(outcome))
    run_until(net, lambda: len(calls) == 3)
    assert pool.idle_connections == 2
    run_until(net, lambda: len(server.finished) == 1)
    pool.close()


def test_pool_close_closes_idle_connections_and_fails_requests(net, servers):
    """close() closes what is idle, fails what is in flight and every later request."""
    stdlib = servers.stdlib()
    silent = servers.canned(lambda server, conn, number: server.read_request(conn)
                            and conn.recv(1))
    pool = ConnectionPool(net)
    get(net, stdlib.url(), pool=pool)
    calls = []
    http_request(net, "GET", silent.url(), pool=pool,
                 on_response=lambda *outcome: calls.append(outcome))
    run_until(net, lambda: silent.requests)
    pool.close()
    assert calls and isinstance(calls[0][1], PoolClosedError) and len(calls) == 1
    run_until(net, lambda: stdlib.finished)
    response, error = fetch(net, "GET", stdlib.url(), pool=pool)
    assert isinstance(error, PoolClosedError) and len(stdlib.accepted) == 1


def test_the_default_pool_is_one_per_loop(net, servers):
    """Without pool=, requests on one loop share its default pool; a closed one is replaced."""
    server = servers.stdlib()
    get(net, server.url("/a"))
    get(net, server.url("/b"))
    assert len(server.accepted) == 1 and default_pool(net).idle_connections == 1
    default_pool(net).close()
    assert default_pool(net).idle_connections == 0 and not default_pool(net).closed
    get(net, server.url("/c"))
    default_pool(net).close()
    run_until(net, lambda: len(server.finished) == 2)


def test_no_socket_is_left_open(net, servers):
    """After requests of every outcome and pool.close(), the process holds no new fds."""
    stdlib = servers.stdlib()
    canned = servers.canned(serve_each(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"))
    before = open_fds()
    pool = ConnectionPool(net)
    get(net, stdlib.url("/a"), pool=pool)
    get(net, stdlib.url("/close"), pool=pool)
    fetch(net, "GET", canned.url(), pool=pool)
    fetch(net, "GET", "http://127.0.0.1:%d/" % free_port(), pool=pool)
    pool.close()
    run_until(net, lambda: len(stdlib.finished) == len(stdlib.accepted)
              and canned.current is None)
    run_passes(net, 3)                      # the servers' threads share this process's fds
    if before is not None:
        assert open_fds() - before == set()


# -- errors ---------------------------------------------------------------------------

def test_a_refused_connect_is_reported_not_raised(net, pool):
    """Nothing listening: on_response gets ConnectRefusedError, after http_request returned."""
    response, error = fetch(net, "GET", "http://127.0.0.1:%d/" % free_port(), pool=pool)
    assert isinstance(error, ConnectRefusedError) and "refused" in str(error)


def test_a_malformed_response_is_a_protocol_error(net, pool, servers):
    """A response that breaks HTTP/1.1 fails with HTTPProtocolError naming the URL and the fault."""
    server = servers.canned(serve_each(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                                       b"Content-Length: 2\r\n\r\nab"))
    response, error = fetch(net, "GET", server.url("/x"), pool=pool)
    assert isinstance(error, HTTPProtocolError) and isinstance(error.__cause__, HTTPError)
    assert server.url("/x") in str(error) and "differing Content-Length" in str(error)
    assert pool.idle_connections == 0


def test_a_body_over_max_body_bytes_is_refused(net, pool, servers):
    """max_body_bytes refuses a longer body with ResponseTooLargeError; at the limit it passes."""
    server = servers.canned(serve_each(OK_HELLO, OK_HELLO))
    response, error = fetch(net, "GET", server.url(), pool=pool, max_body_bytes=4)
    assert isinstance(error, ResponseTooLargeError) and "max_body_bytes=4" in str(error)
    assert get(net, server.url(), pool=pool, max_body_bytes=5).body == b"hello"


def test_a_truncated_response_is_incomplete(net, pool, servers):
    """A close before Content-Length bytes arrived fails with IncompleteResponseError."""
    def script(server, conn, number):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")
    server = servers.canned(script)
    response, error = fetch(net, "GET", server.url(), pool=pool)
    assert isinstance(error, IncompleteResponseError)
    assert "6 of 10 body bytes missing" in str(error)


def test_a_close_without_an_answer_is_incomplete(net, pool, servers):
    """A fresh connection closed with no response byte fails (only reused ones are retried)."""
    server = servers.canned(lambda server, conn, number: server.read_request(conn))
    response, error = fetch(net, "GET", server.url(), pool=pool)
    assert isinstance(error, IncompleteResponseError) and "without answering" in str(error)
    assert server.accepted == 1


def silent_script(server, conn, number):
    """Read the request, then wait for the client to go away."""
    server.read_request(conn)
    conn.recv(1)


def test_a_slow_server_times_out_on_the_fake_clock(fake_net, servers):
    """No answer within timeout: HTTPTimeoutError at the deadline, not before; the socket closes."""
    server = servers.canned(silent_script)
    pool = ConnectionPool(fake_net)
    calls = []
    http_request(fake_net, "GET", server.url("/slow"), timeout=5.0, pool=pool,
                 on_response=lambda *outcome: calls.append(outcome))
    run_until(fake_net, lambda: server.requests)
    advance(fake_net, fake_net.clock, 4.9)
    assert calls == []
    advance(fake_net, fake_net.clock, 0.2)
    assert len(calls) == 1 and isinstance(calls[0][1], HTTPTimeoutError)
    assert isinstance(calls[0][1], TimeoutError) and "within 5 s" in str(calls[0][1])
    assert "waiting for the response" in str(calls[0][1])
    run_until(fake_net, lambda: server.current is None)   # the server saw the close
    pool.close()


def test_a_slow_server_times_out_on_the_real_clock(net, pool, servers):
    """The deadline runs on the loop's timers: a 0.2 s timeout ends a silent exchange promptly."""
    server = servers.canned(silent_script)
    started = time.monotonic()
    response, error = fetch(net, "GET", server.url(), pool=pool, timeout=0.2)
    assert isinstance(error, HTTPTimeoutError) and 0.15 < time.monotonic() - started < 2.0


def test_cancel_runs_no_callback_and_closes_the_connection(net, pool, servers):
    """cancel() abandons a request: no callback, the connection closed, nothing pooled."""
    server = servers.canned(silent_script)
    calls = []
    request = http_request(net, "GET", server.url(), pool=pool,
                           on_response=lambda *outcome: calls.append(outcome))
    run_until(net, lambda: server.requests)
    request.cancel()
    request.cancel()
    run_until(net, lambda: server.current is None)
    assert calls == [] and request.done and pool.idle_connections == 0


@pytest.mark.parametrize("url, options", [
    ("ftp://127.0.0.1/", {}),
    ("http:///path", {}),
    ("http://127.0.0.1:99999/", {}),
    ("http://127.0.0.1:0/", {}),
    ("http://127.0.0.1/a b", {}),
    ("http://127.0.0.1/\r\nX: y", {}),
    ("http://user:pw@127.0.0.1/", {}),
    ("http://127.0.0.1/caf\xe9", {}),
    ("http://127.0.0.1/", {"headers": {"X": "a\r\nInjected: yes"}}),
    ("http://127.0.0.1/", {"headers": {"Bad Name": "v"}}),
    ("http://127.0.0.1/", {"headers": {"X": "\xe9"}}),
    ("http://127.0.0.1/", {"headers": {"Content-Length": "3"}}),
    ("http://127.0.0.1/", {"headers": {"Transfer-Encoding": "chunked"}}),
    ("http://127.0.0.1/", {"headers": {"Upgrade": "websocket"}}),
    ("http://127.0.0.1/", {"on_upgrade": lambda *args: None}),
    ("http://127.0.0.1/", {"method": "GET /x"}),
    ("http://127.0.0.1/", {"timeout": 0}),
    ("http://127.0.0.1/", {"max_body_bytes": 0}),
])
def test_bad_arguments_raise_value_error_at_once(net, pool, url, options):
    """A bad URL, header or limit raises ValueError in the call; no callback, no connect."""
    calls = []
    method = options.pop("method", "GET")
    with pytest.raises(ValueError):
        http_request(net, method, url, pool=pool,
                     on_response=lambda *outcome: calls.append(outcome), **options)
    run_passes(net, 3)
    assert calls == []


# -- TLS -------------------------------------------------------------------------------

def test_https_verifies_the_server_and_reuses_the_connection(net, pool, servers):
    """https:// with the test CA's context works, and a second request reuses the TLS connection."""
    server = servers.stdlib(tls=server_ctx())
    context = client_ctx()
    for path in ("/a", "/b"):
        response = get(net, server.url(path, "https"), pool=pool, ssl=context)
        assert response.body == b"GET %s " % path.encode()
    assert len(server.accepted) == 1


def test_https_with_the_default_context_refuses_an_unknown_ca(net, pool, servers):
    """Without ssl=, the system's CAs are used: the test CA is unknown, so the request fails."""
    server = servers.stdlib(tls=server_ctx())
    response, error = fetch(net, "GET", server.url("/", "https"), pool=pool)
    assert isinstance(error, ssl.SSLCertVerificationError)


def test_https_checks_the_url_host_against_the_certificate(net, pool, servers):
    """The URL host is the server_hostname: a certificate for another name is refused."""
    server = servers.stdlib(tls=server_ctx("wronghost"))
    response, error = fetch(net, "GET", server.url("/", "https"), pool=pool, ssl=client_ctx())
    assert isinstance(error, ssl.SSLCertVerificationError)
    assert "127.0.0.1" in str(error) or "mismatch" in str(error)


def test_a_tls_handshake_that_never_ends_times_out_as_the_request(fake_net, servers):
    """A server that accepts but never answers the ClientHello: HTTPTimeoutError at the deadline."""
    server = servers.canned(silent_script)
    pool = ConnectionPool(fake_net)
    calls = []
    http_request(fake_net, "GET", "https://127.0.0.1:%d/" % server.port, timeout=3.0,
                 pool=pool, ssl=client_ctx(), on_response=lambda *outcome: calls.append(outcome))
    run_until(fake_net, lambda: server.accepted)
    advance(fake_net, fake_net.clock, 3.0)
    assert len(calls) == 1 and isinstance(calls[0][1], HTTPTimeoutError)
    assert "timed out connecting" in str(calls[0][1])
    run_until(fake_net, lambda: server.current is None)
    pool.close()


# -- the upgrade seam --------------------------------------------------------------------

class Recorder(Protocol):
    """The protocol a WebSocket client would install: records what reaches it."""

    def __init__(self):
        self.received = bytearray()
        self.lost = []

    def data_received(self, data):
        self.received += data

    def connection_lost(self, exc):
        self.lost.append(exc)


def upgrade_script(server, conn, number):
    """Answer an upgrade with 101 and a first frame, then echo whatever comes once."""
    server.read_request(conn)
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade"
                 b"\r\n\r\nfirst")
    data = conn.recv(100)
    conn.sendall(b"echo:" + data)
    conn.recv(1)


def test_a_101_hands_the_transport_over(net, pool, servers):
    """on_upgrade gets the 101, the transport and the bytes after it; a new protocol takes over."""
    server = servers.canned(upgrade_script)
    upgrades, calls, protocol = [], [], Recorder()

    def on_upgrade(response, transport, rest):
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        protocol.data_received(rest)
        upgrades.append(response)
        transport.write(b"ping")
    http_request(net, "GET", server.url("/ws"), headers={"Upgrade": "test"}, pool=pool,
                 on_response=lambda *outcome: calls.append(outcome), on_upgrade=on_upgrade)
    run_until(net, lambda: protocol.received == b"firstecho:ping")
    assert calls == [] and upgrades[0].status == 101 and upgrades[0].headers["upgrade"] == "test"
    assert server.requests[0].startswith(b"GET /ws HTTP/1.1\r\n")
    assert b"\r\nConnection: Upgrade\r\nUpgrade: test\r\n" in server.requests[0]
    protocol.transport.close()
    run_until(net, lambda: protocol.lost)
    assert pool.idle_connections == 0


def test_an_upgrade_refused_is_an_ordinary_response(net, pool, servers):
    """A request with on_upgrade that gets a 400 sees it through on_response."""
    server = servers.canned(serve_each(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\nno"))
    calls, upgrades = [], []
    http_request(net, "GET", server.url(), headers={"Upgrade": "test"}, pool=pool,
                 on_response=lambda *outcome: calls.append(outcome),
                 on_upgrade=lambda *args: upgrades.append(args))
    run_until(net, lambda: calls)
    assert calls[0][0].status == 400 and calls[0][0].body == b"no" and upgrades == []


def test_a_101_nobody_asked_for_is_a_protocol_error(net, pool, servers):
    """A 101 to a request without Upgrade fails with HTTPProtocolError."""
    server = servers.canned(serve_each(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    response, error = fetch(net, "GET", server.url(), pool=pool)
    assert isinstance(error, HTTPProtocolError) and "asked for no upgrade" in str(error)
