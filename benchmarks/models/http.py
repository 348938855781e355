"""HTTP/1.1 servers for the http suite: reactor, the asyncio floor, http.server, aiohttp (on
asyncio, uvloop and reactor.aio), uvicorn.

Every model answers ``GET /`` with ``Hello, world!`` (text/plain,
Content-Length 13) on HTTP/1.1 keep-alive (protocol ``http``); with
``--root DIR`` (protocol ``http-static``) it serves DIR's files as that
model's own static-file handler would (the suite asks for a 13-byte
``/hello.txt``). The suite waits until the port accepts: these servers
print no "ready" line.

aiohttp's hello is also run on other event loops, the program unchanged:
``aiohttp-uvloop`` on uvloop and ``aiohttp-reactor-aio`` on reactor.aio
(``support.use_loop``), hello only.

``http.server`` is as shipped: it writes head and body separately with
Nagle on, so each keep-alive response waits for the client's delayed ACK
(about 40 ms). That is what its users get, and what the issue's anchor
(about 1.2k req/s) measured.

With ``--measure-idle`` (reactor, asyncio-floor, aiohttp on each loop) the server traces
its Python heap with tracemalloc and prints ``idle HEAP RSS COUNT`` on
SIGUSR1 (``support.report_idle``; COUNT is 0 when the model cannot say).
"""

import os
import signal
import sys

from .registry import register
from .support import report_idle, start_tracing, use_loop

BODY = b"Hello, world!"
#: the asyncio program the http suite runs on several loops (``program=``)
AIOHTTP_HELLO = "aiohttp hello"
LOOPS_HELLO_ONLY = "hello only (the loop comparison)"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            + BODY)


@register("reactor", speaks=("http", "http-static"), idle=True,
          note="a reactor.http Router with one route; with --root DIR (http-static), this "
               "process becomes python -m reactor http --root DIR")
def serve_reactor(port, options):
    if options.root is not None:
        os.execv(sys.executable, [sys.executable, "-m", "reactor", "--log-level", "WARNING",
                                  "http", "--port", str(port), "--root", options.root])
    start_tracing(options)
    from reactor import Reactor
    from reactor.http import Response, Router
    app = Router()

    @app.route("/")
    def hello(request):
        return Response(200, {"Content-Type": "text/plain"}, BODY)

    loop = Reactor()
    server = loop.listen_http(app, "127.0.0.1", port)
    if options.measure_idle:
        count = (lambda: len(server)) if hasattr(server, "__len__") else (lambda: 0)
        loop.add_signal_handler(signal.SIGUSR1, report_idle, count)
    loop.run()
    loop.close()


@register("asyncio-floor", speaks=("http",), idle=True, lacks={"http-static": "fixed reply only"},
          note="an asyncio Protocol writing a fixed response per \\r\\n\\r\\n it reads, "
               "parsing nothing: what a pure-Python server cannot beat")
def serve_asyncio_floor(port, options):
    import asyncio
    start_tracing(options)
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
        if options.measure_idle:
            loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(live))
        await server.serve_forever()
    asyncio.run(main())


@register("http.server", speaks=("http", "http-static"),
          note="the standard library's ThreadingHTTPServer, HTTP/1.1, a thread per "
               "connection; SimpleHTTPRequestHandler for files; Nagle on, as shipped")
def serve_http_server(port, options):
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

    handler = Hello if options.root is None else functools.partial(Files,
                                                                   directory=options.root)
    Server(("127.0.0.1", port), handler).serve_forever()


@register("aiohttp", speaks=("http-static",), needs=("aiohttp",), idle=True,
          note="aiohttp.web with its C parser; add_static('/', DIR) for files")
@register("aiohttp", speaks=("http",), needs=("aiohttp",), idle=True,
          program=AIOHTTP_HELLO, loop="asyncio",
          note="aiohttp.web with its C parser; add_static('/', DIR) for files")
def serve_aiohttp(port, options, loop="asyncio"):
    from aiohttp import web
    use_loop(loop)                       # run_app's asyncio.new_event_loop() makes this loop
    start_tracing(options)

    async def hello(request):
        return web.Response(text="Hello, world!")

    async def on_startup(app):
        import asyncio
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, report_idle, lambda: 0)

    app = web.Application()
    if options.root is None:
        app.router.add_get("/", hello)
    else:
        app.router.add_static("/", options.root)
    if options.measure_idle:
        app.on_startup.append(on_startup)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)


@register("aiohttp-uvloop", speaks=("http",), needs=("aiohttp", "uvloop"), idle=True,
          program=AIOHTTP_HELLO, loop="uvloop", lacks={"http-static": LOOPS_HELLO_ONLY},
          note="the aiohttp hello program on uvloop")
def serve_aiohttp_uvloop(port, options):
    serve_aiohttp(port, options, loop="uvloop")


@register("aiohttp-reactor-aio", speaks=("http",), needs=("aiohttp",), idle=True,
          program=AIOHTTP_HELLO, loop="reactor.aio", lacks={"http-static": LOOPS_HELLO_ONLY},
          note="the aiohttp hello program on reactor.aio's event loop")
def serve_aiohttp_reactor_aio(port, options):
    serve_aiohttp(port, options, loop="reactor.aio")


@register("aiohttp-pure", speaks=("http", "http-static"), needs=("aiohttp",),
          note="aiohttp.web with AIOHTTP_NO_EXTENSIONS=1 (set before aiohttp is imported): "
               "its pure-Python parser")
def serve_aiohttp_pure(port, options):
    os.environ["AIOHTTP_NO_EXTENSIONS"] = "1"
    import aiohttp.http_parser
    assert aiohttp.http_parser.HttpRequestParser is aiohttp.http_parser.HttpRequestParserPy
    serve_aiohttp(port, options)


async def asgi_hello(scope, receive, send):
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")]})
    await send({"type": "http.response.body", "body": BODY})


def serve_uvicorn(port, loop, http):
    import uvicorn
    uvicorn.run(asgi_hello, host="127.0.0.1", port=port, loop=loop, http=http,
                lifespan="off", log_level="warning", access_log=False, backlog=1024)


@register("uvicorn-httptools", speaks=("http",), needs=("uvicorn", "httptools", "uvloop"),
          lacks={"http-static": "serves no files"},
          note="uvicorn on uvloop + httptools, a raw ASGI app (no framework)")
def serve_uvicorn_httptools(port, options):
    serve_uvicorn(port, "uvloop", "httptools")


@register("uvicorn-h11", speaks=("http",), needs=("uvicorn", "h11"),
          lacks={"http-static": "serves no files"},
          note="uvicorn on asyncio + h11, a raw ASGI app (no framework)")
def serve_uvicorn_h11(port, options):
    serve_uvicorn(port, "asyncio", "h11")
