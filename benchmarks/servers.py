"""Echo servers for the echo suite, one per concurrency model, each run in its own process.

``python -m benchmarks.servers MODEL PORT [--measure-idle|--measure-rss]`` listens on
127.0.0.1:PORT, prints ``ready`` when it accepts, and serves until SIGTERM.
Every model does the same job: send back every byte received, with
TCP_NODELAY on, as a plain echo would be written in that model.

With ``--measure-idle`` (reactor and asyncio-protocol only) the server
starts tracemalloc before listening, and on SIGUSR1 prints its Python heap,
its resident set and its open connection count, for the idle-memory
figures; ``--measure-rss`` does the same without tracemalloc (heap 0),
whose own bookkeeping would swell the resident set.
"""

import os
import signal
import socket
import sys

MODELS = ["reactor", "asyncio-protocol", "asyncio-streams", "threads",
          "selectors-minimal", "uvloop", "gevent", "twisted"]
#: TLS echo servers (tests/certs/server.pem), for the tls suite.
TLS_MODELS = ["reactor-tls", "asyncio-tls"]
CERTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "certs")
#: UDP echo servers, for the udp suite.
UDP_MODELS = ["reactor-udp", "asyncio-udp", "selectors-minimal-udp"]
#: Length-prefixed (4-byte big-endian) framed echo servers, for the framing suite.
FRAMED_MODELS = ["reactor-length", "asyncio-streams-length", "asyncio-protocol-length"]
#: Echo with every protection on but none binding, for ``echo --protected``.
PROTECTED_MODELS = ["reactor", "reactor-protected"]
#: The token the protected server accepts and the load generator sends first.
BENCH_TOKEN = b"benchmark-token-0123456789abcdef"
#: model -> the package it needs beyond the standard library
OPTIONAL = {"uvloop": "uvloop", "gevent": "gevent", "twisted": "twisted"}


def available(model):
    """Return None if ``model`` can run here, else why it cannot."""
    package = OPTIONAL.get(model)
    if package is None:
        return None
    try:
        __import__(package)
    except ImportError:
        return "%s is not installed" % package
    return None


def ready():
    print("ready", flush=True)


def run_asyncio_until_sigterm(start, on_ready=None):
    """Run ``await start(loop)`` (which returns a server or transport), print ready,
    and serve until SIGTERM; then close what ``start`` returned."""
    import asyncio

    async def main():
        loop = asyncio.get_running_loop()
        served = await start(loop)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        if on_ready is not None:
            on_ready(loop)
        ready()
        await stop
        served.close()
    asyncio.run(main())


def serve_reactor(port, measure_idle):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import reactor
    from reactor.apps.echo import EchoProtocol
    start_tracing(measure_idle)
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", port)
    if measure_idle:
        loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(server))
    ready()
    loop.run()
    loop.close()


def serve_reactor_protected(port, measure_idle):
    """The reactor echo behind a guard: auth, idle timeout, per-IP cap and four rate limits.

    The limits are set far above what the benchmark sends, so they cost
    their bookkeeping but never bind. ``--idle-timeout S`` (default 300)
    is what the slowloris measurement shortens.
    """
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import reactor
    from reactor.apps.echo import EchoProtocol
    from reactor.auth import TokenAuth
    from reactor.policy import Rate
    idle = 300.0
    if "--idle-timeout" in sys.argv:
        idle = float(sys.argv[sys.argv.index("--idle-timeout") + 1])
    limits = reactor.Limits(
        idle_timeout_seconds=idle, max_per_ip=100000,
        rate_bytes=Rate(1e9), rate_messages=Rate(1e7),
        ip_rate_bytes=Rate(1e10), ip_rate_messages=Rate(1e8))
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", port, limits=limits,
                             auth=TokenAuth([BENCH_TOKEN]))
    loop.add_signal_handler(signal.SIGUSR1, lambda: print("connections %d" % len(server),
                                                          flush=True))
    ready()
    loop.run()
    loop.close()


def serve_asyncio_protocol(port, measure_idle, use_uvloop=False):
    import asyncio
    if use_uvloop:
        import uvloop
        uvloop.install()
    start_tracing(measure_idle)
    live = set()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            live.add(self)

        def data_received(self, data):
            self.transport.write(data)

        def connection_lost(self, exc):
            live.discard(self)

    def on_ready(loop):
        if measure_idle:
            loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(live))
    run_asyncio_until_sigterm(
        lambda loop: loop.create_server(Echo, "127.0.0.1", port, backlog=1024), on_ready)


def serve_asyncio_streams(port, measure_idle):
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
        lambda loop: asyncio.start_server(handle, "127.0.0.1", port, backlog=1024))


def serve_threads(port, measure_idle):
    import socketserver
    import threading

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return
                    sock.sendall(data)
            except OSError:
                return

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024

    server = Server(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    ready()
    server.serve_forever()


def serve_selectors_minimal(port, measure_idle):
    """The pure-Python floor: a hand-written selectors loop with no framework at all."""
    import selectors
    selector = selectors.DefaultSelector()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ, None)
    pending = {}                       # sock -> bytes not yet sent
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    ready()
    while running[0]:
        for key, mask in selector.select(0.5):
            sock = key.fileobj
            if sock is listener:
                try:
                    conn, _ = listener.accept()
                except BlockingIOError:
                    continue
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                selector.register(conn, selectors.EVENT_READ, None)
                continue
            if mask & selectors.EVENT_WRITE:
                data = pending.pop(sock)
                sent = sock.send(data)
                if sent < len(data):
                    pending[sock] = data[sent:]
                else:
                    selector.modify(sock, selectors.EVENT_READ, None)
                continue
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                selector.unregister(sock)
                pending.pop(sock, None)
                sock.close()
                continue
            if sock in pending:
                pending[sock] += data
                continue
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                pending[sock] = data[sent:]
                selector.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, None)


def serve_gevent(port, measure_idle):
    from gevent.server import StreamServer
    import gevent

    def handle(sock, address):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                sock.sendall(data)
        except OSError:
            return

    server = StreamServer(("127.0.0.1", port), handle, backlog=1024)
    server.start()
    gevent.signal_handler(signal.SIGTERM, server.stop)
    ready()
    server.serve_forever()


def serve_twisted(port, measure_idle):
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


def serve_reactor_length(port, measure_idle):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import reactor
    from reactor.apps.echo import FRAMINGS, FramedEchoProtocol, framed_factory
    loop = reactor.Reactor()
    loop.listen_tcp(framed_factory(FramedEchoProtocol, FRAMINGS["length"](1 << 20)),
                    "127.0.0.1", port)
    ready()
    loop.run()
    loop.close()


def serve_asyncio_streams_length(port, measure_idle):
    """Idiomatic asyncio: readexactly the header, then the payload, write it back."""
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


def serve_asyncio_protocol_length(port, measure_idle):
    """asyncio's loop and Protocol with reactor's framer: isolates the loop's share."""
    import asyncio
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def serve_reactor_tls(port, measure_idle):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import reactor
    from reactor.apps.echo import EchoProtocol
    from reactor.tls import server_context
    context = server_context(os.path.join(CERTS, "server.pem"), os.path.join(CERTS, "server.key"))
    loop = reactor.Reactor()
    loop.listen_tcp(EchoProtocol, "127.0.0.1", port, ssl=context)
    ready()
    loop.run()
    loop.close()


def serve_asyncio_tls(port, measure_idle):
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


def serve_reactor_udp(port, measure_idle):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import reactor
    from reactor.apps.echo import DatagramEchoProtocol
    loop = reactor.Reactor()
    transport = loop.listen_udp(DatagramEchoProtocol, "127.0.0.1", port)
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    ready()
    loop.run()
    loop.close()


def serve_asyncio_udp(port, measure_idle):
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


def serve_selectors_minimal_udp(port, measure_idle):
    """The floor: a bare selectors loop doing recvfrom / sendto."""
    import selectors
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sock.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    running = [True]
    signal.signal(signal.SIGTERM, lambda *_: running.__setitem__(0, False))
    ready()
    while running[0]:
        for _ in selector.select(0.5):
            for _ in range(64):
                try:
                    data, address = sock.recvfrom(65536)
                except BlockingIOError:
                    break
                try:
                    sock.sendto(data, address)
                except BlockingIOError:
                    pass


def start_tracing(measure_idle):
    """Start tracemalloc when asked (``--measure-idle``); ``--measure-rss`` does not,
    since tracing inflates the resident memory it would then measure."""
    if measure_idle and "--measure-rss" not in sys.argv:
        import tracemalloc
        tracemalloc.start()


def report_idle(count):
    """Print "idle HEAP RSS COUNT": the traced Python heap (0 untraced), the
    resident set from /proc and the open connections, after a collection."""
    import gc
    import tracemalloc
    gc.collect()
    with open("/proc/self/statm") as handle:
        resident = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    print("idle %d %d %d" % (heap, resident, count()), flush=True)


def main():
    model, port = sys.argv[1], int(sys.argv[2])
    measure_idle = "--measure-idle" in sys.argv or "--measure-rss" in sys.argv
    why_not = available(model)
    if why_not:
        print("skip", why_not, flush=True)
        return 0
    if model == "uvloop":
        serve_asyncio_protocol(port, measure_idle, use_uvloop=True)
    else:
        globals()["serve_" + model.replace("-", "_")](port, measure_idle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
