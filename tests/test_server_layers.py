"""A server acts on the top of each connection's stack: TLS shuts down with close_notify."""

import signal
import socket
import ssl

import pytest

from reactor import Limits, Protocol

from .support.certs import CA, cert, client_ctx, raw_tls_client, server_ctx
from .support.loops import run_until
from .support.processes import start_cli_on_port


def contexts():
    return server_ctx(), client_ctx()


class Hello(Protocol):
    """Greets, then waits; keeps the transport it was given."""

    made = []

    def connection_made(self, transport):
        super().connection_made(transport)
        Hello.made.append(transport)
        transport.write(b"hello\n")


class Client(Protocol):
    """Records what a client sees, as tuples."""

    def __init__(self):
        self.events = []

    def data_received(self, data):
        self.events.append(("data", data))

    def eof_received(self):
        self.events.append(("eof",))

    def connection_lost(self, exc):
        self.events.append(("lost", type(exc).__name__ if exc else None))


@pytest.fixture(autouse=True)
def reset_hello():
    Hello.made = []
    yield


STACKS = {
    "plain": {},
    "tls": {"tls": True},
    "guard": {"limits": Limits(idle_timeout_seconds=300)},
    "tls+guard": {"tls": True, "limits": Limits(idle_timeout_seconds=300)},
}


def serve_and_connect(loop, stack):
    server_ctx, client_ctx = contexts()
    tls = STACKS[stack].get("tls", False)
    server = loop.listen_tcp(Hello, "127.0.0.1", 0, ssl=server_ctx if tls else None,
                             limits=STACKS[stack].get("limits"))
    connector = loop.connect_tcp(Client, "127.0.0.1", server.addresses[0][1],
                                 ssl=client_ctx if tls else None,
                                 server_hostname="localhost" if tls else None)
    run_until(loop, lambda: connector.protocol is not None
              and ("data", b"hello\n") in connector.protocol.events)
    return server, connector


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_connections_returns_what_the_application_writes_to(loop, stack):
    """server.connections() holds the app's own transport (TLS or Guard layer, not the raw
    socket), so a broadcast written to it reaches the client as plain application data."""
    server, connector = serve_and_connect(loop, stack)
    try:
        assert server.connections() == Hello.made
        for transport in server.connections():
            transport.write(b"server going down\n")
        run_until(loop, lambda: ("data", b"server going down\n") in connector.protocol.events)
        assert ("lost", "SSLError") not in connector.protocol.events
    finally:
        connector.transport.abort()
        server.close()


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_shutdown_closes_each_connection_gracefully(loop, stack):
    """When the grace ends, server.shutdown() closes the top of each stack: the client sees a
    clean end, over TLS with close_notify (connection_lost(None), not SSLEOFError)."""
    server, connector = serve_and_connect(loop, stack)
    done = []
    server.shutdown(grace_seconds=0.3, on_done=lambda: done.append(True))
    run_until(loop, lambda: done and connector.protocol.events[-1][0] == "lost")
    assert connector.protocol.events[-1] == ("lost", None)
    assert ("eof",) in connector.protocol.events
    assert server.stats()["closed_at_grace"] == 1
    assert server.stats()["aborted_at_shutdown"] == 0


def test_tls_shutdown_aborts_peers_that_never_answer_at_the_grace(loop):
    """A TLS peer that never sends its close_notify is aborted when the grace ends."""
    server_ctx, _ = contexts()
    server = loop.listen_tcp(Hello, "127.0.0.1", 0, ssl=server_ctx)
    tls = raw_tls_client(loop, server.addresses[0][:2])
    try:
        run_until(loop, lambda: len(server) == 1 and Hello.made)
        done = []
        server.shutdown(grace_seconds=0.2, on_done=lambda: done.append(True))
        run_until(loop, lambda: done)
        assert server.stats()["aborted_at_shutdown"] == 1
    finally:
        tls.close()


def test_sigterm_of_a_tls_chat_server_ends_clients_with_close_notify():
    """SIGTERM of `chat --tls-cert` closes every member with a TLS close_notify: a strict
    client (ragged EOFs not suppressed) reads a clean end, not SSLEOFError."""
    process, (_, port) = start_cli_on_port("chat", "--port", "0", "--tls-cert", cert("server")[0],
                                           "--tls-key", cert("server")[1])
    context = ssl.create_default_context(cafile=CA)
    members = []
    try:
        for nick in (b"alice", b"bob"):
            sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                                       server_hostname="localhost", suppress_ragged_eofs=False)
            sock.sendall(nick + b"\n")
            received = b""
            while b"you are " + nick not in received:
                received += sock.recv(4096)
            members.append(sock)
        process.send_signal(signal.SIGTERM)
        outcomes = []
        for sock in members:
            try:
                while sock.recv(4096):
                    pass
                outcomes.append("close_notify")
            except ssl.SSLEOFError as exc:
                outcomes.append("truncated: %s" % exc)
        assert outcomes == ["close_notify", "close_notify"]
        assert process.wait(timeout=10) == 0
    finally:
        for sock in members:
            sock.close()
        if process.poll() is None:
            process.kill()
        process.communicate()
