"""Echo on third-party loops and libraries: uvloop, gevent, Twisted, trio, curio.

``uvloop`` and ``uvloop-streams`` are asyncio_models.py's two echo
programs, unchanged, on uvloop's event loop.

Each runs only where its package is installed (``needs``); elsewhere the
suites list it as skipped with the reason, and nothing stands in for it.
"""

import functools
import signal
import socket

from .asyncio_models import (
    PROTOCOL_ECHO, STREAMS_ECHO, serve_asyncio_protocol, serve_asyncio_streams)
from .registry import register
from .support import blocking_echo, ready


@register("uvloop", speaks=("echo",), needs=("uvloop",), idle=True,
          program=PROTOCOL_ECHO, loop="uvloop",
          note="the asyncio-protocol server on uvloop (libuv, C)")
def serve_uvloop(port, options):
    serve_asyncio_protocol(port, options, loop="uvloop")


@register("uvloop-streams", speaks=("echo",), needs=("uvloop",),
          program=STREAMS_ECHO, loop="uvloop",
          note="the asyncio-streams program on uvloop")
def serve_uvloop_streams(port, options):
    serve_asyncio_streams(port, options, loop="uvloop")


@register("gevent", speaks=("echo",), needs=("gevent",),
          note="gevent.server.StreamServer: a greenlet per connection, blocking-style code")
def serve_gevent(port, options):
    from gevent.server import StreamServer
    import gevent

    server = StreamServer(("127.0.0.1", port), lambda sock, address: blocking_echo(sock),
                          backlog=1024)
    server.start()
    gevent.signal_handler(signal.SIGTERM, server.stop)
    ready()
    server.serve_forever()


@register("twisted", speaks=("echo",), needs=("twisted",),
          note="twisted.internet.protocol.Protocol on Twisted's default reactor")
def serve_twisted(port, options):
    from twisted.internet import protocol, reactor as twisted_reactor

    class Echo(protocol.Protocol):
        def connectionMade(self):
            self.transport.setTcpNoDelay(True)

        def dataReceived(self, data):
            self.transport.write(data)

    factory = protocol.Factory.forProtocol(Echo)
    twisted_reactor.listenTCP(port, factory, backlog=1024, interface="127.0.0.1")
    twisted_reactor.callWhenRunning(ready)
    twisted_reactor.run()


@register("trio", speaks=("echo",), needs=("trio",),
          note="trio.serve_tcp: a task per connection, receive_some / send_all")
def serve_trio(port, options):
    import trio

    async def handle(stream):
        # trio's SocketStream turns TCP_NODELAY on itself.
        try:
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    return
                await stream.send_all(data)
        except trio.BrokenResourceError:
            return

    async def main():
        with trio.open_signal_receiver(signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(functools.partial(trio.serve_tcp, handle, port,
                                                      host="127.0.0.1", backlog=1024))
                ready()
                async for _ in signals:
                    nursery.cancel_scope.cancel()
                    break
    trio.run(main)


@register("curio", speaks=("echo",), needs=("curio",),
          note="curio's run_server: a task per connection, recv / sendall")
def serve_curio(port, options):
    import curio
    from curio.network import run_server, tcp_server_socket

    async def handle(client, address):
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        async with client:
            try:
                while True:
                    data = await client.recv(65536)
                    if not data:
                        return
                    await client.sendall(data)
            except OSError:
                return

    async def main():
        sigterm = curio.UniversalEvent()
        signal.signal(signal.SIGTERM, lambda *_: sigterm.set())
        listener = tcp_server_socket("127.0.0.1", port, backlog=1024)
        server = await curio.spawn(run_server, listener, handle)
        ready()
        await sigterm.wait()
        await server.cancel()
    curio.run(main)
