"""Stream transports, servers and clients on real loopback sockets."""

import errno
import logging
import random
import socket
import struct
import threading
import time

import pytest

from reactor import (ConnectError, ConnectRefusedError, ConnectTimeoutError, Limits, Reactor,
                     TransportClosedError)
from reactor.apps.echo import EchoProtocol

from .conftest import run_until
from .streams_helpers import (Recorder, StreamingClient, free_port, has_ipv6_loopback,
                              random_payload)


def connect_raw(server, timeout=5.0):
    """A blocking client socket connected to the server's first address."""
    host, port = server.addresses[0][:2]
    return socket.create_connection((host, port), timeout=timeout)


def exchange(loop, sock, data, timeout=5.0):
    """Send ``data`` on a raw client socket and run the loop until as many bytes come back."""
    sock.sendall(data)
    sock.setblocking(False)
    reply = b""
    deadline = time.monotonic() + timeout
    while len(reply) < len(data):
        assert time.monotonic() < deadline, "no echo within %.1f s (got %r)" % (timeout, reply)
        loop.run_once(0.01)
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        reply += chunk
    sock.setblocking(True)
    return reply


def recv_until_eof(sock, limit=1 << 26):
    chunks = []
    total = 0
    while total < limit:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)


# -- echo, every selector ------------------------------------------------------

def test_echo_round_trip_on_every_selector(loop):
    """A client and server on the same loop echo bytes and close cleanly, on each selector."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    client = Recorder()
    connector = loop.connect_tcp(lambda: client, "127.0.0.1", server.addresses[0][1])
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"hello, ")
    client.transport.writelines([b"reactor", b"!"])
    run_until(loop, lambda: len(client.received) == 15)
    client.transport.close()
    run_until(loop, lambda: client.lost() and len(server) == 0)
    assert bytes(client.received) == b"hello, reactor!"
    assert client.events == [("made",), ("lost", None)]
    assert connector.done() and connector.transport is client.transport
    server.close()


def test_500_connections_echo_1_mib_each_byte_for_byte():
    """500 concurrent clients each stream 1 MiB in random writes; every byte comes back in order."""
    loop = Reactor()
    try:
        server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
        port = server.addresses[0][1]
        pool = random_payload(2 << 20, seed=500)
        finished = []
        clients = []
        for i in range(500):
            offset = (i * 4099) % (1 << 20)
            client = StreamingClient(memoryview(pool)[offset:offset + (1 << 20)],
                                     random.Random(i), finished)
            clients.append(client)
            loop.connect_tcp(lambda c=client: c, "127.0.0.1", port)
        run_until(loop, lambda: len(finished) == 500, timeout=120)
        for i, client in enumerate(clients):
            assert client.mismatch is None, "client %d: first bad byte at %d" % (i, client.mismatch)
            assert client.checked == 1 << 20, (i, client.checked)
            assert client.lost_with is None
        run_until(loop, lambda: len(server) == 0)
        assert server.stats()["accepted"] == 500
        server.close()
    finally:
        loop.close()


# -- the send path -----------------------------------------------------------

def test_partial_sends_lose_and_reorder_nothing(loop):
    """With a tiny SO_SNDBUF, 4 MiB written in odd pieces arrives intact and in order."""
    payload = random_payload(4 << 20, seed=4)
    buffered = []

    class Sender(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                          socket.SO_SNDBUF, 4096)
            rng = random.Random(4)
            position = 0
            while position < len(payload):
                size = rng.choice([1, 7, 1000, 4096, 65537, 300000])
                piece = payload[position:position + size]
                transport.write(bytearray(piece) if rng.random() < 0.3 else piece)
                position += len(piece)
                buffered.append(transport.get_write_buffer_size())
            transport.close()

    server = loop.listen_tcp(Sender, "127.0.0.1", 0)
    received = []
    with connect_raw(server) as sock:
        # Only the sender's buffer is small: a tiny receive window as well
        # would make TCP crawl through zero-window probes (persist timer).
        reader = threading.Thread(target=lambda: received.append(recv_until_eof(sock)))
        reader.start()
        run_until(loop, lambda: not reader.is_alive(), timeout=30)
        reader.join(30)
    assert max(buffered) > 0, "the kernel took everything at once: no partial send tested"
    assert received[0] == payload
    server.close()


def test_mutable_buffers_are_copied_when_queued(loop):
    """A bytearray changed after write() does not change the bytes already queued."""
    class Writer(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                          socket.SO_SNDBUF, 4096)
            scratch = bytearray(b"a" * 300000)
            transport.write(scratch)
            assert transport.get_write_buffer_size() > 0
            scratch[:] = b"b" * 300000
            transport.write(scratch)
            transport.close()

    server = loop.listen_tcp(Writer, "127.0.0.1", 0)
    received = []
    with connect_raw(server) as sock:
        reader = threading.Thread(target=lambda: received.append(recv_until_eof(sock)))
        reader.start()
        run_until(loop, lambda: not reader.is_alive(), timeout=30)
    assert received[0] == b"a" * 300000 + b"b" * 300000
    server.close()


def test_client_that_never_reads_cannot_grow_server_memory(loop):
    """An echo client that only sends: the server's buffer stays within high water + one read."""
    limits = Limits(high_water_bytes=64 * 1024, low_water_bytes=16 * 1024)
    biggest = [0]
    protocols = []

    class MeasuringEcho(EchoProtocol):
        def connection_made(self, transport):
            super().connection_made(transport)
            protocols.append(self)

        def data_received(self, data):
            super().data_received(data)
            biggest[0] = max(biggest[0], self.transport.get_write_buffer_size())

    server = loop.listen_tcp(MeasuringEcho, "127.0.0.1", 0, limits=limits)
    with connect_raw(server) as sock:
        sock.setblocking(False)
        chunk = b"x" * 65536
        sent = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                pass
            loop.run_once(0.001)
        transport = protocols[0].transport
        assert not transport.is_reading(), "echo kept reading a client that never reads"
        assert sent > 1 << 20, "client should have pushed well past the kernel buffers"
    assert 0 < biggest[0] <= limits.high_water_bytes + limits.read_chunk_bytes
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_pause_and_resume_writing_follow_the_water_marks(loop):
    """pause_writing fires above the high mark, resume_writing once drained to the low mark."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    with connect_raw(server) as sock:
        run_until(loop, lambda: protocol.transport is not None)
        transport = protocol.transport
        transport.set_write_buffer_limits(high=1000, low=100)
        assert transport.get_write_buffer_limits() == (100, 1000)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        while transport.get_write_buffer_size() <= 1000:
            transport.write(b"z" * 5000)
        assert protocol.events[-1] == ("pause_writing",)
        got = 0
        sock.settimeout(5)
        while ("resume_writing",) not in protocol.events:
            got += len(sock.recv(65536))
            loop.run_once(0.01)
        assert transport.get_write_buffer_size() <= 100
        assert protocol.events == [("made",), ("pause_writing",), ("resume_writing",)]
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=10, low=20)
        transport.abort()
    run_until(loop, protocol.lost)
    server.close()


# -- the receive path ------------------------------------------------------------

def test_reads_per_event_are_bounded(selector_class):
    """One readiness event reads at most max_read_per_event_bytes from a connection."""
    loop = Reactor(selector=selector_class())
    limits = Limits(read_chunk_bytes=4096, max_read_per_event_bytes=8192)
    per_pass = {}

    class Counter(Recorder):
        def data_received(self, data):
            pass_number = loop.stats()["iterations"]
            per_pass[pass_number] = per_pass.get(pass_number, 0) + len(data)

    try:
        server = loop.listen_tcp(Counter, "127.0.0.1", 0, limits=limits)
        with connect_raw(server) as sock:
            sock.sendall(b"q" * 200000)
            run_until(loop, lambda: sum(per_pass.values()) == 200000)
        assert max(per_pass.values()) <= 8192
        assert len(per_pass) >= 200000 // 8192
        server.close()
    finally:
        loop.close()


def test_pause_reading_stops_data_until_resumed(loop):
    """No data_received arrives while reading is paused; all of it arrives after resume."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    with connect_raw(server) as sock:
        run_until(loop, lambda: protocol.transport is not None)
        protocol.transport.pause_reading()
        assert not protocol.transport.is_reading()
        sock.sendall(b"held back")
        for _ in range(10):
            loop.run_once(0.01)
        assert protocol.received == b""
        protocol.transport.resume_reading()
        run_until(loop, lambda: protocol.received == b"held back")
    server.close()


# -- closing ----------------------------------------------------------------------

def test_half_close_echo_returns_everything_then_eof(loop):
    """Client sends then SHUT_WR: the echo returns every byte, then EOF, and closes cleanly."""
    protocols = []

    def factory():
        protocols.append(Recorder(echo=True))
        return protocols[-1]
    server = loop.listen_tcp(factory, "127.0.0.1", 0)
    payload = random_payload(300000, seed=1)
    received = []
    with connect_raw(server) as sock:
        def client():
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received.append(recv_until_eof(sock))
        worker = threading.Thread(target=client)
        worker.start()
        run_until(loop, lambda: not worker.is_alive() and protocols and protocols[0].lost())
        worker.join()
    assert received == [payload]
    assert protocols[0].events == [("made",), ("eof",), ("lost", None)]
    server.close()


def test_eof_received_true_keeps_our_side_open(loop):
    """After the peer's EOF, a protocol returning True can still send; write_eof then closes."""
    protocol = Recorder(keep_open_on_eof=True)
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    with connect_raw(server) as sock:
        sock.shutdown(socket.SHUT_WR)
        run_until(loop, lambda: ("eof",) in protocol.events)
        protocol.transport.write(b"still talking")
        protocol.transport.write_eof()
        with pytest.raises(TransportClosedError):
            protocol.transport.write(b"too late")
        run_until(loop, protocol.lost)
        assert recv_until_eof(sock) == b"still talking"
    assert protocol.events == [("made",), ("eof",), ("lost", None)]
    server.close()


def test_close_flushes_and_abort_drops(loop):
    """close() delivers queued bytes before closing; abort() drops them; each loses once."""
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Recorder()) or protocols[-1],
                             "127.0.0.1", 0)
    with connect_raw(server) as polite, connect_raw(server) as rude:
        run_until(loop, lambda: len(protocols) == 2)
        first, second = protocols
        for protocol in protocols:
            protocol.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            protocol.transport.write(b"p" * 500000)
        first.transport.close()
        first.transport.close()
        second.transport.abort()
        second.transport.abort()
        with pytest.raises(TransportClosedError):
            first.transport.write(b"more")
        received = []
        reader = threading.Thread(target=lambda: received.append(recv_until_eof(polite)))
        reader.start()
        run_until(loop, lambda: first.lost() and second.lost(), timeout=30)
        reader.join(30)
        assert received == [b"p" * 500000]
        rude.settimeout(5)
        try:
            rest = recv_until_eof(rude)
        except ConnectionResetError:
            rest = b""
        assert len(rest) < 500000
    assert first.events == [("made",), ("pause_writing",), ("resume_writing",), ("lost", None)]
    assert second.events == [("made",), ("pause_writing",), ("lost", None)]
    server.close()


def test_peer_reset_mid_stream_ends_one_connection(loop):
    """An RST (SO_LINGER 0) gives connection_lost a ConnectionError once; others keep working."""
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Recorder(echo=True)) or protocols[-1],
                             "127.0.0.1", 0)
    bystander = connect_raw(server)
    victim = connect_raw(server)
    try:
        run_until(loop, lambda: len(protocols) == 2)
        victim.sendall(b"x" * 100000)
        victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        victim.close()
        run_until(loop, lambda: protocols[1].lost())
        kind = protocols[1].events[-1][1]
        assert kind in ("ConnectionResetError", "BrokenPipeError"), protocols[1].events
        assert [e for e in protocols[1].events if e[0] == "lost"] == [protocols[1].events[-1]]
        bystander.sendall(b"still here")
        run_until(loop, lambda: bytes(protocols[0].received) == b"still here")
        assert bystander.recv(100) == b"still here"
    finally:
        bystander.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_write_after_peer_vanished_is_dropped_not_raised(loop):
    """Writing after the peer reset us drops the data quietly; connection_lost already waits."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    sock = connect_raw(server)
    run_until(loop, lambda: protocol.transport is not None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    deadline = time.monotonic() + 5
    while not protocol.transport.is_closing() and time.monotonic() < deadline:
        protocol.transport.write(b"into the void" * 1000)
        loop.run_once(0.01)
    protocol.transport.write(b"once more")
    run_until(loop, protocol.lost)
    assert [e[0] for e in protocol.events] == ["made", "lost"]
    server.close()


# -- servers ------------------------------------------------------------------------

def test_max_connections_closes_extra_clients_at_once(loop):
    """Beyond max_connections a client is accepted and closed at once, and counted."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, max_connections=2)
    first, second = connect_raw(server), connect_raw(server)
    try:
        run_until(loop, lambda: len(server) == 2)
        with connect_raw(server) as third:
            run_until(loop, lambda: server.stats()["rejected_max_connections"] == 1)
            third.settimeout(5)
            assert third.recv(10) == b""
        assert exchange(loop, first, b"served") == b"served"
    finally:
        first.close()
        second.close()
    run_until(loop, lambda: len(server) == 0)
    assert server.stats()["peak_connections"] == 2
    server.close()


def test_shutdown_drains_then_aborts_after_grace(loop):
    """shutdown(grace) stops accepting, closes idle peers, aborts a stuck one after the grace."""
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Recorder()) or protocols[-1],
                             "127.0.0.1", 0)
    idle, stuck = connect_raw(server), connect_raw(server)
    try:
        run_until(loop, lambda: len(protocols) == 2)
        stuck_transport = protocols[1].transport
        stuck_transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                            socket.SO_SNDBUF, 4096)
        stuck_transport.write(b"s" * 2000000)
        done = []
        started = time.monotonic()
        server.shutdown(0.2, on_done=lambda: done.append(time.monotonic() - started))
        assert not server.is_serving()
        with pytest.raises(OSError):
            connect_raw(server, timeout=1)
        run_until(loop, lambda: done)
        assert 0.15 <= done[0] < 3.0
        assert protocols[0].events == [("made",), ("lost", None)]
        assert protocols[1].lost()
        assert server.stats()["aborted_at_shutdown"] == 1
    finally:
        idle.close()
        stuck.close()


def test_listen_on_a_busy_port_names_the_address(loop):
    """Binding a port in use raises OSError(EADDRINUSE) whose message names the address."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    port = server.addresses[0][1]
    with pytest.raises(OSError) as info:
        loop.listen_tcp(EchoProtocol, "127.0.0.1", port)
    assert info.value.errno == errno.EADDRINUSE and str(port) in str(info.value)
    server.close()


def test_factory_error_drops_one_connection_and_server_goes_on(loop, caplog):
    """A protocol factory that raises closes that connection, logs it, and serves the next."""
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("factory broke")
        return EchoProtocol()
    server = loop.listen_tcp(flaky, "127.0.0.1", 0)
    with caplog.at_level(logging.ERROR, logger="reactor"):
        with connect_raw(server) as first:
            run_until(loop, lambda: calls)
            assert first.recv(10) == b""
    with connect_raw(server) as second:
        assert exchange(loop, second, b"ok") == b"ok"
    assert any("factory broke" in r.getMessage() for r in caplog.records)
    run_until(loop, lambda: len(server) == 0)
    server.close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no ::1")
def test_ipv6_echo(loop):
    """Listening and connecting on ::1 work like IPv4."""
    server = loop.listen_tcp(EchoProtocol, "::1", 0)
    client = Recorder()
    loop.connect_tcp(lambda: client, "::1", server.addresses[0][1])
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"six")
    run_until(loop, lambda: client.received == b"six")
    assert client.transport.get_extra_info("peername")[0] == "::1"
    client.transport.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_extra_info_and_nodelay(loop):
    """Transports report peername, sockname and socket; TCP streams have TCP_NODELAY on."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    with connect_raw(server) as sock:
        run_until(loop, lambda: protocol.transport is not None)
        transport = protocol.transport
        assert transport.get_extra_info("peername") == sock.getsockname()
        assert transport.get_extra_info("sockname") == sock.getpeername()
        raw = transport.get_extra_info("socket")
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert transport.get_extra_info("nonsense", "default") == "default"
        transport.close()
    run_until(loop, protocol.lost)
    server.close()


# -- clients -------------------------------------------------------------------------

def test_connect_refused_is_a_specific_error(loop):
    """Connecting where nothing listens calls on_error with ConnectRefusedError (errno set)."""
    errors = []
    connector = loop.connect_tcp(Recorder, "127.0.0.1", free_port(), on_error=errors.append)
    run_until(loop, lambda: errors)
    assert isinstance(errors[0], ConnectRefusedError) and isinstance(errors[0], ConnectionError)
    assert errors[0].errno == errno.ECONNREFUSED and "refused" in str(errors[0])
    assert connector.done() and connector.error is errors[0]


def test_connect_timeout_is_a_specific_error(loop):
    """A connect that never completes (listener backlog full) fails with ConnectTimeoutError."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        errors = []
        started = time.monotonic()
        loop.connect_tcp(Recorder, "127.0.0.1", port, timeout=0.3, on_error=errors.append)
        run_until(loop, lambda: errors, timeout=10)
        assert isinstance(errors[0], ConnectTimeoutError), errors
        assert errors[0].errno == errno.ETIMEDOUT and "timed out" in str(errors[0])
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_host_names_resolve_off_the_loop_thread(loop):
    """connect_tcp('localhost') resolves on a worker thread while the loop keeps running."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0)
    client = Recorder()
    threads_seen = []
    original = socket.getaddrinfo

    def spying_getaddrinfo(*args, **kwargs):
        threads_seen.append(threading.current_thread().name)
        return original(*args, **kwargs)
    socket.getaddrinfo = spying_getaddrinfo
    try:
        loop.connect_tcp(lambda: client, "localhost", server.addresses[0][1], timeout=5)
        run_until(loop, lambda: client.transport is not None or client.events)
    finally:
        socket.getaddrinfo = original
    assert any(name.startswith("reactor-resolver") for name in threads_seen), threads_seen
    client.transport.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_cancelled_connect_calls_nothing(loop):
    """cancel() on a pending connect closes its socket; neither the protocol nor on_error runs."""
    made = []
    errors = []
    connector = loop.connect_tcp(lambda: made.append(1) or Recorder(), "127.0.0.1", free_port(),
                                 on_error=errors.append)
    connector.cancel()
    for _ in range(5):
        loop.run_once(0.01)
    assert made == [] and errors == [] and connector.done()


def test_connect_error_types_are_oserrors_with_errno():
    """The connect errors are OSError/ConnectionError subclasses, usable with errno checks."""
    assert issubclass(ConnectRefusedError, ConnectionRefusedError)
    assert issubclass(ConnectTimeoutError, TimeoutError)
    assert issubclass(ConnectError, OSError)


def test_writes_from_resume_writing_are_never_lost(loop):
    """A protocol that writes inside resume_writing (low mark 0: fully drained) loses no bytes."""
    rounds = 20
    piece = b"r" * 200000

    class Producer(Recorder):
        def connection_made(self, transport):
            super().connection_made(transport)
            transport.set_write_buffer_limits(high=1000, low=0)
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                          socket.SO_SNDBUF, 4096)
            self.rounds = 1
            transport.write(piece)

        def resume_writing(self):
            super().resume_writing()
            if self.rounds < rounds:
                self.rounds += 1
                self.transport.write(piece)
            else:
                self.transport.close()

    server = loop.listen_tcp(Producer, "127.0.0.1", 0)
    received = []
    with connect_raw(server) as sock:
        reader = threading.Thread(target=lambda: received.append(recv_until_eof(sock)))
        reader.start()
        run_until(loop, lambda: not reader.is_alive(), timeout=30)
    assert len(received[0]) == rounds * len(piece)
    server.close()
