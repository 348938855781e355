"""Arguments are checked when listen_*/connect_* are called, and client Limits apply or are refused."""

import socket

import pytest

import reactor
from reactor import (FakeClock, FirstFrameTimeoutError, IdleTimeoutError, InvalidAddressError,
                     InvalidDelayError, Limits, NotCallableError, Protocol, Rate)

from .support.loops import run_until

BAD_PORTS = [65536, 83536, -1, "8080", 1.5, True, None]


class Quiet(Protocol):
    """Says nothing; records how its connection ended."""

    def __init__(self):
        self.lost = "open"

    def connection_lost(self, exc):
        self.lost = exc


@pytest.mark.parametrize("port", BAD_PORTS, ids=repr)
def test_listen_tcp_refuses_ports_outside_0_to_65535(loop, port):
    """listen_tcp refuses a port that is not an int in 0-65535 instead of wrapping it (83536 != 18000)."""
    with pytest.raises(InvalidAddressError, match="listen_tcp: port must be an int in 0-65535"):
        loop.listen_tcp(Protocol, "127.0.0.1", port)
    assert loop.stats()["fds"] == 1               # only the wake-up socket: nothing was bound


@pytest.mark.parametrize("port", BAD_PORTS, ids=repr)
def test_listen_udp_refuses_bad_ports(loop, port):
    """listen_udp refuses the same ports with the same error."""
    with pytest.raises(InvalidAddressError, match="listen_udp: port must be an int in 0-65535"):
        loop.listen_udp(reactor.DatagramProtocol, "127.0.0.1", port)


@pytest.mark.parametrize("port", BAD_PORTS + [0], ids=repr)
def test_connect_calls_refuse_bad_ports_and_port_zero(loop, port):
    """connect_tcp and connect_udp refuse bad ports, and port 0, which names no peer."""
    with pytest.raises(InvalidAddressError, match="connect_tcp: port must be an int in 1-65535"):
        loop.connect_tcp(Protocol, "127.0.0.1", port)
    with pytest.raises(InvalidAddressError, match="connect_udp: port must be an int in 1-65535"):
        loop.connect_udp(reactor.DatagramProtocol, "127.0.0.1", port)


@pytest.mark.parametrize("host", ["", None])
def test_listen_on_empty_or_no_host_means_every_interface(loop, host):
    """host '' and None both listen on every interface (as asyncio does), reachable on 127.0.0.1."""
    server = loop.listen_tcp(Protocol, host, 0)
    try:
        assert any(address[0] in ("0.0.0.0", "::") for address in server.addresses)
        port = server.addresses[0][1]
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            run_until(loop, lambda: len(server) == 1)
    finally:
        server.close()


@pytest.mark.parametrize("host", ["", None, 7])
def test_connect_needs_a_host(loop, host):
    """connect_tcp('') names no peer: it is refused with a message saying what to pass."""
    with pytest.raises(InvalidAddressError, match="connect_tcp: host must be a non-empty string"):
        loop.connect_tcp(Protocol, host, 7000)


def test_listen_udp_names_the_host_it_cannot_resolve(loop):
    """A UDP host that does not resolve is reported with the call and the host, not a bare gaierror."""
    with pytest.raises(InvalidAddressError, match="listen_udp: cannot resolve 'nosuchhost.invalid'"):
        loop.listen_udp(reactor.DatagramProtocol, "nosuchhost.invalid", 0)


@pytest.mark.parametrize("call", ["listen_tcp", "listen_udp", "connect_tcp", "connect_udp"])
def test_a_protocol_instance_is_refused_where_a_factory_belongs(loop, call):
    """Passing Echo() instead of Echo fails at the call, saying to pass the class or a factory."""
    args = {"listen_tcp": ("127.0.0.1", 0), "listen_udp": ("127.0.0.1", 0),
            "connect_tcp": ("127.0.0.1", 9), "connect_udp": ("127.0.0.1", 9)}[call]
    with pytest.raises(NotCallableError, match=r"an instance of Quiet: pass the class Quiet"):
        getattr(loop, call)(Quiet(), *args)
    with pytest.raises(NotCallableError, match="protocol_factory must be"):
        getattr(loop, call)("Quiet", *args)
    assert loop.stats()["fds"] == 1


def test_listen_unix_refuses_an_instance_too(loop, tmp_path):
    """listen_unix checks its factory before binding (no socket file is left behind)."""
    path = str(tmp_path / "s.sock")
    with pytest.raises(NotCallableError):
        loop.listen_unix(Quiet(), path)
    assert not (tmp_path / "s.sock").exists()


def test_delays_of_the_wrong_type_get_a_clear_error(loop):
    """call_later('1', f) raises InvalidDelayError naming the type, not a TypeError about '<='."""
    with pytest.raises(InvalidDelayError, match="delay must be a number of seconds, got str '1'"):
        loop.call_later("1", print)
    with pytest.raises(InvalidDelayError, match="deadline must be a number"):
        loop.call_at("soon", print)
    with pytest.raises(InvalidDelayError, match="interval must be a number"):
        loop.call_every(None, print)


def test_limits_fields_of_the_wrong_type_get_a_clear_error():
    """Limits(max_per_ip='3') and with_changes(...) raise ValueError naming the field."""
    with pytest.raises(ValueError, match="max_per_ip must be a number or None, got str '3'"):
        Limits(max_per_ip="3")
    with pytest.raises(ValueError, match="max_per_ip must be a number or None"):
        Limits().with_changes(max_per_ip="3")
    with pytest.raises(ValueError, match="no_such_field"):
        Limits().with_changes(no_such_field=1)


@pytest.mark.parametrize("field, value", [("max_per_ip", 2), ("max_connections", 5),
                                          ("deny", ("10.0.0.0/8",)), ("backlog", 5),
                                          ("ip_rate_bytes", Rate(100))])
def test_client_limits_refuse_server_only_fields(loop, field, value):
    """connect_tcp/connect_unix refuse Limits fields only a server can enforce, naming them."""
    limits = Limits().with_changes(**{field: value})
    with pytest.raises(ValueError, match="connect_tcp: Limits fields %s apply to servers only"
                       % field):
        loop.connect_tcp(Protocol, "127.0.0.1", 9, limits=limits)
    with pytest.raises(ValueError, match="connect_unix: Limits fields %s" % field):
        loop.connect_unix(Protocol, "/nonexistent.sock", limits=limits)


def test_datagram_sockets_refuse_protections_they_do_not_enforce(loop):
    """listen_udp refuses rate limits and filters rather than silently ignoring them."""
    with pytest.raises(ValueError, match="listen_udp: Limits fields rate_bytes"):
        loop.listen_udp(reactor.DatagramProtocol, "127.0.0.1", 0,
                        limits=Limits(rate_bytes=Rate(1000)))


def connect_client(loop, server_protocol, limits):
    """Connect a Quiet client with ``limits`` to a server of ``server_protocol``; return both ends."""
    server = loop.listen_tcp(server_protocol, "127.0.0.1", 0)
    connector = loop.connect_tcp(Quiet, "127.0.0.1", server.addresses[0][1], limits=limits)
    run_until(loop, lambda: connector.transport is not None and len(server) == 1)
    return server, connector


def test_client_idle_timeout_closes_a_silent_connection(selector_class):
    """connect_tcp(limits=Limits(idle_timeout_seconds=...)) closes the client after that much silence."""
    clock = FakeClock(100.0)
    loop = reactor.Reactor(selector=selector_class(), clock=clock)
    try:
        server, connector = connect_client(loop, Quiet, Limits(idle_timeout_seconds=0.3))
        clock.advance(0.29)
        loop.run_once()
        assert connector.protocol.lost == "open"
        clock.advance(0.02)
        run_until(loop, lambda: connector.protocol.lost != "open")
        assert isinstance(connector.protocol.lost, IdleTimeoutError)
        server.close()
    finally:
        loop.close()


def test_client_first_frame_timeout_closes_when_the_server_says_nothing(selector_class):
    """A client's first_frame_timeout_seconds bounds how long the server may stay silent."""
    clock = FakeClock(100.0)
    loop = reactor.Reactor(selector=selector_class(), clock=clock)
    try:
        server, connector = connect_client(loop, Quiet, Limits(first_frame_timeout_seconds=0.2))
        clock.advance(0.21)
        run_until(loop, lambda: connector.protocol.lost != "open")
        assert isinstance(connector.protocol.lost, FirstFrameTimeoutError)
        server.close()
    finally:
        loop.close()


class Firehose(Protocol):
    """Sends 256 KiB as soon as it connects."""

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"x" * 256 * 1024)


class Counting(Quiet):
    def __init__(self):
        super().__init__()
        self.received = 0

    def data_received(self, data):
        self.received += len(data)


def test_client_rate_limit_shapes_what_the_client_reads(selector_class):
    """A client's rate_bytes holds its reading to the rate: at a frozen clock it reads one burst
    (plus at most one read), and more only as time passes."""
    clock = FakeClock(100.0)
    loop = reactor.Reactor(selector=selector_class(), clock=clock)
    try:
        server = loop.listen_tcp(Firehose, "127.0.0.1", 0)
        connector = loop.connect_tcp(Counting, "127.0.0.1", server.addresses[0][1],
                                     limits=Limits(rate_bytes=Rate(10000, burst=10000)))
        run_until(loop, lambda: connector.protocol is not None
                  and connector.protocol.received > 0)
        for _ in range(20):
            loop.run_once(0.01)
        one_read = 64 * 1024
        held = connector.protocol.received
        assert 10000 <= held <= 10000 + one_read
        for second in range(1, 60):
            clock.advance(1.0)
            for _ in range(5):
                loop.run_once(0.01)
            received = connector.protocol.received
            assert received <= 10000 + 10000 * second + one_read, (second, received)
            if received == 256 * 1024:
                break
        assert connector.protocol.received == 256 * 1024
        server.close()
    finally:
        loop.close()
