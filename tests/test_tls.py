"""TLS over stream transports: echo, interop, certificate checks, bad peers, close_notify."""

import asyncio
import logging
import os
import random
import shutil
import socket
import ssl
import subprocess
import threading

import pytest

from reactor import Protocol, TLSHandshakeTimeoutError
from reactor.apps.echo import EchoProtocol

from .support.certs import CA, client_ctx, server_ctx
from .support.loops import advance, run_until
from .support.processes import run_in_thread
from .support.recorders import Recorder, StreamingClient, random_payload


def test_tls_echo_200_connections_byte_for_byte(loop):
    """200 TLS clients stream 256 KiB each in random writes; every byte returns, closes are clean."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx())
    port = server.addresses[0][1]
    pool = random_payload(512 * 1024, seed=6)
    finished, clients, errors = [], [], []
    context = client_ctx()
    for i in range(200):
        offset = (i * 1021) % (256 * 1024)
        client = StreamingClient(memoryview(pool)[offset:offset + 256 * 1024],
                                 random.Random(i), finished, max_write_bytes=40000,
                                 half_close=False)
        clients.append(client)
        loop.connect_tcp(lambda c=client: c, "127.0.0.1", port, ssl=context,
                         on_error=errors.append)
    run_until(loop, lambda: len(finished) + len(errors) == 200, timeout=120)
    assert errors == []
    for i, client in enumerate(clients):
        assert client.mismatch is None and client.checked == 256 * 1024, i
        assert client.lost_with is None, (i, client.lost_with)
    run_until(loop, lambda: len(server) == 0)
    assert server.stats()["rejected_tls_handshake"] == 0
    server.close()


def test_stdlib_blocking_client_interop(loop):
    """The stdlib's blocking ssl client verifies our server and gets its echo back."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx())
    port = server.addresses[0][1]

    def client():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx().wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"hello from ssl.SSLSocket")
                data = tls.recv(100)
                tls.unwrap()
                return data, tls.version()
    thread, result = run_in_thread(client)
    run_until(loop, lambda: not thread.is_alive(), timeout=20)
    assert "error" not in result, result.get("error")
    assert result["value"][0] == b"hello from ssl.SSLSocket"
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_our_client_against_stdlib_blocking_server(loop):
    """Our TLS client talks to a plain stdlib ssl server in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        with server_ctx().wrap_socket(conn, server_side=True) as tls:
            data = tls.recv(100)
            tls.sendall(data.upper())
            tls.unwrap()
    thread, result = run_in_thread(serve)
    client = Recorder()
    loop.connect_tcp(lambda: client, "127.0.0.1", port, ssl=client_ctx(),
                     server_hostname="localhost")
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"shout")
    run_until(loop, lambda: client.lost(), timeout=20)
    thread.join(10)
    listener.close()
    assert "error" not in result, result.get("error")
    assert client.received == b"SHOUT"
    assert client.events == [("made",), ("eof",), ("lost", None)]


def test_asyncio_interop_both_directions(loop):
    """An asyncio TLS client reaches our server, and our client reaches an asyncio TLS server."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx())
    port = server.addresses[0][1]

    async def asyncio_client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx(),
                                                       server_hostname="localhost")
        writer.write(b"from asyncio")
        data = await reader.readexactly(12)
        writer.close()
        await writer.wait_closed()
        return data
    thread, result = run_in_thread(lambda: asyncio.run(asyncio_client()))
    run_until(loop, lambda: not thread.is_alive(), timeout=20)
    assert result.get("value") == b"from asyncio", result

    ready = threading.Event()
    stop = {}

    async def asyncio_server():
        async def handle(reader, writer):
            data = await reader.read(100)
            writer.write(data[::-1])
            await writer.drain()
            writer.close()
        srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx())
        stop["port"] = srv.sockets[0].getsockname()[1]
        stop["loop"] = asyncio.get_running_loop()
        stop["event"] = asyncio.Event()
        ready.set()
        await stop["event"].wait()
        srv.close()
        await srv.wait_closed()
    thread, result = run_in_thread(lambda: asyncio.run(asyncio_server()))
    assert ready.wait(10)
    client = Recorder()
    loop.connect_tcp(lambda: client, "127.0.0.1", stop["port"], ssl=client_ctx(),
                     server_hostname="localhost")
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"reversed")
    run_until(loop, lambda: client.lost(), timeout=20)
    stop["loop"].call_soon_threadsafe(stop["event"].set)
    thread.join(10)
    assert client.received == b"desrever"
    server.close()


@pytest.mark.skipif(shutil.which("openssl") is None and os.environ.get("CI") != "true",
                    reason="no openssl binary on this machine (CI installs it)")
def test_openssl_s_client_interop(loop):
    """`openssl s_client` completes a handshake with our server and gets its echo."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx())
    port = server.addresses[0][1]
    process = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                                "-CAfile", CA, "-verify_return_error", "-quiet", "-no_ign_eof",
                                "-servername", "localhost"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    process.stdin.write(b"openssl says hi\n")
    process.stdin.flush()
    output = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read(16)))
    reader.start()
    run_until(loop, lambda: not reader.is_alive(), timeout=20)
    process.stdin.close()                          # s_client sends close_notify and exits
    run_until(loop, lambda: process.poll() is not None, timeout=20)
    process.stdout.close()
    process.stderr.close()
    assert output == [b"openssl says hi\n"]
    run_until(loop, lambda: len(server) == 0)
    server.close()


@pytest.mark.parametrize("name,needle", [("expired", "expired"),
                                         ("wronghost", "mismatch")])
def test_client_rejects_bad_certificates(loop, name, needle, caplog):
    """A client refuses an expired or wrong-host certificate; on_error gets the SSLError."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx(name))
    errors = []
    made = []

    class Never(Protocol):
        def connection_made(self, transport):
            made.append(transport)
    with caplog.at_level(logging.WARNING, logger="reactor"):
        connector = loop.connect_tcp(Never, "127.0.0.1", server.addresses[0][1],
                                     ssl=client_ctx(), on_error=errors.append)
        run_until(loop, lambda: errors)
        run_until(loop, lambda: server.stats()["rejected_tls_handshake"] == 1)
    assert isinstance(errors[0], ssl.SSLCertVerificationError), errors
    assert needle in str(errors[0]).lower()
    assert made == [] and connector.error is errors[0]
    assert any("certificate rejected" in r.getMessage() for r in caplog.records)
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_plaintext_to_tls_port_is_refused_and_server_goes_on(loop, caplog):
    """An HTTP request to the TLS port fails its handshake with a hint; TLS clients still work."""
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx())
    port = server.addresses[0][1]
    with caplog.at_level(logging.WARNING, logger="reactor"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
            run_until(loop, lambda: server.stats()["rejected_tls_handshake"] == 1)
            plain.settimeout(5)
            try:
                leftovers = plain.recv(1000)
            except ConnectionResetError:
                leftovers = b""
            assert not leftovers.startswith(b"GET")
    assert any("plaintext sent to a TLS port" in r.getMessage() for r in caplog.records)
    client = Recorder()
    loop.connect_tcp(lambda: client, "127.0.0.1", port, ssl=client_ctx())
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"still serving")
    run_until(loop, lambda: client.received == b"still serving")
    client.transport.close()
    run_until(loop, lambda: len(server) == 0)
    server.close()


def test_stalled_handshake_is_dropped_at_the_timeout(fake_loop, clock, caplog):
    """A client that never finishes the handshake is dropped at the timeout, not before."""
    server = fake_loop.listen_tcp(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx(),
                                  ssl_handshake_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="reactor"):
        with socket.create_connection(server.addresses[0][:2], timeout=5) as stalled:
            stalled.sendall(b"\x16\x03\x01")          # the first bytes of a ClientHello
            run_until(fake_loop, lambda: len(server) == 1)   # real passes; fake time stands
            advance(fake_loop, clock, 0.299)
            assert len(server) == 1 and server.stats()["rejected_tls_handshake"] == 0
            advance(fake_loop, clock, 0.003)                 # due; a wheel tick late at most
            assert server.stats()["rejected_tls_handshake"] == 1
            run_until(fake_loop, lambda: len(server) == 0)
            stalled.settimeout(5)
            try:
                assert stalled.recv(10) == b""
            except ConnectionResetError:
                pass
    assert any("did not finish within" in r.getMessage() for r in caplog.records)
    server.close()


def test_client_handshake_timeout_reaches_on_error(loop):
    """A server that accepts TCP but never speaks TLS gives the client TLSHandshakeTimeoutError."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    errors = []
    try:
        loop.connect_tcp(Recorder, "127.0.0.1", silent.getsockname()[1], ssl=client_ctx(),
                         ssl_handshake_timeout=0.2, on_error=errors.append)
        run_until(loop, lambda: errors, timeout=10)
    finally:
        silent.close()
    assert isinstance(errors[0], TLSHandshakeTimeoutError) and isinstance(errors[0], TimeoutError)


def test_close_notify_both_ways_and_truncation(loop):
    """close() sends close_notify (a clean EOF); a peer that drops TCP without it: SSLEOFError."""
    protocols = []
    server = loop.listen_tcp(lambda: protocols.append(Recorder()) or protocols[-1],
                             "127.0.0.1", 0, ssl=server_ctx())
    port = server.addresses[0][1]

    def polite_then_rude():
        outcome = []
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            tls = client_ctx().wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"bye for now")
            outcome.append(tls.recv(100))             # b"" after the server's close_notify
            tls.unwrap()
        # TLS 1.2 here: a TLS 1.3 client that closes with the server's session
        # tickets unread makes the kernel send RST, which would race the FIN.
        truncating = client_ctx()
        truncating.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            tls = truncating.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"last words")
            tls.shutdown(socket.SHUT_WR)               # a TCP FIN, and no close_notify
            outcome.append(tls.recv(100))             # the server closes in turn
            tls.close()
        return outcome
    thread, result = run_in_thread(polite_then_rude)
    run_until(loop, lambda: len(protocols) >= 1 and protocols[0].received == b"bye for now",
              timeout=20)
    protocols[0].transport.close()
    run_until(loop, lambda: not thread.is_alive() and len(protocols) == 2
              and protocols[1].lost(), timeout=20)
    assert result.get("value") == [b"", b""], result
    assert protocols[0].events == [("made",), ("lost", None)]
    assert protocols[1].received == b"last words"
    assert protocols[1].events == [("made",), ("lost", "SSLEOFError")]
    server.close()


def test_backpressure_through_tls(loop):
    """pause_reading holds back decrypted data; a big write to a non-reader pauses the app."""
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0, ssl=server_ctx())
    client = Recorder()
    loop.connect_tcp(lambda: client, "127.0.0.1", server.addresses[0][1], ssl=client_ctx())
    run_until(loop, lambda: client.transport is not None and protocol.transport is not None)
    protocol.transport.pause_reading()
    client.transport.write(b"w" * 100000)
    for _ in range(20):
        loop.run_once(0.01)
    assert protocol.received == b""
    protocol.transport.resume_reading()
    run_until(loop, lambda: len(protocol.received) == 100000)
    client.transport.pause_reading()
    while ("pause_writing",) not in protocol.events:
        protocol.transport.write(b"v" * 65536)
        loop.run_once(0)
    assert protocol.transport.get_write_buffer_size() < 16 << 20
    client.transport.abort()
    run_until(loop, protocol.lost)
    server.close()


def test_alpn_and_sni_pass_through(loop):
    """ALPN selection and the SNI name reach both sides; TLS 1.2 is the floor."""
    names = []
    context = server_ctx()
    context.set_alpn_protocols(["h2", "http/1.1"])
    context.sni_callback = lambda sslobj, name, ctx: names.append(name)
    protocol = Recorder()
    server = loop.listen_tcp(lambda: protocol, "127.0.0.1", 0, ssl=context)
    client_context_ = client_ctx()
    client_context_.set_alpn_protocols(["http/1.1"])
    client = Recorder()
    loop.connect_tcp(lambda: client, "127.0.0.1", server.addresses[0][1], ssl=client_context_,
                     server_hostname="localhost")
    run_until(loop, lambda: client.transport is not None and protocol.transport is not None)
    assert names == ["localhost"]
    assert client.transport.get_extra_info("selected_alpn_protocol") == "http/1.1"
    assert protocol.transport.get_extra_info("selected_alpn_protocol") == "http/1.1"
    assert client.transport.get_extra_info("peercert")["subject"][0][0][1] == "localhost"
    assert isinstance(client.transport.get_extra_info("ssl_object"), ssl.SSLObject)
    assert client.transport.get_extra_info("cipher")[1] in ("TLSv1.2", "TLSv1.3")
    assert client_ctx().minimum_version >= ssl.TLSVersion.TLSv1_2
    assert server_ctx().minimum_version >= ssl.TLSVersion.TLSv1_2
    client.transport.close()
    run_until(loop, lambda: client.lost() and protocol.lost())
    server.close()


def test_tls_over_unix_socket(loop, tmp_path):
    """TLS works on Unix stream sockets too (server_hostname given explicitly)."""
    path = str(tmp_path / "tls.sock")
    server = loop.listen_unix(EchoProtocol, path, ssl=server_ctx())
    client = Recorder()
    loop.connect_unix(lambda: client, path, ssl=client_ctx(), server_hostname="localhost")
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"unix + tls")
    run_until(loop, lambda: client.received == b"unix + tls")
    with pytest.raises(NotImplementedError):
        client.transport.write_eof()
    client.transport.close()
    run_until(loop, client.lost)
    server.close()
