"""Stream transports (TCP) on real loopback sockets: echo, the send and receive paths, closing."""

import random
import socket
import time

import pytest

from reactor import Limits, Reactor, TransportClosedError
from reactor.apps.echo import EchoProtocol

from .support.loops import run_passes, run_until
from .support.peers import Peer
from .support.recorders import Recorder, StreamingClient, random_payload


def peer_of(loop, server):
    """A raw client of ``server``'s first address."""
    return Peer(loop, server.addresses[0][:2])


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
    # Only the sender's buffer is small: a tiny receive window as well
    # would make TCP crawl through zero-window probes (persist timer).
    with peer_of(loop, server) as peer:
        peer.wait_closed(timeout=30)
    assert max(buffered) > 0, "the kernel took everything at once: no partial send tested"
    assert peer.received == payload
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
    with peer_of(loop, server) as peer:
        peer.wait_closed(timeout=30)
    assert peer.received == b"a" * 300000 + b"b" * 300000
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
    with peer_of(loop, server) as peer:
        sock = peer.sock
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
    with peer_of(loop, server) as peer:
        run_until(loop, lambda: protocol.transport is not None)
        transport = protocol.transport
        transport.set_write_buffer_limits(high=1000, low=100)
        assert transport.get_write_buffer_limits() == (100, 1000)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        while transport.get_write_buffer_size() <= 1000:
            transport.write(b"z" * 5000)
        assert protocol.events[-1] == ("pause_writing",)
        peer.wait(lambda: ("resume_writing",) in protocol.events)
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
        with peer_of(loop, server) as peer:
            peer.send(b"q" * 200000)
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
    with peer_of(loop, server) as peer:
        run_until(loop, lambda: protocol.transport is not None)
        protocol.transport.pause_reading()
        assert not protocol.transport.is_reading()
        peer.send(b"held back")
        run_passes(loop, 10, 0.01)
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
    with peer_of(loop, server) as peer:
        peer.send(payload)
        peer.shutdown_write()
        peer.wait(lambda: peer.closed and protocols and protocols[0].lost())
    assert peer.received == payload
    assert protocols[0].events == [("made",), ("eof",), ("lost", None)]
    server.close()


def test_eof_received_true_keeps_our_side_open(loop):
    """After the peer's EOF, a protocol returning True can still send; write_eof then closes."""
    protocol = Recorder(keep_open_on_eof=True)
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    with peer_of(loop, server) as peer:
        peer.shutdown_write()
        run_until(loop, lambda: ("eof",) in protocol.events)
        protocol.transport.write(b"still talking")
        protocol.transport.write_eof()
        with pytest.raises(TransportClosedError):
            protocol.transport.write(b"too late")
        run_until(loop, protocol.lost)
        peer.wait_closed()
        assert peer.received == b"still talking"
    assert protocol.events == [("made",), ("eof",), ("lost", None)]
    server.close()


def test_close_flushes_and_abort_drops(loop):
    """close() delivers queued bytes before closing; abort() drops them; each loses once."""
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Recorder()) or protocols[-1],
                             "127.0.0.1", 0)
    with peer_of(loop, server) as polite, peer_of(loop, server) as rude:
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
        polite.wait(lambda: polite.closed and first.lost() and second.lost(), timeout=30)
        assert polite.received == b"p" * 500000
        rude.wait_closed()
        assert len(rude.received) < 500000
    assert first.events == [("made",), ("pause_writing",), ("resume_writing",), ("lost", None)]
    assert second.events == [("made",), ("pause_writing",), ("lost", None)]
    server.close()


def test_peer_reset_mid_stream_ends_one_connection(loop):
    """An RST (SO_LINGER 0) gives connection_lost a ConnectionError once; others keep working."""
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Recorder(echo=True)) or protocols[-1],
                             "127.0.0.1", 0)
    bystander = peer_of(loop, server)
    victim = peer_of(loop, server)
    try:
        run_until(loop, lambda: len(protocols) == 2)
        victim.send(b"x" * 100000)
        victim.reset()
        run_until(loop, lambda: protocols[1].lost())
        kind = protocols[1].events[-1][1]
        assert kind in ("ConnectionResetError", "BrokenPipeError"), protocols[1].events
        assert [e for e in protocols[1].events if e[0] == "lost"] == [protocols[1].events[-1]]
        assert bystander.exchange(b"still here") == b"still here"
        assert bytes(protocols[0].received) == b"still here"
    finally:
        bystander.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_write_after_peer_vanished_is_dropped_not_raised(loop):
    """Writing after the peer reset us drops the data quietly; connection_lost already waits."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    peer = peer_of(loop, server)
    run_until(loop, lambda: protocol.transport is not None)
    peer.reset()
    for _ in range(500):
        if protocol.transport.is_closing():
            break
        protocol.transport.write(b"into the void" * 1000)
        loop.run_once(0.01)
    protocol.transport.write(b"once more")
    run_until(loop, protocol.lost)
    assert [e[0] for e in protocol.events] == ["made", "lost"]
    server.close()


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
    with peer_of(loop, server) as peer:
        peer.wait_closed(timeout=30)
    assert peer.received == piece * rounds
    server.close()


def test_extra_info_and_nodelay(loop):
    """Transports report peername, sockname and socket; TCP streams have TCP_NODELAY on."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0)
    with peer_of(loop, server) as peer:
        run_until(loop, lambda: protocol.transport is not None)
        transport = protocol.transport
        assert transport.get_extra_info("peername") == peer.sock.getsockname()
        assert transport.get_extra_info("sockname") == peer.sock.getpeername()
        raw = transport.get_extra_info("socket")
        assert raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert transport.get_extra_info("nonsense", "default") == "default"
        transport.close()
    run_until(loop, protocol.lost)
    server.close()
