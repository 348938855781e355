"""The servers `python -m reactor` starts: echo (TCP, Unix, TLS, UDP, framed) and chat.

Each serves a real client and exits 0 on a signal. Option errors are in
``test_cli.py``; the protection switches in ``test_protections_cli.py``.
"""

import os
import signal
import socket

import pytest

from .support.certs import SERVER_HOSTNAME, cert, client_ctx
from .support.peers import Peer
from .support.processes import run_cli, start_cli, start_cli_on_port


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_echo_serves_and_exits_cleanly_on_signal(sig):
    """`python -m reactor echo --port 0` logs where it listens, echoes, and exits 0 on a signal."""
    process, (host, port) = start_cli_on_port("echo", "--port", "0")
    try:
        assert host == "127.0.0.1"
        with Peer(None, (host, port)) as peer:
            assert peer.exchange(b"from the command line") == b"from the command line"
    finally:
        process.send_signal(sig)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "shutting down" in err and "stopped" in err


def test_cli_echo_on_unix_socket(tmp_path):
    """`echo --unix PATH` serves on a Unix socket and removes it on exit."""
    path = str(tmp_path / "cli.sock")
    process, where = start_cli("echo", "--unix", path)
    try:
        assert where == path
        with Peer(None, path) as peer:
            assert peer.exchange(b"unix") == b"unix"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
    assert process.returncode == 0 and not os.path.exists(path)


def test_cli_reports_a_busy_port_without_traceback():
    """A port already in use exits 1 with one clear error line, not a traceback."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("echo", "--port", str(port))
    assert result.returncode == 1
    assert "Address already in use" in result.stderr and "Traceback" not in result.stderr


def test_cli_help_lists_subcommands():
    """`python -m reactor --help` lists the echo subcommand."""
    result = run_cli("--help")
    assert result.returncode == 0 and "echo" in result.stdout


def test_cli_echo_with_tls():
    """`echo --tls-cert --tls-key` serves TLS that the stdlib client verifies."""
    certfile, keyfile = cert("server")
    process, address = start_cli_on_port("echo", "--port", "0", "--tls-cert", certfile,
                                         "--tls-key", keyfile,
                                         listening=r"listening on (\S+) \(tls\)")
    try:
        with socket.create_connection(address, timeout=10) as raw:
            with client_ctx().wrap_socket(raw, server_hostname=SERVER_HOSTNAME) as tls:
                tls.sendall(b"cli over tls")
                assert tls.recv(100) == b"cli over tls"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err


def test_cli_echo_udp():
    """`python -m reactor echo --udp --port 0` echoes datagrams and exits 0 on SIGTERM."""
    process, address = start_cli_on_port("echo", "--udp", "--port", "0",
                                         listening=r"listening on (\S+) \(udp\)")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(5)
            sock.sendto(b"datagram", address)
            assert sock.recvfrom(100)[0] == b"datagram"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err


def test_cli_chat_and_framed_echo_start_and_stop():
    """`python -m reactor chat` and `echo --framing line` serve and exit 0 on SIGTERM."""
    for args, hello, expect in (
            (["chat", "--port", "0"], None, b"welcome to reactor chat; enter a nick\n"),
            (["echo", "--port", "0", "--framing", "line", "--max-frame", "64"],
             b"framed\r\n", b"framed\n")):
        process, address = start_cli_on_port(*args)
        try:
            with Peer(None, address) as peer:
                if hello:
                    peer.send(hello)
                peer.wait(lambda: len(peer.received) >= len(expect))
                assert peer.received == expect
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=10)
        assert process.returncode == 0
