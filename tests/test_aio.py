"""reactor.aio: asyncio's API on reactor's loop, proved with real sockets on loopback.

Most tests run twice, on ``reactor.aio.new_event_loop()`` (id ``reactor``)
and on asyncio's own loop (id ``asyncio``): the second run checks that the
test states asyncio's behaviour, so a failure under ``reactor`` alone is a
difference of our loop. uvloop proves itself the same way (one test body, a
subclass per loop). The tests without a twin are about reactor.aio itself:
``run``, ``install`` and ``loop.reactor``.

Every test is bounded in time (``asyncio.wait_for`` with ``TIMEOUT_SECONDS``,
or a subprocess timeout), uses loopback only, and closes its sockets and
its loop. The programs of docs/ASYNC.md and the README's *async/await*
section are run here too, and must print what the page shows.
"""

import asyncio
import concurrent.futures
import contextvars
import errno
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import reactor
from reactor import aio
from reactor.apps.echo import EchoProtocol

from .support.certs import SERVER_HOSTNAME, client_ctx, server_ctx
from .test_cookbook import indented_block, read_readme, section

#: The longest any one test may take, loop shutdown aside.
TIMEOUT_SECONDS = 10
#: asyncio's own loop runs a timer due within one clock resolution of now
#: (``BaseEventLoop._run_once``); reactor's wheel never runs one early.
EARLY_SECONDS = time.get_clock_info("monotonic").resolution
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A complete program in docs/ASYNC.md: a python block opening with this line,
#: followed by a plain block holding exactly what it prints.
DOC_EXAMPLE = re.compile(r"```python\n# example: ([\w-]+)\n(.*?)```\n"
                         r"(?:(?!```).)*```\n(.*?)```", re.S)
LOOP_FACTORIES = {"reactor": aio.new_event_loop, "asyncio": asyncio.new_event_loop}
VAR = contextvars.ContextVar("test_aio_var", default="unset")


@pytest.fixture(params=sorted(LOOP_FACTORIES))
def loop(request):
    """A new event loop, reactor's and then asyncio's own; closed after the test."""
    event_loop = LOOP_FACTORIES[request.param]()
    yield event_loop
    finish(event_loop)


@pytest.fixture
def restore_policy():
    """Put back, after the test, the event loop policy the test found."""
    saved = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(saved)


def run(loop, coroutine, timeout=TIMEOUT_SECONDS):
    """Run ``coroutine`` on ``loop`` to its end, failing after ``timeout`` seconds."""
    return loop.run_until_complete(asyncio.wait_for(coroutine, timeout))


def finish(loop):
    """Cancel the tasks left on ``loop``, shut its executor and generators down, close it."""
    if loop.is_closed():
        return

    async def settle(pending):
        await asyncio.gather(*pending, return_exceptions=True)
        await loop.shutdown_asyncgens()
        if hasattr(loop, "shutdown_default_executor"):          # Python 3.9+
            await loop.shutdown_default_executor()
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.wait_for(settle(pending), 5))
    finally:
        loop.close()


def port_of(server):
    """Return the port an ``asyncio.Server`` listens on."""
    return server.sockets[0].getsockname()[1]


def closed_port(kind=socket.SOCK_STREAM):
    """Return a loopback port nothing listens on (bound once, then closed)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def payload_of(size, seed):
    """Return ``size`` seeded random bytes: a misplaced slice cannot match by accident."""
    return random.Random(seed).getrandbits(8 * size).to_bytes(size, "little")


async def until(predicate, poll_seconds=0.005):
    """Wait until ``predicate()`` is true (the caller's ``wait_for`` bounds the wait)."""
    while not predicate():
        await asyncio.sleep(poll_seconds)


def raise_(exc):
    raise exc


class Recorder(asyncio.Protocol):
    """Record protocol events as tuples, consecutive data joined; ``done`` resolves when lost."""

    def __init__(self):
        self.events, self.transport = [], None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def data_received(self, data):
        if self.events[-1][0] == "data":
            self.events[-1] = ("data", self.events[-1][1] + data)
        else:
            self.events.append(("data", bytes(data)))

    def received(self):
        return b"".join(event[1] for event in self.events if event[0] == "data")

    def eof_received(self):
        self.events.append(("eof",))

    def connection_lost(self, exc):
        self.events.append(("lost", exc))
        self.done.set_result(exc)


class Echo(asyncio.Protocol):
    """Send back what arrives; the peer's EOF closes us once our buffer is sent."""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_lines(reader, writer):
    """An asyncio streams handler: answer each line upper-cased until EOF, then close."""
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def ask(reader, writer, lines):
    """Send each line, read its answer; then half-close and read to EOF. Return both."""
    answers = []
    for line in lines:
        writer.write(line)
        await writer.drain()
        answers.append(await reader.readline())
    writer.write_eof()
    rest = await reader.read()
    writer.close()
    await writer.wait_closed()
    return answers, rest


# -- running coroutines ----------------------------------------------------------

def test_streams_echo_under_reactor_aio_run():
    """asyncio.start_server and open_connection talk on the ReactorEventLoop that run() makes."""
    async def main():
        server = await asyncio.start_server(echo_lines, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        answers = await ask(reader, writer, [b"hello\n", b"world\n"])
        server.close()
        await server.wait_closed()
        return asyncio.get_running_loop(), answers

    loop, answers = aio.run(asyncio.wait_for(main(), TIMEOUT_SECONDS))
    assert isinstance(loop, aio.ReactorEventLoop) and isinstance(loop, asyncio.AbstractEventLoop)
    assert answers == ([b"HELLO\n", b"WORLD\n"], b"")
    assert loop.is_closed()


def test_run_passes_debug_and_refuses_to_nest():
    """run(debug=True) makes a debug loop; run() inside a running loop raises RuntimeError."""
    async def inner():
        return "never run"

    async def main():
        nested = inner()
        try:
            with pytest.raises(RuntimeError, match="cannot be called from a running event loop"):
                aio.run(nested)
        finally:
            nested.close()
        return asyncio.get_running_loop().get_debug()

    assert aio.run(main(), debug=True) is True


def test_install_makes_asyncio_run_use_reactors_loop(restore_policy):
    """After install(), asyncio.run and new_event_loop make ReactorEventLoops; policy restored."""
    aio.install()
    assert isinstance(asyncio.get_event_loop_policy(), aio.EventLoopPolicy)

    async def main():
        return type(asyncio.get_running_loop())

    assert issubclass(asyncio.run(main()), aio.ReactorEventLoop)
    fresh = asyncio.new_event_loop()
    try:
        assert isinstance(fresh, aio.ReactorEventLoop)
    finally:
        fresh.close()


def test_reactor_callback_api_and_coroutines_share_one_loop():
    """loop.reactor serves and dials with reactor's API beside coroutines, on one loop."""
    loop = aio.new_event_loop()
    assert isinstance(loop.reactor, reactor.Reactor)
    reactor_server = loop.reactor.listen_tcp(EchoProtocol, "127.0.0.1", 0)

    class Dialer(reactor.Protocol):                  # a reactor client of an asyncio server
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.write(b"from reactor\n")

        def data_received(self, data):
            answered.set_result((data, reactor.get_running_loop()))
            self.transport.close()

        def connection_lost(self, exc):              # e.g. data_received raised: say why
            if not answered.done():
                answered.set_exception(exc or ConnectionError("closed before an answer"))

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1",
                                                       reactor_server.addresses[0][1])
        writer.write(b"from a coroutine")
        echoed = await reader.readexactly(16)
        writer.close()
        await writer.wait_closed()
        asyncio_server = await asyncio.start_server(echo_lines, "127.0.0.1", 0)
        loop.reactor.connect_tcp(Dialer, "127.0.0.1", port_of(asyncio_server),
                                 on_error=answered.set_exception)
        answer = await answered
        fired = loop.create_future()
        loop.reactor.call_later(0.01, fired.set_result, "a reactor timer")
        asyncio_server.close()
        await asyncio_server.wait_closed()
        return echoed, answer, await fired

    answered = loop.create_future()
    try:
        echoed, (answer, running), fired = run(loop, main())
    finally:
        reactor_server.close()
        finish(loop)
    assert (echoed, answer, fired) == (b"from a coroutine", b"FROM REACTOR\n", "a reactor timer")
    assert running is loop.reactor


# -- connections -----------------------------------------------------------------

def test_protocol_echo_with_create_server_and_create_connection(loop):
    """A Protocol client gets its megabyte back, then eof_received and connection_lost(None)."""
    payload = payload_of(1 << 20, seed=20)

    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        addresses = transport.get_extra_info("peername"), server.sockets[0].getsockname()
        transport.write(payload)
        transport.write_eof()
        await client.done
        server.close()
        await server.wait_closed()
        return client.events, addresses

    events, (peername, listening) = run(loop, main())
    assert events == [("made",), ("data", payload), ("eof",), ("lost", None)]
    assert peername == listening


def test_pause_reading_holds_data_until_resume_reading(loop):
    """While a transport is paused no data_received comes; resume_reading delivers what waited."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        transport.pause_reading()
        paused = transport.is_reading()
        transport.write(b"held back")
        await asyncio.sleep(0.05)                    # the echo is back in our socket by now
        held = list(client.events)
        transport.resume_reading()
        await until(lambda: client.received() == b"held back")
        reading = transport.is_reading()
        transport.close()
        await client.done
        server.close()
        await server.wait_closed()
        return paused, held, reading

    assert run(loop, main()) == (False, [("made",)], True)


def test_add_reader_and_add_writer_call_back_on_a_socketpair(loop):
    """add_reader fires when bytes wait, add_writer when there is room; remove_* say if one was."""
    async def main():
        left, right = socket.socketpair()
        with left, right:
            left.setblocking(False)
            readable, writable = loop.create_future(), loop.create_future()
            loop.add_reader(left.fileno(), lambda: readable.set_result(left.recv(100)))
            loop.add_writer(right.fileno(), lambda: writable.done() or writable.set_result(True))
            await writable
            removed_writer = loop.remove_writer(right.fileno()), loop.remove_writer(right.fileno())
            right.send(b"ready")
            data = await readable
            removed_reader = loop.remove_reader(left.fileno()), loop.remove_reader(left.fileno())
            return data, removed_writer, removed_reader

    assert run(loop, main()) == (b"ready", (True, False), (True, False))


def test_run_forever_returns_after_stop(loop):
    """stop() from a callback or a timer ends run_forever, the timer not before its delay."""
    loop.call_soon(loop.stop)
    loop.run_forever()
    start = loop.time()
    loop.call_later(0.02, loop.stop)
    loop.run_forever()
    assert 0.02 - EARLY_SECONDS <= loop.time() - start < 2
    assert not loop.is_running()


def test_unix_socket_streams_echo(loop, tmp_path):
    """start_unix_server and open_unix_connection echo lines over a socket file in tmp_path."""
    path = str(tmp_path / "aio.sock")

    async def main():
        server = await asyncio.start_unix_server(echo_lines, path)
        reader, writer = await asyncio.open_unix_connection(path)
        answers = await ask(reader, writer, [b"over a unix socket\n"])
        server.close()
        await server.wait_closed()
        return answers

    assert run(loop, main()) == ([b"OVER A UNIX SOCKET\n"], b"")


def test_datagram_endpoint_echo(loop):
    """create_datagram_endpoint: each datagram, 60,000 bytes too, comes back whole to its sender."""
    datagrams = [b"one", b"x" * 60000, b"last"]      # (asyncio < 3.13 drops an empty one)

    class DatagramEcho(asyncio.DatagramProtocol):
        def connection_made(self, transport):
            self.transport = transport

        def datagram_received(self, data, addr):
            self.transport.sendto(data, addr)

    class Collector(asyncio.DatagramProtocol):
        def __init__(self):
            self.received = asyncio.Queue()

        def datagram_received(self, data, addr):
            self.received.put_nowait((data, addr))

    async def main():
        server, _ = await loop.create_datagram_endpoint(DatagramEcho,
                                                        local_addr=("127.0.0.1", 0))
        address = server.get_extra_info("sockname")
        client, collector = await loop.create_datagram_endpoint(Collector, remote_addr=address)
        for datagram in datagrams:
            client.sendto(datagram)
        answers = [await collector.received.get() for _ in datagrams]
        peer = client.get_extra_info("peername")
        client.close()
        server.close()
        return answers, peer, address

    answers, peer, address = run(loop, main())
    assert answers == [(datagram, address) for datagram in datagrams]
    assert peer == address


def test_connected_datagram_endpoint_reports_port_unreachable(loop):
    """A datagram to a closed UDP port comes back as error_received(ConnectionRefusedError)."""
    class Errors(asyncio.DatagramProtocol):
        def __init__(self):
            self.errors = asyncio.Queue()

        def error_received(self, exc):
            self.errors.put_nowait(exc)

    async def main():
        client, protocol = await loop.create_datagram_endpoint(
            Errors, remote_addr=("127.0.0.1", closed_port(socket.SOCK_DGRAM)))
        client.sendto(b"anyone?")
        error = await protocol.errors.get()
        client.close()
        return error

    assert isinstance(run(loop, main()), ConnectionRefusedError)


def test_sock_accept_connect_sendall_and_recv_move_a_megabyte(loop):
    """sock_accept, sock_connect, sock_sendall, sock_recv_into, sock_recv: 1 MiB exact, then EOF."""
    payload = payload_of(1 << 20, seed=21)

    async def main():
        with socket.socket() as listener, socket.socket() as client:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            client.setblocking(False)
            (conn, peer), _ = await asyncio.gather(loop.sock_accept(listener),
                                                   loop.sock_connect(client,
                                                                     listener.getsockname()))
            with conn:
                sending = loop.create_task(loop.sock_sendall(client, payload))
                received, buffer = bytearray(), bytearray(65536)
                while len(received) < len(payload):
                    count = await loop.sock_recv_into(conn, buffer)
                    received += buffer[:count]
                await sending
                client.shutdown(socket.SHUT_WR)
                eof = await loop.sock_recv(conn, 100)
            return peer == client.getsockname(), bytes(received), eof

    assert run(loop, main()) == (True, payload, b"")


def test_sendfile_sends_a_file_then_a_slice_over_a_transport(loop, tmp_path):
    """loop.sendfile sends a file, then an offset/count slice; the peer gets exactly those bytes."""
    content = payload_of(1 << 20, seed=22)
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    servers = []

    async def main():
        server = await loop.create_server(lambda: servers.append(Recorder()) or servers[-1],
                                          "127.0.0.1", 0)
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                                    port_of(server))
        with open(str(path), "rb") as source:
            whole = await loop.sendfile(transport, source)
            part = await loop.sendfile(transport, source, offset=10, count=100)
            position = source.tell()
        transport.close()
        await until(lambda: servers)
        await servers[0].done
        server.close()
        await server.wait_closed()
        return whole, part, position, servers[0].events

    whole, part, position, events = run(loop, main())
    assert (whole, part, position) == (len(content), 100, 110)
    assert events == [("made",), ("data", content + content[10:110]), ("eof",), ("lost", None)]


def test_buffered_protocol_receives_into_its_own_buffer(loop):
    """A BufferedProtocol gets 256 KiB by get_buffer/buffer_updated, never more than its buffer."""
    payload = payload_of(256 * 1024, seed=23)
    buffer_bytes = 1000

    class Sender(asyncio.Protocol):
        def connection_made(self, transport):
            transport.write(payload)
            transport.close()

    class Into(asyncio.BufferedProtocol):
        def __init__(self):
            self.buffer, self.received, self.get_buffer_calls = bytearray(buffer_bytes), [], 0
            self.done = asyncio.get_running_loop().create_future()

        def get_buffer(self, sizehint):
            self.get_buffer_calls += 1
            return self.buffer

        def buffer_updated(self, nbytes):
            self.received.append(bytes(self.buffer[:nbytes]))

        def eof_received(self):
            self.received.append("eof")

        def connection_lost(self, exc):
            self.done.set_result(exc)

    async def main():
        server = await loop.create_server(Sender, "127.0.0.1", 0)
        _, into = await loop.create_connection(Into, "127.0.0.1", port_of(server))
        lost_with = await into.done
        server.close()
        await server.wait_closed()
        return into, lost_with

    into, lost_with = run(loop, main())
    assert (b"".join(into.received[:-1]), into.received[-1], lost_with) == (payload, "eof", None)
    assert into.get_buffer_calls >= len(payload) // buffer_bytes


def test_pause_and_resume_writing_at_the_water_marks_with_a_peer_that_does_not_read(loop):
    """pause_writing above the high mark, resume_writing at or below the low mark; none lost."""
    high, low = 64 * 1024, 16 * 1024
    flooders = []

    class Flooder(asyncio.Protocol):
        """Write 16 KiB chunks until paused; once resumed, close."""

        def connection_made(self, transport):
            self.transport, self.events, self.written, self.paused = transport, [], 0, False
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                                          16384)
            transport.set_write_buffer_limits(high=high, low=low)
            self.events.append(("limits", transport.get_write_buffer_limits()))
            while not self.paused and self.written < 64 << 20:
                transport.write(b"x" * 16384)
                self.written += 16384
            flooders.append(self)

        def pause_writing(self):
            self.paused = True
            self.events.append(("pause", self.transport.get_write_buffer_size() > high))

        def resume_writing(self):
            self.events.append(("resume", self.transport.get_write_buffer_size() <= low))
            self.transport.close()

    async def main():
        server = await loop.create_server(Flooder, "127.0.0.1", 0)
        with socket.socket() as peer:
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            peer.setblocking(False)
            await loop.sock_connect(peer, ("127.0.0.1", port_of(server)))
            await until(lambda: flooders)            # paused, and nothing read yet
            paused_events = list(flooders[0].events)
            received = 0
            while True:
                chunk = await loop.sock_recv(peer, 65536)
                if not chunk:
                    break
                received += len(chunk)
        server.close()
        await server.wait_closed()
        return paused_events, flooders[0].events, received, flooders[0].written

    paused_events, events, received, written = run(loop, main())
    assert paused_events == [("limits", (low, high)), ("pause", True)]
    assert events == [("limits", (low, high)), ("pause", True), ("resume", True)]
    assert received == written


def test_start_tls_upgrades_a_plain_connection(loop):
    """STARTTLS: after plaintext, both ends upgrade with loop.start_tls and echo over TLS."""
    class StartTLSServer(asyncio.Protocol):
        """Answer each chunk upper-cased; on STARTTLS, say GO AHEAD and go on over TLS."""

        def connection_made(self, transport):
            self.plain, self.chunks = transport, asyncio.Queue()
            loop.create_task(self.serve(transport))

        def data_received(self, data):
            if data == b"STARTTLS\n":
                self.plain.pause_reading()           # no ciphertext may reach plaintext code
            self.chunks.put_nowait(data)

        def connection_lost(self, exc):
            self.chunks.put_nowait(None)

        async def serve(self, transport):            # one chunk at a time, in order
            while True:
                data = await self.chunks.get()
                if data is None:
                    return
                if data == b"STARTTLS\n":
                    transport.write(b"GO AHEAD\n")
                    transport = await loop.start_tls(transport, self, server_ctx(),
                                                     server_side=True)
                else:
                    transport.write(data.upper())

    class Client(asyncio.Protocol):
        def __init__(self):
            self.received = asyncio.Queue()

        def data_received(self, data):
            self.received.put_nowait(data)

    async def main():
        server = await loop.create_server(StartTLSServer, "127.0.0.1", 0)
        plain, client = await loop.create_connection(Client, "127.0.0.1", port_of(server))
        plain.write(b"STARTTLS\n")
        go_ahead = await client.received.get()
        secure = await loop.start_tls(plain, client, client_ctx(),
                                      server_hostname=SERVER_HOSTNAME)
        secure.write(b"secret\n")
        answer = await client.received.get()
        version = secure.get_extra_info("ssl_object").version()
        secure.close()
        server.close()
        await server.wait_closed()
        return go_ahead, answer, version

    go_ahead, answer, version = run(loop, main())
    assert (go_ahead, answer) == (b"GO AHEAD\n", b"SECRET\n")
    assert version.startswith("TLS")


def test_tls_streams_echo_with_ssl_argument(loop):
    """start_server(ssl=) and open_connection(ssl=) verify the test certificate and echo lines."""
    async def main():
        server = await asyncio.start_server(echo_lines, "127.0.0.1", 0, ssl=server_ctx())
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server),
                                                       ssl=client_ctx(),
                                                       server_hostname=SERVER_HOSTNAME)
        peercert = writer.get_extra_info("peercert")
        writer.write(b"over tls\n")
        answer = await reader.readline()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return answer, dict(item[0] for item in peercert["subject"])

    answer, subject = run(loop, main())
    assert answer == b"OVER TLS\n" and subject["commonName"] == SERVER_HOSTNAME


# -- timers, tasks, cancellation ---------------------------------------------------

def test_wait_for_times_out_never_early_and_cancels_the_awaited(loop):
    """wait_for raises TimeoutError no sooner than its delay and cancels the awaited coroutine."""
    async def main():
        cancelled = []

        async def slow():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        start = loop.time()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow(), 0.05)
        return loop.time() - start, cancelled

    elapsed, cancelled = run(loop, main())
    assert 0.05 - EARLY_SECONDS <= elapsed < 2 and cancelled == [True]


def test_wait_for_returns_the_result_before_its_timeout(loop):
    """A coroutine that ends in time gives wait_for its result, long before the timeout."""
    async def main():
        start = loop.time()
        result = await asyncio.wait_for(asyncio.sleep(0.01, result="in time"), 5)
        return result, loop.time() - start

    result, elapsed = run(loop, main())
    assert result == "in time" and elapsed < 2


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout is new in Python 3.11")
def test_timeout_context_reschedules_its_deadline(loop):
    """asyncio.timeout fires at its deadline; reschedule() moves it later, and None disarms it."""
    async def main():
        start = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02) as deadline:
                deadline.reschedule(loop.time() + 0.06)
                await asyncio.sleep(10)
        moved = loop.time() - start
        async with asyncio.timeout(0.01) as deadline:
            deadline.reschedule(None)
            await asyncio.sleep(0.03)
        return moved

    assert 0.06 - EARLY_SECONDS <= run(loop, main()) < 2


def test_call_later_and_call_at_fire_in_deadline_order_and_cancelled_never(loop):
    """Timers run in deadline order, each at or after its deadline; a cancelled timer never runs."""
    async def main():
        fired = []
        start = loop.time()

        def record(name, delay):
            fired.append((name, loop.time() >= start + delay - EARLY_SECONDS))

        for name, delay in (("c", 0.04), ("a", 0.01), ("b", 0.02)):
            loop.call_later(delay, record, name, delay)
        at = loop.call_at(start + 0.03, record, "at", 0.03)
        loop.call_later(0.015, record, "cancelled", 0).cancel()
        await asyncio.sleep(0.06)
        return fired, at.when() == start + 0.03

    assert run(loop, main()) == ([("a", True), ("b", True), ("at", True), ("c", True)], True)


def test_cancelling_a_task_blocked_in_read_leaves_the_stream_usable(loop):
    """A task waiting in reader.read() is cancelled at once; later bytes go to the next read."""
    async def main():
        accepted = loop.create_future()
        server = await asyncio.start_server(lambda r, w: accepted.set_result(w), "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
        server_writer = await accepted
        blocked = loop.create_task(reader.read(100))
        for _ in range(3):
            await asyncio.sleep(0)                   # the task runs until it waits for bytes
        was_waiting = not blocked.done()
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        server_writer.write(b"late")
        late = await reader.read(100)
        for each in (writer, server_writer):
            each.close()
            await each.wait_closed()
        server.close()
        await server.wait_closed()
        return was_waiting, blocked.cancelled(), late

    assert run(loop, main()) == (True, True, b"late")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is new in Python 3.11")
def test_task_group_waits_for_all_and_a_failure_cancels_the_rest(loop):
    """A TaskGroup of three echo clients ends with all three; a failing task cancels its sibling."""
    async def client(port, n):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return await ask(reader, writer, [b"client %d\n" % n])

    async def fail_soon():
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    async def main():
        server = await asyncio.start_server(echo_lines, "127.0.0.1", 0)
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(client(port_of(server), n)) for n in range(3)]
        answers = [task.result() for task in tasks]
        server.close()
        await server.wait_closed()
        sibling = None
        with pytest.raises(BaseExceptionGroup) as failure:  # noqa: F821 (3.11 builtin)
            async with asyncio.TaskGroup() as group:
                sibling = group.create_task(asyncio.sleep(10))
                group.create_task(fail_soon())
        return answers, failure.value.exceptions, sibling.cancelled()

    answers, exceptions, sibling_cancelled = run(loop, main())
    assert answers == [([b"CLIENT %d\n" % n], b"") for n in range(3)]
    assert [type(exc) for exc in exceptions] == [ValueError] and sibling_cancelled


def test_context_is_carried_into_callbacks_and_tasks(loop):
    """Callbacks and tasks see the caller's context; context= wins; a task's set stays in it."""
    async def main():
        VAR.set("main")
        seen = {}
        other = contextvars.copy_context()
        other.run(VAR.set, "other")
        loop.call_soon(lambda: seen.__setitem__("call_soon", VAR.get()))
        loop.call_later(0.001, lambda: seen.__setitem__("call_later", VAR.get()))
        loop.call_soon(lambda: seen.__setitem__("context=", VAR.get()), context=other)

        async def child():
            seen["task"] = VAR.get()
            VAR.set("child")

        await loop.create_task(child())
        seen["after the task"] = VAR.get()
        await asyncio.sleep(0.02)
        return seen

    assert run(loop, main()) == {"call_soon": "main", "call_later": "main", "context=": "other",
                                 "task": "main", "after the task": "main"}


# -- threads, executors, signals ---------------------------------------------------

def test_call_soon_threadsafe_wakes_a_sleeping_loop(loop):
    """A thread's call_soon_threadsafe runs on the loop thread at once, not at the next timer."""
    async def main():
        woken = loop.create_future()
        start = loop.time()
        thread = threading.Thread(target=lambda: (time.sleep(0.05), loop.call_soon_threadsafe(
            lambda: woken.set_result(threading.get_ident()))))
        thread.start()
        ran_on = await woken                         # the only timer is wait_for's, 10 s away
        thread.join()
        return ran_on, loop.time() - start

    ran_on, elapsed = run(loop, main())
    assert ran_on == threading.get_ident() and elapsed < 2


def test_run_in_executor_and_getaddrinfo_run_off_the_loop_thread(loop):
    """run_in_executor runs on a pool thread while the loop goes on; getaddrinfo uses that pool."""
    class RecordingPool(concurrent.futures.ThreadPoolExecutor):
        """A real thread pool that notes the name of each function it is given."""

        def __init__(self):
            super().__init__(max_workers=2)
            self.submitted = []

        def submit(self, fn, *args, **kwargs):
            self.submitted.append(getattr(fn, "__name__", repr(fn)))
            return super().submit(fn, *args, **kwargs)

    pool = RecordingPool()
    loop.set_default_executor(pool)

    async def main():
        ticks = []
        loop.call_later(0.01, ticks.append, "timer ran while the pool slept")
        worker, _ = await asyncio.gather(loop.run_in_executor(None, threading.get_ident),
                                         loop.run_in_executor(None, time.sleep, 0.1))
        infos = await loop.getaddrinfo("localhost", 80, family=socket.AF_INET,
                                       type=socket.SOCK_STREAM)
        return worker, ticks, infos

    worker, ticks, infos = run(loop, main())
    assert worker != threading.get_ident()
    assert ticks == ["timer ran while the pool slept"]
    assert infos and all(info[4] == ("127.0.0.1", 80) for info in infos)
    assert "getaddrinfo" in pool.submitted


def test_signal_handler_runs_on_the_loop_and_is_removed(loop):
    """SIGUSR1 to our own pid runs the handler on the loop thread; removing it restores SIG_DFL."""
    async def main():
        got = loop.create_future()
        loop.add_signal_handler(signal.SIGUSR1, lambda: got.set_result(threading.get_ident()))
        installed = signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, signal.SIG_IGN)
        if installed:                               # else SIGUSR1 would end the test run
            os.kill(os.getpid(), signal.SIGUSR1)
            ran_on = await got
        else:
            ran_on = None
        removed = loop.remove_signal_handler(signal.SIGUSR1)
        return installed, ran_on, removed, loop.remove_signal_handler(signal.SIGUSR1)

    assert run(loop, main()) == (True, threading.get_ident(), True, False)
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL


def test_subprocess_exec_echoes_through_pipes(loop):
    """create_subprocess_exec: stdin to the child, its upper-cased stdout back, exit status 0."""
    script = "import sys; sys.stdout.write(sys.stdin.read().upper())"

    async def main():
        child = await asyncio.create_subprocess_exec(sys.executable, "-c", script,
                                                     stdin=subprocess.PIPE,
                                                     stdout=subprocess.PIPE)
        out, _ = await child.communicate(b"through the pipes")
        return out, child.returncode

    assert run(loop, main()) == (b"THROUGH THE PIPES", 0)


# -- failures ----------------------------------------------------------------------

def test_exceptions_in_callbacks_reach_the_custom_exception_handler(loop):
    """A raising call_soon, call_later or data_received reaches the handler; the loop runs on."""
    contexts = []
    loop.set_exception_handler(lambda handler_loop, context: contexts.append(context))

    class Raises(asyncio.Protocol):
        def data_received(self, data):
            raise ZeroDivisionError("in data_received")

        def connection_lost(self, exc):
            lost.set_result(exc)

    async def main():
        loop.call_soon(raise_, ValueError("in call_soon"))
        loop.call_later(0.001, raise_, KeyError("in call_later"))
        await asyncio.sleep(0.02)
        server = await loop.create_server(Raises, "127.0.0.1", 0)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        transport.write(b"trigger")
        lost_with = await lost
        await client.done
        server.close()
        await server.wait_closed()
        return lost_with

    lost = loop.create_future()
    lost_with = run(loop, main())
    assert [type(context.get("exception")) for context in contexts] == [
        ValueError, KeyError, ZeroDivisionError]
    assert all(context.get("message") for context in contexts)
    assert isinstance(contexts[2].get("protocol"), Raises)
    assert lost_with is contexts[2]["exception"]


def test_an_exception_without_a_handler_is_logged_on_the_asyncio_logger(loop, caplog):
    """With no handler set, a raising callback is logged on 'asyncio' with its traceback."""
    async def main():
        loop.call_soon(raise_, ValueError("logged"))
        await asyncio.sleep(0.01)

    run(loop, main())
    records = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ValueError]
    assert [(r.name, r.levelname) for r in records] == [("asyncio", "ERROR")]
    assert "Exception in callback" in records[0].getMessage()


def test_debug_mode_logs_slow_callbacks_on_the_asyncio_logger(loop, caplog):
    """Debug mode logs a callback slower than slow_callback_duration: 'Executing ... took'."""
    loop.set_debug(True)
    loop.slow_callback_duration = 0.01

    async def main():
        loop.call_soon(time.sleep, 0.03)
        await asyncio.sleep(0.01)

    with caplog.at_level("WARNING"):
        run(loop, main())
    slow = [r for r in caplog.records if "took" in r.getMessage() and "sleep" in r.getMessage()]
    assert [(r.name, r.getMessage().startswith("Executing")) for r in slow] == [("asyncio", True)]


def test_write_after_write_eof_raises(loop):
    """write() after write_eof() raises RuntimeError, as on asyncio's transports."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        transport.write_eof()
        try:
            with pytest.raises(RuntimeError):
                transport.write(b"too late")
        finally:
            await client.done
            server.close()
            await server.wait_closed()

    run(loop, main())


def test_write_after_close_is_dropped_quietly(loop):
    """write() after close() neither raises nor sends; the peer sees only what came before."""
    async def main():
        server = await loop.create_server(lambda: servers.append(Recorder()) or servers[-1],
                                          "127.0.0.1", 0)
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1",
                                                    port_of(server))
        transport.write(b"before")
        transport.close()
        transport.write(b"after")
        await until(lambda: servers)
        await servers[0].done
        server.close()
        await server.wait_closed()
        return servers[0].events

    servers = []
    assert run(loop, main()) == [("made",), ("data", b"before"), ("eof",), ("lost", None)]


def test_a_transports_socket_is_refused_to_add_reader_and_add_writer(loop):
    """add_reader or add_writer on the fd of a socket a transport owns raises RuntimeError."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        sock = transport.get_extra_info("socket")
        try:
            with pytest.raises(RuntimeError):
                loop.add_reader(sock.fileno(), print)
            with pytest.raises(RuntimeError):
                loop.add_writer(sock.fileno(), print)
        finally:
            transport.close()
            await client.done
            server.close()
            await server.wait_closed()

    run(loop, main())


def test_transport_write_refuses_text(loop):
    """write(str) raises TypeError and the connection stays usable."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        transport, client = await loop.create_connection(Recorder, "127.0.0.1", port_of(server))
        with pytest.raises(TypeError):
            transport.write("text")
        transport.write(b"bytes")
        transport.write_eof()
        await client.done
        server.close()
        await server.wait_closed()
        return client.events

    assert run(loop, main()) == [("made",), ("data", b"bytes"), ("eof",), ("lost", None)]


def test_connecting_to_a_closed_port_raises_connection_refused(loop):
    """create_connection, open_connection, sock_connect to a closed port: ConnectionRefusedError."""
    async def main():
        port = closed_port()
        with pytest.raises(ConnectionRefusedError):
            await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        with socket.socket() as raw:
            raw.setblocking(False)
            with pytest.raises(ConnectionRefusedError):
                await loop.sock_connect(raw, ("127.0.0.1", port))

    run(loop, main())


def test_listening_on_a_port_in_use_raises_address_in_use(loop):
    """create_server on a port another socket listens on raises OSError(EADDRINUSE)."""
    async def main():
        server = await loop.create_server(Echo, "127.0.0.1", 0)
        try:
            with pytest.raises(OSError) as failure:
                await loop.create_server(Echo, "127.0.0.1", port_of(server))
            return failure.value.errno
        finally:
            server.close()
            await server.wait_closed()

    assert run(loop, main()) == errno.EADDRINUSE


def test_bad_callbacks_and_signals_are_refused(loop):
    """A coroutine function as callback: TypeError; SIGKILL: RuntimeError; NSIG+1: ValueError."""
    async def coroutine_function():
        pass

    loop.set_debug(True)                             # asyncio checks call_soon's in debug mode
    with pytest.raises(TypeError):
        loop.call_soon(coroutine_function)
    with pytest.raises(TypeError):
        loop.add_signal_handler(signal.SIGUSR2, coroutine_function)
    with pytest.raises(RuntimeError):
        loop.add_signal_handler(signal.SIGKILL, lambda: None)
    with pytest.raises(ValueError):
        loop.add_signal_handler(signal.NSIG + 1, lambda: None)
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL


def test_run_until_complete_inside_the_running_loop_raises(loop):
    """The running loop refuses run_until_complete and run_forever with RuntimeError."""
    async def main():
        never = asyncio.sleep(0)
        try:
            with pytest.raises(RuntimeError):
                loop.run_until_complete(never)
            with pytest.raises(RuntimeError):
                loop.run_forever()
        finally:
            never.close()
        return loop.is_running()

    assert run(loop, main()) is True


def test_a_closed_loop_refuses_work(loop):
    """After close(), call_soon, call_later, create_task, run_until_complete raise RuntimeError."""
    loop.close()
    loop.close()                                     # idempotent
    never = asyncio.sleep(0)
    try:
        for attempt in (lambda: loop.call_soon(print), lambda: loop.call_later(1, print),
                        lambda: loop.create_task(never), lambda: loop.run_until_complete(never)):
            with pytest.raises(RuntimeError):
                attempt()
    finally:
        never.close()
    assert loop.is_closed()


# -- the documentation's programs ---------------------------------------------------

def doc_examples():
    """Return ``[(name, code, expected_stdout)]``: docs/ASYNC.md's programs and the README's."""
    with open(os.path.join(ROOT, "docs", "ASYNC.md"), encoding="utf-8") as page:
        found = [(name, code, printed.strip("\n"))
                 for name, code, printed in DOC_EXAMPLE.findall(page.read())]
    lines = section(read_readme(), "async/await")
    start = lines.index(".. code-block:: python")
    code, end = indented_block(lines, start + 1)
    printed, _ = indented_block(lines, lines.index("It prints::", end) + 1)
    return found + [(code.splitlines()[0].split(": ")[1], code, printed)]


DOC_EXAMPLES = doc_examples()


def test_the_docs_show_their_programs():
    """docs/ASYNC.md shows streams, aiohttp and mixing; the README its own short program."""
    assert [name for name, _, _ in DOC_EXAMPLES] == ["streams", "aiohttp", "mixing", "readme"]


@pytest.mark.parametrize("name,code,expected", DOC_EXAMPLES, ids=[e[0] for e in DOC_EXAMPLES])
def test_doc_example_runs_alone_and_prints_what_the_docs_show(name, code, expected, tmp_path):
    """Each program of docs/ASYNC.md and the README runs alone and prints exactly its output."""
    if "aiohttp" in code:
        pytest.importorskip("aiohttp", reason="aiohttp is optional (third-party)")
    script = tmp_path / ("example_%s.py" % name)     # never "aiohttp.py"
    script.write_text(code + "\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("REACTOR_DEBUG", None)
    result = subprocess.run([sys.executable, "-X", "dev", str(script)], cwd=str(tmp_path),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=30, universal_newlines=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip("\n") == expected
    assert "Warning" not in result.stderr, result.stderr     # no unclosed socket or loop
