"""One failure policy: a protocol callback that raises is logged, counted, and ends that connection."""

import logging
import socket

import pytest

import reactor
from reactor import FramedProtocol, Limits, Protocol
from reactor.framing import LineFramer

from .support.certs import client_ctx, server_ctx
from .support.loops import run_until
from .support.peers import Peer

class Boom(Exception):
    """The bug in the protocol under test."""


class Faulty(Protocol):
    """Raises Boom from the callback named ``where``; records how the connection ended."""

    lost = []

    def __init__(self, where):
        self.where = where
        self.received = bytearray()

    def connection_made(self, transport):
        super().connection_made(transport)
        if self.where == "connection_made":
            raise Boom("in connection_made")

    def data_received(self, data):
        self.received += data
        if self.where == "data_received":
            raise Boom("in data_received")
        self.transport.write(data)

    def eof_received(self):
        if self.where == "eof_received":
            raise Boom("in eof_received")
        return False

    def connection_lost(self, exc):
        Faulty.lost.append(exc)


@pytest.fixture(autouse=True)
def fresh_records():
    Faulty.lost = []
    yield


def peer(loop, server):
    return Peer(loop, server.addresses[0][:2])


@pytest.mark.parametrize("where", ["connection_made", "data_received", "eof_received"])
def test_a_raising_callback_ends_its_connection_with_the_exception(loop, where, caplog):
    """The connection whose callback raised is closed (the peer is not left waiting),
    connection_lost gets the exception, the server counts it, and the log names method and peer."""
    server = loop.listen_tcp(lambda: Faulty(where), "127.0.0.1", 0)
    client = peer(loop, server)
    try:
        with caplog.at_level(logging.ERROR, logger="reactor"):
            run_until(loop, lambda: len(server) == 1 or Faulty.lost)
            client.send(b"ping")
            if where == "eof_received":
                run_until(loop, lambda: server.stats()["bytes_in"] == 4)
                client.shutdown_write()
            client.wait_closed()                  # EOF or reset: the peer is not left waiting
        run_until(loop, lambda: Faulty.lost)
        assert len(Faulty.lost) == 1 and isinstance(Faulty.lost[0], Boom)
        assert server.stats()["callback_errors"] == 1
        assert "Faulty.%s raised Boom" % where in caplog.text
        assert "closing the connection to 127.0.0.1:" in caplog.text
        assert len(server) == 0
    finally:
        client.close()
        server.close()


def test_other_connections_carry_on_after_one_raised(loop):
    """One connection's bug costs nothing else: a second connection is served before and after."""
    server = loop.listen_tcp(lambda: Faulty("data_received" if not Faulty.lost and
                                            len(server) == 0 else "none"), "127.0.0.1", 0)
    bad = peer(loop, server)
    run_until(loop, lambda: len(server) == 1)
    good = peer(loop, server)
    run_until(loop, lambda: len(server) == 2)
    try:
        bad.send(b"x")
        bad.wait_closed()
        assert good.exchange(b"still here") == b"still here"
        assert server.stats()["callback_errors"] == 1
    finally:
        bad.close()
        good.close()
        server.close()


class FailsOnA(FramedProtocol):
    """The first-user report's repro: frame b"a" raises, the frames after it must not be
    processed on a connection that stays open."""

    framer = LineFramer()
    seen = []

    def frame_received(self, frame):
        FailsOnA.seen.append(bytes(frame))
        if frame == b"a":
            raise Boom("bad a")
        self.send_frame(b"got " + bytes(frame))

    def connection_lost(self, exc):
        FailsOnA.seen.append(("lost", type(exc).__name__))


def test_a_raising_frame_ends_the_connection_instead_of_dropping_frames(loop):
    """b"a\\nb\\nc\\n" with frame a raising: the connection ends with Boom; b and c are not
    silently skipped on a connection that goes on answering."""
    FailsOnA.seen = []
    server = loop.listen_tcp(FailsOnA, "127.0.0.1", 0)
    client = peer(loop, server)
    try:
        run_until(loop, lambda: len(server) == 1)
        client.send(b"a\nb\nc\n")
        client.wait_closed()
        run_until(loop, lambda: ("lost", "Boom") in FailsOnA.seen)
        assert client.received == b""
        assert FailsOnA.seen == [b"a", ("lost", "Boom")]
        assert server.stats()["callback_errors"] == 1
    finally:
        client.close()
        server.close()


class Broadcaster(Protocol):
    """Writes everything it receives to every connection of the server (the chat pattern)."""

    server = None

    def data_received(self, data):
        for transport in Broadcaster.server.connections():
            if transport is not self.transport:
                transport.write(data)


class PausesBadly(Protocol):
    """A member whose pause_writing raises."""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        transport.set_write_buffer_limits(high=16, low=0)

    def pause_writing(self):
        raise Boom("in pause_writing")

    def connection_lost(self, exc):
        Faulty.lost.append(exc)


def test_a_raising_pause_writing_ends_only_that_connection(loop):
    """pause_writing runs inside another connection's write (a broadcast): only the connection
    whose pause_writing raised ends; the broadcaster is unharmed."""
    factories = [Broadcaster, PausesBadly]
    server = loop.listen_tcp(lambda: factories.pop(0)(), "127.0.0.1", 0)
    Broadcaster.server = server
    sender = peer(loop, server)
    run_until(loop, lambda: len(server) == 1)
    member = peer(loop, server)
    member.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    run_until(loop, lambda: len(server) == 2)
    try:
        for _ in range(200):
            if Faulty.lost:
                break
            sender.sock.send(b"y" * 4096)       # the member never reads: no pumping it
            loop.run_once(0.01)
        run_until(loop, lambda: Faulty.lost)
        assert isinstance(Faulty.lost[0], Boom)
        assert len(server) == 1                     # the broadcaster is still connected
        assert server.stats()["callback_errors"] == 1
    finally:
        sender.close()
        member.close()
        server.close()


class Collector(reactor.DatagramProtocol):
    def __init__(self):
        self.received = []
        self.lost = "open"

    def datagram_received(self, data, addr):
        if data == b"bad":
            raise Boom("bad datagram")
        self.received.append(data)

    def connection_lost(self, exc):
        self.lost = exc


def test_a_listening_datagram_socket_survives_a_raising_datagram_received(loop, caplog):
    """A UDP server serves every peer: a datagram whose handler raises is logged and counted,
    and the socket keeps serving (the later datagrams arrive)."""
    transport = loop.listen_udp(Collector, "127.0.0.1", 0)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        address = transport.get_extra_info("sockname")
        with caplog.at_level(logging.ERROR, logger="reactor"):
            for payload in (b"one", b"bad", b"two"):
                sender.sendto(payload, address)
            run_until(loop, lambda: len(transport.get_protocol().received) == 2)
        assert transport.get_protocol().received == [b"one", b"two"]
        assert transport.stats()["callback_errors"] == 1
        assert not transport.is_closing()
        assert "Collector.datagram_received raised Boom" in caplog.text
    finally:
        sender.close()
        transport.close()


def test_a_connected_datagram_socket_ends_with_the_exception(loop):
    """A connected UDP socket has one peer: a raising datagram_received closes it, and
    connection_lost gets the exception."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    try:
        transport = loop.connect_udp(Collector, "127.0.0.1", peer.getsockname()[1])
        protocol = transport.get_protocol()
        peer.sendto(b"bad", transport.get_extra_info("sockname"))
        run_until(loop, lambda: protocol.lost != "open")
        assert isinstance(protocol.lost, Boom)
        assert transport.is_closing() and transport.get_protocol() is None
    finally:
        peer.close()


def tls_pair():
    return server_ctx(), client_ctx()


class Sender(Protocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"hello")


@pytest.mark.parametrize("stack", ["tls", "guard", "tls+guard"])
def test_the_policy_holds_under_layers(loop, stack):
    """Under TLS and the guard, a raising data_received ends the connection the same way."""
    server_ctx, client_ctx = tls_pair()
    options = {}
    if "tls" in stack:
        options["ssl"] = server_ctx
    if "guard" in stack:
        options["limits"] = Limits(idle_timeout_seconds=300)
    server = loop.listen_tcp(lambda: Faulty("data_received"), "127.0.0.1", 0, **options)
    connector = loop.connect_tcp(Sender, "127.0.0.1", server.addresses[0][1],
                                 ssl=client_ctx if "tls" in stack else None,
                                 server_hostname="localhost" if "tls" in stack else None)
    try:
        run_until(loop, lambda: Faulty.lost)
        assert isinstance(Faulty.lost[0], Boom)
        assert server.stats()["callback_errors"] == 1
        run_until(loop, lambda: len(server) == 0)
    finally:
        if connector.transport is not None:
            connector.transport.abort()
        server.close()


class PausedThenRaises(Protocol):
    """Pauses reading at once; raises on the data TLS delivers after resume_reading."""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.pause_reading()
        transport.loop.call_later(0.05, transport.resume_reading)

    def data_received(self, data):
        raise Boom("after resume")

    def connection_lost(self, exc):
        Faulty.lost.append(exc)


def test_data_delivered_in_a_later_pass_is_under_the_policy_too(loop):
    """TLS delivers already-decrypted data after resume_reading in a later pass; a raise
    there still ends that connection with the exception (not just a log line)."""
    server_ctx, client_ctx = tls_pair()
    server = loop.listen_tcp(PausedThenRaises, "127.0.0.1", 0, ssl=server_ctx)
    connector = loop.connect_tcp(Sender, "127.0.0.1", server.addresses[0][1], ssl=client_ctx,
                                 server_hostname="localhost")
    try:
        run_until(loop, lambda: Faulty.lost)
        assert isinstance(Faulty.lost[0], Boom)
        assert server.stats()["callback_errors"] == 1
    finally:
        if connector.transport is not None:
            connector.transport.abort()
        server.close()


def test_a_custom_exception_handler_sees_the_transport_and_protocol(loop):
    """set_exception_handler receives the failure with the transport and the app protocol."""
    contexts = []
    loop.set_exception_handler(lambda loop_, context: contexts.append(context))
    server = loop.listen_tcp(lambda: Faulty("data_received"), "127.0.0.1", 0)
    client = peer(loop, server)
    try:
        run_until(loop, lambda: len(server) == 1)
        client.send(b"z")
        run_until(loop, lambda: contexts)
        context = contexts[0]
        assert isinstance(context["exception"], Boom)
        assert isinstance(context["protocol"], Faulty)
        assert context["transport"].get_extra_info("peername") == client.sock.getsockname()
    finally:
        client.close()
        server.close()


class HalfCloser(Protocol):
    """A member that will send EOF; records its transport."""

    transports = []

    def connection_made(self, transport):
        super().connection_made(transport)
        HalfCloser.transports.append(transport)


def test_a_write_to_a_connection_the_peer_ended_is_dropped_not_raised(loop):
    """Once the peer's EOF closed a connection, a broadcast write to it is dropped quietly:
    only close(), abort() and write_eof() called by the app make write() raise."""
    HalfCloser.transports = []
    server = loop.listen_tcp(HalfCloser, "127.0.0.1", 0)
    client = peer(loop, server)
    try:
        run_until(loop, lambda: HalfCloser.transports)
        client.shutdown_write()
        transport = HalfCloser.transports[0]
        run_until(loop, transport.is_closing)
        transport.write(b"after the peer's EOF")          # must not raise
        transport.close()
        with pytest.raises(reactor.TransportClosedError, match="after close"):
            transport.write(b"after the app's own close()")
    finally:
        client.close()
        server.close()
