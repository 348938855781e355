"""An HTTP server with routes: a Router, a path parameter, a JSON body, and free 404s.

Teaches: ``reactor.http.Router`` maps a method and a path to a handler;
``{name}`` in a pattern puts that path segment in ``request.params``; a
handler returns a ``Response``, a str, or a dict (sent as JSON); and
``loop.listen_http`` serves it with keep-alive. An unknown path gets 404,
and a known path asked with another method 405 with ``Allow``, with no code
of ours. The self-test's client is ``reactor.http.client.http_request``.

    python3 examples/http_hello.py              # serves http://127.0.0.1:7106/
    curl http://127.0.0.1:7106/hello/ada; curl -d '{"a": 1}' http://127.0.0.1:7106/echo
    python3 examples/http_hello.py --selftest   # five requests, check each answer, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)
from reactor.http import Response, Router  # noqa: E402
from reactor.http.client import http_request  # noqa: E402

PORT = 7106
app = Router()


@app.route("/")
def index(request):
    return "hello, world\n"                                # a str: 200, text/plain


@app.route("/hello/{name}")
def hello(request):
    return Response(200, [("X-Greeted", request.params["name"])],
                    "Hello, %s!\n" % request.params["name"])


@app.route("/echo", methods=["POST"])
def echo(request):
    return {"you_sent": request.json()}                   # not JSON: a 400, said for us


EXPECTED = {("GET", "/"): (200, b"hello, world\n"),
            ("GET", "/hello/ada"): (200, b"Hello, ada!\n"),
            ("POST", "/echo"): (200, b'{"you_sent": {"a": 1}}'),
            ("GET", "/nowhere"): (404, None),              # no route: 404
            ("DELETE", "/echo"): (405, "POST")}            # a route, not this method: 405
answers = {}


def ask(loop, port, method, path):
    def done(response, error):
        if error is not None:
            sys.exit("%s %s failed: %s" % (method, path, error))
        body = response.body if response.status == 200 else response.headers.get("Allow")
        answers[method, path] = (response.status, body)
        print("%s %s -> %d %r" % (method, path, response.status, response.body[:40]))
        if len(answers) == len(EXPECTED):
            loop.stop()
    http_request(loop, method, "http://127.0.0.1:%d%s" % (port, path), on_response=done,
                 body=b'{"a": 1}' if method == "POST" else b"")


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_http(app, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT)
    print("serving http://127.0.0.1:%d/" % server.addresses[0][1])
    if "--selftest" in sys.argv:
        for method, path in EXPECTED:
            ask(loop, server.addresses[0][1], method, path)
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if "--selftest" in sys.argv:
        assert answers == EXPECTED, answers
        print("selftest ok")
