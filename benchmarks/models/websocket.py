"""WebSocket servers for the websocket suite: reactor, websockets (asyncio and uvloop), aiohttp.

permessage-deflate is off in every model, so all exchange raw frames (the
suite's load generator does not offer it either). The suite waits until the
port accepts: these servers print no "ready" line. Two jobs, chosen by the
request path:

- protocol ``websocket``, any path but ``/control``: echo each message with
  its type (text as text, binary as binary); the connection is also a
  broadcast *member* while it is open.
- protocol ``websocket-broadcast``, ``/control``: a text message ``go N``
  sends N text messages of 64 B (``PAYLOAD``) to every member, one after
  another, then answers ``%.6f``, the seconds that took in the server (the
  suite's own figure is the time until every member has *received* them,
  timed by the load generator).

With ``--measure-idle`` (reactor, websockets, aiohttp) the server traces its
Python heap with tracemalloc and prints ``idle HEAP RSS COUNT`` on SIGUSR1
(``support.report_idle``).
"""

import os
import signal
import sys
import time

from .registry import register
from .support import report_idle, start_tracing

#: the broadcast message: 64 bytes of text
PAYLOAD = "b" * 64
CONTROL_PATH = "/control"
MAX_MESSAGE_BYTES = 1 << 20


def go_count(message):
    """N from a control message ``go N`` (str or bytes)."""
    if isinstance(message, bytes):
        message = message.decode("ascii")
    verb, count = message.split()
    if verb != "go":
        raise ValueError("control messages are 'go N', not %r" % message)
    return int(count)


@register("reactor", speaks=("websocket",), idle=True,
          note="python -m reactor echo --websocket (this process becomes it); with "
               "--measure-idle, the same router (websocket_echo_app) served here, traced")
def serve_reactor(port, options):
    if not options.measure_idle:
        os.execv(sys.executable, [sys.executable, "-m", "reactor", "--log-level", "WARNING",
                                  "echo", "--websocket", "--port", str(port)])
    start_tracing(options)
    from reactor import Reactor
    from reactor.apps.echo import websocket_echo_app
    loop = Reactor()
    server = loop.listen_http(websocket_echo_app(MAX_MESSAGE_BYTES), "127.0.0.1", port)
    loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(server))
    loop.run()
    loop.close()


@register("reactor-broadcast", speaks=("websocket-broadcast",),
          note="a reactor Router whose WebSocket route makes a member or the control "
               "connection; broadcast() sends each message, encoded once, to all members")
def serve_reactor_broadcast(port, options):
    from reactor import Reactor
    from reactor.http import Router
    from reactor.websocket.protocol import WebSocketProtocol, broadcast
    members = set()

    class Member(WebSocketProtocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            members.add(self)

        def message_received(self, data, is_text):
            self.send(data)

        def connection_lost(self, exc):
            members.discard(self)
            super().connection_lost(exc)

    class Control(WebSocketProtocol):
        def message_received(self, data, is_text):
            started = time.perf_counter()
            for _ in range(go_count(data)):
                broadcast(members, PAYLOAD)
            self.send_text("%.6f" % (time.perf_counter() - started))

    app = Router()
    app.websocket("/{path:path}", compression=False)(
        lambda request: Control() if request.path == CONTROL_PATH else Member())
    loop = Reactor()
    loop.listen_http(app, "127.0.0.1", port)
    loop.run()
    loop.close()


@register("websockets", speaks=("websocket", "websocket-broadcast"), needs=("websockets",),
          idle=True, note="the websockets library's asyncio server (compression=None); its "
                          "broadcast() helper for the fan-out")
def serve_websockets(port, options, use_uvloop=False):
    import asyncio
    from websockets.asyncio.server import broadcast, serve
    start_tracing(options)
    members = set()

    async def handler(connection):
        if connection.request.path == CONTROL_PATH:
            async for message in connection:
                started = time.perf_counter()
                for _ in range(go_count(message)):
                    broadcast(members, PAYLOAD)
                await connection.send("%.6f" % (time.perf_counter() - started))
            return
        members.add(connection)
        try:
            async for message in connection:
                await connection.send(message)
        finally:
            members.discard(connection)

    async def main():
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        if options.measure_idle:
            loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(members))
        async with serve(handler, "127.0.0.1", port, compression=None,
                         max_size=MAX_MESSAGE_BYTES, backlog=1024):
            await stop

    if use_uvloop:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(main())


@register("websockets-uvloop", speaks=("websocket",), needs=("websockets", "uvloop"),
          note="the websockets server on uvloop")
def serve_websockets_uvloop(port, options):
    serve_websockets(port, options, use_uvloop=True)


@register("aiohttp", speaks=("websocket", "websocket-broadcast"), needs=("aiohttp",), idle=True,
          note="aiohttp.web WebSocketResponse(compress=False); the fan-out awaits "
               "send_str on each member in turn (aiohttp has no broadcast helper)")
def serve_aiohttp(port, options):
    import asyncio
    from aiohttp import WSMsgType, web
    start_tracing(options)
    members = set()

    async def control(ws):
        async for message in ws:
            started = time.perf_counter()
            for _ in range(go_count(message.data)):
                for member in list(members):
                    await member.send_str(PAYLOAD)
            await ws.send_str("%.6f" % (time.perf_counter() - started))

    async def handler(request):
        ws = web.WebSocketResponse(compress=False, max_msg_size=MAX_MESSAGE_BYTES)
        await ws.prepare(request)
        if request.path == CONTROL_PATH:
            await control(ws)
            return ws
        members.add(ws)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    await ws.send_str(message.data)
                elif message.type == WSMsgType.BINARY:
                    await ws.send_bytes(message.data)
        finally:
            members.discard(ws)
        return ws

    async def on_startup(app):
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, report_idle,
                                                      lambda: len(members))

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    if options.measure_idle:
        app.on_startup.append(on_startup)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, backlog=1024)
