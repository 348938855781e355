"""Unix stream sockets, running out of file descriptors, and the echo command line."""

import errno
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from reactor.apps.echo import EchoProtocol

from .conftest import run_until
from .streams_helpers import Recorder, start_cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- Unix sockets ------------------------------------------------------------------

def test_unix_echo_with_connect_unix(loop, tmp_path):
    """listen_unix and connect_unix echo bytes; closing the server removes its socket file."""
    path = str(tmp_path / "echo.sock")
    server = loop.listen_unix(EchoProtocol, path)
    client = Recorder()
    loop.connect_unix(lambda: client, path)
    run_until(loop, lambda: client.transport is not None)
    client.transport.write(b"over a unix socket")
    run_until(loop, lambda: client.received == b"over a unix socket")
    client.transport.write_eof()
    run_until(loop, client.lost)
    assert client.events == [("made",), ("eof",), ("lost", None)]
    server.close()
    assert not os.path.exists(path)


def test_stale_unix_socket_file_is_replaced(loop, tmp_path):
    """A socket file left by a dead server is removed and the new server binds."""
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(path)
    dead.close()                                 # the file stays, nobody listens
    assert os.path.exists(path)
    server = loop.listen_unix(EchoProtocol, path)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        run_until(loop, lambda: len(server) == 1)
    server.close()


def test_live_unix_socket_is_not_stolen(loop, tmp_path):
    """Listening on a path where another server accepts raises EADDRINUSE and leaves it alone."""
    path = str(tmp_path / "live.sock")
    first = loop.listen_unix(EchoProtocol, path)
    with pytest.raises(OSError) as info:
        loop.listen_unix(EchoProtocol, path)
    assert info.value.errno == errno.EADDRINUSE and path in str(info.value)
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)                       # the first server still owns it
        run_until(loop, lambda: len(first) == 1)
    first.close()


def test_regular_file_is_never_deleted(loop, tmp_path):
    """A path holding a regular file raises FileExistsError and the file survives."""
    path = tmp_path / "precious.txt"
    path.write_text("do not delete")
    with pytest.raises(FileExistsError, match="not a socket"):
        loop.listen_unix(EchoProtocol, str(path))
    assert path.read_text() == "do not delete"


def test_connect_unix_to_missing_path_fails_cleanly(loop, tmp_path):
    """connect_unix to a path with no socket reports a ConnectError through on_error."""
    errors = []
    loop.connect_unix(Recorder, str(tmp_path / "nobody.sock"), on_error=errors.append)
    run_until(loop, lambda: errors)
    assert isinstance(errors[0], ConnectionError) and errors[0].errno == errno.ENOENT


# -- out of file descriptors --------------------------------------------------------

EMFILE_SERVER = textwrap.dedent("""
    import logging, resource, sys
    sys.path.insert(0, sys.argv[1])
    import reactor
    from reactor.apps.echo import EchoProtocol
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0,
                             limits=reactor.Limits(accept_backoff_seconds=0.05))
    print(server.addresses[0][1], flush=True)
    loop.run()
    print("stats", server.stats(), flush=True)
    loop.close()
""")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc to read CPU time")
def test_out_of_fds_server_sheds_load_without_spinning_and_recovers():
    """At RLIMIT_NOFILE the server closes new clients promptly, stays idle, and serves again later."""
    process = subprocess.Popen([sys.executable, "-c", EMFILE_SERVER, ROOT],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    clients = []
    try:
        port = int(process.stdout.readline())
        for _ in range(60):                       # well past the 40-fd limit
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            clients.append(sock)
        time.sleep(0.3)
        shed = 0
        for sock in clients:
            sock.settimeout(0.01)
            try:
                if sock.recv(1) == b"":
                    shed += 1
            except socket.timeout:
                pass
            except ConnectionResetError:
                shed += 1
        assert shed >= 1, "no pending client was closed while out of fds"
        before = cpu_seconds(process.pid)
        time.sleep(1.0)
        spent = cpu_seconds(process.pid) - before
        assert spent < 0.5, "server used %.2f s of CPU in 1 s while out of fds" % spent
        for sock in clients:
            sock.close()
        clients = []
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"alive again")
            assert sock.recv(100) == b"alive again"
    finally:
        for sock in clients:
            sock.close()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert err.count("out of file descriptors") >= 1
    assert "accepting connections again" in err
    stats = out.split("stats", 1)[1]
    assert "'out_of_fds_episodes': " in stats and "'rejected_out_of_fds': 0" not in stats


# -- the command line -------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cli_echo_serves_and_exits_cleanly_on_signal(sig):
    """`python -m reactor echo --port 0` logs where it listens, echoes, and exits 0 on a signal."""
    process, where = start_cli("echo", "--port", "0")
    try:
        host, port = where.rsplit(":", 1)
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(b"from the command line")
            assert sock.recv(100) == b"from the command line"
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
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"unix")
            assert sock.recv(10) == b"unix"
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
        result = subprocess.run([sys.executable, "-m", "reactor", "echo", "--port", str(port)],
                                cwd=ROOT, capture_output=True, text=True, timeout=20)
    assert result.returncode == 1
    assert "Address already in use" in result.stderr and "Traceback" not in result.stderr


def test_cli_help_lists_subcommands():
    """`python -m reactor --help` lists the echo subcommand."""
    result = subprocess.run([sys.executable, "-m", "reactor", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=20)
    assert result.returncode == 0 and "echo" in result.stdout
