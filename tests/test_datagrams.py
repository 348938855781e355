"""Datagram transports: UDP over IPv4 and IPv6, Unix datagrams, limits and errors."""

import os
import random
import socket
import time

import pytest

from reactor import DatagramProtocol, DatagramTooLargeError, Limits, TransportClosedError
from reactor.apps.echo import DatagramEchoProtocol

from .support.loops import run_until
from .support.peers import free_port, has_ipv6_loopback
from .support.recorders import random_payload


class Collector(DatagramProtocol):
    """Records datagrams, errors and lifecycle events."""

    def __init__(self):
        self.datagrams = []
        self.errors = []
        self.events = []

    def connection_made(self, transport):
        super().connection_made(transport)
        self.events.append("made")

    def datagram_received(self, data, addr):
        self.datagrams.append((data, addr))

    def error_received(self, exc):
        self.errors.append(exc)

    def pause_writing(self):
        self.events.append("pause_writing")

    def resume_writing(self):
        self.events.append("resume_writing")

    def connection_lost(self, exc):
        self.events.append(("lost", exc))


class WindowedSender(Collector):
    """Sends numbered datagrams of the given sizes, keeping a byte window in flight,
    and checks each echo against what it sent."""

    def __init__(self, sizes, seed, window_bytes=96 * 1024):
        super().__init__()
        self.rng = random.Random(seed)
        self.sizes = sizes
        self.window_bytes = window_bytes
        self.next_index = 0
        self.outstanding = {}
        self.in_flight = 0
        self.verified = 0
        self.bad = []

    def connection_made(self, transport):
        super().connection_made(transport)
        self.fill()

    def fill(self):
        while self.next_index < len(self.sizes):
            size = self.sizes[self.next_index]
            if self.outstanding and self.in_flight + size > self.window_bytes:
                return
            noise = random_payload(size - 8, self.rng.getrandbits(32))
            body = self.next_index.to_bytes(8, "big") + noise
            self.outstanding[self.next_index] = body
            self.in_flight += size
            self.transport.sendto(body)
            self.next_index += 1

    def datagram_received(self, data, addr):
        index = int.from_bytes(data[:8], "big")
        expected = self.outstanding.pop(index, None)
        if expected != data:
            self.bad.append(index)
        else:
            self.verified += 1
            self.in_flight -= len(data)
        self.fill()


def mixed_sizes(count, seed):
    rng = random.Random(seed)
    sizes = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.70:
            sizes.append(rng.randint(8, 1400))
        elif roll < 0.95:
            sizes.append(rng.randint(1401, 16384))
        else:
            sizes.append(rng.randint(16385, 65507))
    sizes[0], sizes[1] = 65507, 8                 # the extremes, always
    return sizes


def test_10000_mixed_datagrams_echo_whole(loop):
    """10,000 datagrams from 8 B to 65,507 B come back whole and unchanged."""
    server = loop.listen_udp(DatagramEchoProtocol, "127.0.0.1", 0)
    port = server.get_extra_info("sockname")[1]
    sender = WindowedSender(mixed_sizes(10000, seed=5), seed=5)
    client = loop.connect_udp(lambda: sender, "127.0.0.1", port)
    run_until(loop, lambda: sender.verified + len(sender.bad) == 10000, timeout=120)
    assert sender.bad == [] and sender.errors == []
    assert server.stats()["received"] == 10000 and server.stats()["dropped"] == 0
    client.close()
    server.close()
    run_until(loop, lambda: ("lost", None) in sender.events)


def test_connected_client_to_closed_port_gets_error_received(loop):
    """ICMP port unreachable reaches error_received as ConnectionRefusedError; nothing raises."""
    collector = Collector()
    transport = loop.connect_udp(lambda: collector, "127.0.0.1", free_port())
    transport.sendto(b"anyone there?")
    deadline = time.monotonic() + 5
    while not collector.errors and time.monotonic() < deadline:
        loop.run_once(0.05)
        if not collector.errors:
            try:
                transport.sendto(b"again")
            except TransportClosedError:
                break
    assert collector.errors, "no error reported"
    assert isinstance(collector.errors[0], ConnectionRefusedError)
    assert not transport.is_closing()
    transport.close()


def stalled_unix_peer(tmp_path, name="sink.sock"):
    """A Unix datagram socket that does not read: its sender soon gets EAGAIN.

    UDP on Linux loopback never reports EAGAIN, whatever SO_SNDBUF says (the
    receiver takes or drops each datagram at once), so the transport's queue
    is exercised against a Unix datagram peer: the same code path.
    """
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(tmp_path / name))
    return sink


def drain(sock):
    sock.setblocking(False)
    got = []
    try:
        while True:
            got.append(sock.recv(70000))
    except BlockingIOError:
        pass
    return got


def test_send_queue_is_bounded_and_drops_are_counted(loop, tmp_path):
    """Under EAGAIN the queue stops at its byte limit; the rest is dropped and counted."""
    limits = Limits(datagram_queue_bytes=20000, high_water_bytes=8000, low_water_bytes=2000)
    sink = stalled_unix_peer(tmp_path)
    collector = Collector()
    try:
        transport = loop.connect_unix_datagram(lambda: collector, str(tmp_path / "sink.sock"),
                                               local_path=str(tmp_path / "me.sock"),
                                               limits=limits)
        for _ in range(500):
            transport.sendto(b"d" * 1000)
        stats = transport.stats()
        assert 0 < stats["queued_bytes"] <= 20000
        assert stats["dropped"] > 0 and stats["dropped_bytes"] == 1000 * stats["dropped"]
        assert stats["sent"] + stats["dropped"] + stats["queued_bytes"] // 1000 == 500
        assert transport.get_extra_info("dropped") == stats["dropped"]
        assert "pause_writing" in collector.events
        received = []
        deadline = time.monotonic() + 5
        while transport.get_write_buffer_size() and time.monotonic() < deadline:
            received += drain(sink)
            loop.run_once(0.01)
        received += drain(sink)
        assert transport.get_write_buffer_size() == 0
        assert collector.events[-1] == "resume_writing"
        assert len(received) == 500 - stats["dropped"]
        transport.close()
    finally:
        sink.close()


def test_oversized_and_misaddressed_datagrams_raise(loop):
    """65,508 B over IPv4 raises DatagramTooLargeError; bad addresses raise ValueError."""
    server = loop.listen_udp(Collector, "127.0.0.1", 0)
    client = loop.connect_udp(Collector, "127.0.0.1", server.get_extra_info("sockname")[1])
    with pytest.raises(DatagramTooLargeError, match="65508 bytes exceeds the 65507"):
        client.sendto(b"x" * 65508)
    with pytest.raises(ValueError, match="connected"):
        client.sendto(b"x", ("127.0.0.1", 9))
    with pytest.raises(ValueError, match="needs an address"):
        server.sendto(b"x")
    client.sendto(b"x" * 65507)
    run_until(loop, lambda: server.get_protocol().datagrams)
    assert len(server.get_protocol().datagrams[0][0]) == 65507
    client.close()
    with pytest.raises(TransportClosedError):
        client.sendto(b"late")
    server.close()


def test_reads_per_event_are_bounded(selector_class):
    """One readiness event delivers at most datagrams_per_event datagrams."""
    from reactor import Reactor
    loop = Reactor(selector=selector_class())
    per_pass = {}

    class Counter(Collector):
        def datagram_received(self, data, addr):
            number = loop.stats()["iterations"]
            per_pass[number] = per_pass.get(number, 0) + 1

    try:
        server = loop.listen_udp(Counter, "127.0.0.1", 0, limits=Limits(datagrams_per_event=4))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(40):
                sock.sendto(b"%d" % i, server.get_extra_info("sockname"))
            run_until(loop, lambda: sum(per_pass.values()) == 40)
        assert max(per_pass.values()) <= 4
        server.close()
    finally:
        loop.close()


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no ::1")
def test_ipv6_udp_echo(loop):
    """UDP echo works over ::1 with a 65,527-byte maximum payload."""
    server = loop.listen_udp(DatagramEchoProtocol, "::1", 0)
    collector = Collector()
    client = loop.connect_udp(lambda: collector, "::1", server.get_extra_info("sockname")[1])
    client.sendto(b"over six")
    run_until(loop, lambda: collector.datagrams)
    assert collector.datagrams[0][0] == b"over six"
    with pytest.raises(DatagramTooLargeError):
        client.sendto(b"x" * 65528)
    client.close()
    server.close()


def test_unix_datagram_echo_and_cleanup(loop, tmp_path):
    """Unix datagram sockets echo; the server's socket file is removed on close."""
    path = str(tmp_path / "dgram.sock")
    server = loop.listen_unix_datagram(DatagramEchoProtocol, path)
    collector = Collector()
    client = loop.connect_unix_datagram(lambda: collector, path,
                                        local_path=str(tmp_path / "client.sock"))
    big = os.urandom(100000)                      # larger than any UDP datagram
    client.sendto(b"unix hello")
    client.sendto(big)
    run_until(loop, lambda: len(collector.datagrams) == 2)
    assert [d for d, _ in collector.datagrams] == [b"unix hello", big]
    client.close()
    server.close()
    run_until(loop, lambda: ("lost", None) in collector.events)
    assert not os.path.exists(path) and not os.path.exists(str(tmp_path / "client.sock"))


def test_close_flushes_the_queue_then_loses_once(loop, tmp_path):
    """close() sends what is queued before closing; connection_lost(None) comes exactly once."""
    sink = stalled_unix_peer(tmp_path)
    collector = Collector()
    try:
        transport = loop.connect_unix_datagram(lambda: collector, str(tmp_path / "sink.sock"),
                                               local_path=str(tmp_path / "me.sock"))
        for i in range(50):
            transport.sendto(b"%04d" % i + b"q" * 996)
        assert transport.get_write_buffer_size() > 0, "nothing queued: the test needs EAGAIN"
        transport.close()
        transport.close()
        got = []
        deadline = time.monotonic() + 5
        while not (collector.events and collector.events[-1] == ("lost", None)):
            assert time.monotonic() < deadline
            got += [datagram[:4] for datagram in drain(sink)]
            loop.run_once(0.01)
        got += [datagram[:4] for datagram in drain(sink)]
        assert [e for e in collector.events if isinstance(e, tuple)] == [("lost", None)]
        assert got == [b"%04d" % i for i in range(50)]
    finally:
        sink.close()
