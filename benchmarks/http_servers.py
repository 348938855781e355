"""HTTP servers for the http suite, one per model, each run in its own process.

``python -m benchmarks.http_servers MODEL PORT [--root DIR] [--measure-idle]``
listens on 127.0.0.1:PORT and serves until SIGTERM; the suite waits until
the port accepts. Without ``--root`` every model answers ``GET /`` with
``Hello, world!`` (text/plain, Content-Length 13) on HTTP/1.1 keep-alive;
with ``--root DIR`` it serves DIR's files (the suite asks for a 13-byte
``/hello.txt``), as that model's own static-file handler would.

Models:

- ``reactor``: a Router with one route; with ``--root``, this process
  becomes ``python -m reactor --log-level WARNING http --port PORT --root DIR``.
- ``asyncio-floor``: an asyncio Protocol that writes a fixed response per
  ``\\r\\n\\r\\n`` in each read, parsing nothing: what a pure-Python server
  cannot beat. No static model (it would answer the same bytes).
- ``http.server``: the standard library's ThreadingHTTPServer, HTTP/1.1,
  a thread per connection; SimpleHTTPRequestHandler for files. As shipped:
  it writes head and body separately with Nagle on, so each keep-alive
  response waits for the client's delayed ACK (about 40 ms). That is what
  its users get, and what the issue's anchor (about 1.2k req/s) measured.
- ``aiohttp`` / ``aiohttp-pure``: aiohttp.web on asyncio, with its C parser
  and with AIOHTTP_NO_EXTENSIONS=1 (set here, before aiohttp is imported);
  ``add_static("/", DIR)`` for files.
- ``uvicorn-httptools`` / ``uvicorn-h11``: uvicorn with uvloop + httptools and
  with asyncio + h11, running a raw ASGI app (no framework). No static model.

With ``--measure-idle`` (reactor, asyncio-floor, aiohttp) the server traces
its Python heap with tracemalloc and prints ``idle HEAP RSS COUNT`` on
SIGUSR1 (``benchmarks.servers.report_idle``; COUNT is 0 when the model
cannot say).
"""

import importlib.util
import os
import signal
import sys

from .servers import report_idle, start_tracing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BODY = b"Hello, world!"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            + BODY)

MODELS = ["reactor", "asyncio-floor", "http.server", "aiohttp", "aiohttp-pure",
          "uvicorn-httptools", "uvicorn-h11"]
#: model -> why it has no static-file model
NO_STATIC = {"asyncio-floor": "fixed reply only",
             "uvicorn-httptools": "serves no files",
             "uvicorn-h11": "serves no files"}
#: model -> the packages it needs beyond the standard library
OPTIONAL = {"aiohttp": ["aiohttp"], "aiohttp-pure": ["aiohttp"],
            "uvicorn-httptools": ["uvicorn", "httptools", "uvloop"],
            "uvicorn-h11": ["uvicorn", "h11"]}


def available(model):
    """Return None if ``model`` can run here, else why it cannot."""
    missing = [name for name in OPTIONAL.get(model, ()) if importlib.util.find_spec(name) is None]
    return "%s not installed" % ", ".join(missing) if missing else None


def serve_reactor(port, root, measure_idle):
    if root is not None:
        os.execv(sys.executable, [sys.executable, "-m", "reactor", "--log-level", "WARNING",
                                  "http", "--port", str(port), "--root", root])
    sys.path.insert(0, ROOT)
    start_tracing(measure_idle)
    from reactor import Reactor
    from reactor.http import Response, Router
    app = Router()

    @app.route("/")
    def hello(request):
        return Response(200, {"Content-Type": "text/plain"}, b"Hello, world!")

    loop = Reactor()
    server = loop.listen_http(app, "127.0.0.1", port)
    if measure_idle:
        count = (lambda: len(server)) if hasattr(server, "__len__") else (lambda: 0)
        loop.add_signal_handler(signal.SIGUSR1, report_idle, count)
    loop.run()
    loop.close()


def serve_asyncio_floor(port, root, measure_idle):
    import asyncio
    start_tracing(measure_idle)
    live = set()

    class Floor(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            live.add(self)

        def data_received(self, data):
            requests = data.count(b"\r\n\r\n")
            if requests:
                self.transport.write(RESPONSE * requests)

        def connection_lost(self, exc):
            live.discard(self)

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Floor, "127.0.0.1", port, backlog=1024)
        if measure_idle:
            loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(live))
        await server.serve_forever()
    asyncio.run(main())


def serve_http_server(port, root, measure_idle):
    import functools
    from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Hello(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)

        def log_message(self, *args):
            pass

    class Files(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

    class Server(ThreadingHTTPServer):
        request_queue_size = 1024

    handler = Hello if root is None else functools.partial(Files, directory=root)
    Server(("127.0.0.1", port), handler).serve_forever()


def serve_aiohttp(port, root, measure_idle):
    from aiohttp import web
    start_tracing(measure_idle)

    async def hello(request):
        return web.Response(text="Hello, world!")

    async def on_startup(app):
        import asyncio
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, report_idle, lambda: 0)

    app = web.Application()
    if root is None:
        app.router.add_get("/", hello)
    else:
        app.router.add_static("/", root)
    if measure_idle:
        app.on_startup.append(on_startup)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


def serve_aiohttp_pure(port, root, measure_idle):
    os.environ["AIOHTTP_NO_EXTENSIONS"] = "1"
    import aiohttp.http_parser
    assert aiohttp.http_parser.HttpRequestParser is aiohttp.http_parser.HttpRequestParserPy
    serve_aiohttp(port, root, measure_idle)


async def asgi_hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": BODY})


def serve_uvicorn(port, loop, http):
    import uvicorn
    uvicorn.run(asgi_hello, host="127.0.0.1", port=port, loop=loop, http=http,
                lifespan="off", log_level="warning", access_log=False, backlog=1024)


def main():
    model, port = sys.argv[1], int(sys.argv[2])
    root = sys.argv[sys.argv.index("--root") + 1] if "--root" in sys.argv else None
    measure_idle = "--measure-idle" in sys.argv
    why_not = available(model)
    if why_not or (root is not None and model in NO_STATIC):
        print("skip: %s" % (why_not or NO_STATIC[model]), file=sys.stderr)
        return 2
    if model.startswith("uvicorn-"):
        serve_uvicorn(port, *{"uvicorn-httptools": ("uvloop", "httptools"),
                              "uvicorn-h11": ("asyncio", "h11")}[model])
    else:
        globals()["serve_" + model.replace("-", "_").replace(".", "_")](port, root, measure_idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
