"""Servers: connection caps, graceful shutdown, bind errors, a failing protocol factory, IPv6."""

import errno
import logging
import socket
import time

import pytest

from reactor.apps.echo import EchoProtocol

from .support.loops import run_until
from .support.peers import Peer, has_ipv6_loopback
from .support.recorders import Recorder


def peer_of(loop, server):
    """A raw client of ``server``'s first address."""
    return Peer(loop, server.addresses[0][:2])


def test_max_connections_closes_extra_clients_at_once(loop):
    """Beyond max_connections a client is accepted and closed at once, and counted."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, max_connections=2)
    first, second = peer_of(loop, server), peer_of(loop, server)
    try:
        run_until(loop, lambda: len(server) == 2)
        with peer_of(loop, server) as third:
            run_until(loop, lambda: server.stats()["rejected_max_connections"] == 1)
            third.wait_closed()
            assert third.received == b""
        assert first.exchange(b"served") == b"served"
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
    idle, stuck = peer_of(loop, server), peer_of(loop, server)
    try:
        run_until(loop, lambda: len(protocols) == 2)
        stuck_transport = protocols[1].transport
        stuck_transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET,
                                                            socket.SO_SNDBUF, 4096)
        stuck_transport.write(b"s" * 2000000)
        server_address = server.addresses[0][:2]
        done = []
        started = time.monotonic()
        server.shutdown(0.2, on_done=lambda: done.append(time.monotonic() - started))
        assert not server.is_serving()
        with pytest.raises(OSError):
            Peer(loop, server_address, timeout=1)
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
        with peer_of(loop, server) as first:
            run_until(loop, lambda: calls)
            first.wait_closed()
            assert first.received == b""
    with peer_of(loop, server) as second:
        assert second.exchange(b"ok") == b"ok"
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
