"""The standard library's asyncio: Protocol and streams, for echo, TLS, UDP and framed echo.

The two echo programs, ``asyncio-protocol`` and ``asyncio-streams``, are
each written once and take the event loop as a parameter (``loop``, one of
``support.ASYNCIO_LOOPS``): here they run on asyncio's own loop and, as
``reactor-aio-protocol`` and ``reactor-aio-streams``, on reactor.aio;
``third_party.py`` runs them on uvloop. Same program, same bytes on the
wire: the loop is the only thing that differs between those models.
"""

import os
import signal
import socket

from .registry import register
from .support import CERTS, report_idle, run_asyncio_until_sigterm, start_tracing

#: the asyncio programs run on several loops (``program=`` of their registrations)
PROTOCOL_ECHO = "asyncio Protocol echo"
STREAMS_ECHO = "asyncio streams echo"


@register("asyncio-protocol", speaks=("echo",), idle=True,
          program=PROTOCOL_ECHO, loop="asyncio",
          note="asyncio.Protocol: data_received writes the data back")
def serve_asyncio_protocol(port, options, loop="asyncio"):
    import asyncio
    start_tracing(options)
    live = set()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            live.add(self)

        def data_received(self, data):
            self.transport.write(data)

        def connection_lost(self, exc):
            live.discard(self)

    def on_ready(running):
        if options.measure_idle:
            running.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(live))
    run_asyncio_until_sigterm(
        lambda running: running.create_server(Echo, "127.0.0.1", port, backlog=1024),
        on_ready, loop)


@register("reactor-aio-protocol", speaks=("echo",), idle=True,
          program=PROTOCOL_ECHO, loop="reactor.aio",
          note="the asyncio-protocol program on reactor.aio's event loop")
def serve_reactor_aio_protocol(port, options):
    serve_asyncio_protocol(port, options, loop="reactor.aio")


@register("asyncio-streams", speaks=("echo",), program=STREAMS_ECHO, loop="asyncio",
          note="asyncio.start_server: read, write, await drain")
def serve_asyncio_streams(port, options, loop="asyncio"):
    import asyncio

    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    run_asyncio_until_sigterm(
        lambda running: asyncio.start_server(handle, "127.0.0.1", port, backlog=1024),
        loop=loop)


@register("reactor-aio-streams", speaks=("echo",), program=STREAMS_ECHO, loop="reactor.aio",
          note="the asyncio-streams program on reactor.aio's event loop")
def serve_reactor_aio_streams(port, options):
    serve_asyncio_streams(port, options, loop="reactor.aio")


@register("asyncio-streams-length", speaks=("echo-framed",),
          note="idiomatic asyncio: readexactly the header, then the payload, write it back")
def serve_asyncio_streams_length(port, options):
    import asyncio

    async def handle(reader, writer):
        try:
            while True:
                header = await reader.readexactly(4)
                payload = await reader.readexactly(int.from_bytes(header, "big"))
                writer.write(header + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    run_asyncio_until_sigterm(
        lambda loop: asyncio.start_server(handle, "127.0.0.1", port, backlog=1024))


@register("asyncio-protocol-length", speaks=("echo-framed",),
          note="asyncio's loop and Protocol with reactor's LengthPrefixFramer: the loop's share")
def serve_asyncio_protocol_length(port, options):
    import asyncio
    from reactor.framing import LengthPrefixFramer

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.framer = LengthPrefixFramer(4, "big", 1 << 20)

        def data_received(self, data):
            frames = self.framer.feed(data)
            if frames:
                self.transport.write(self.framer.encode_many(frames))

    run_asyncio_until_sigterm(
        lambda loop: loop.create_server(Echo, "127.0.0.1", port, backlog=1024))


@register("asyncio-tls", speaks=("echo-tls",), note="asyncio.Protocol with an ssl.SSLContext")
def serve_asyncio_tls(port, options):
    import asyncio
    import ssl
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.path.join(CERTS, "server.pem"), os.path.join(CERTS, "server.key"))

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport

        def data_received(self, data):
            self.transport.write(data)

    run_asyncio_until_sigterm(
        lambda loop: loop.create_server(Echo, "127.0.0.1", port, ssl=context, backlog=1024))


@register("asyncio-udp", speaks=("echo-udp",), note="asyncio.DatagramProtocol")
def serve_asyncio_udp(port, options):
    import asyncio

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    async def start(loop):
        transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                      1 << 22)
        return transport
    run_asyncio_until_sigterm(start)
