"""Unix stream sockets: echo, and the socket files (stale, live, or not a socket at all)."""

import errno
import os
import socket

import pytest

from reactor.apps.echo import EchoProtocol

from .support.loops import run_until
from .support.peers import Peer
from .support.recorders import Recorder


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
    with Peer(loop, path):
        run_until(loop, lambda: len(server) == 1)
    server.close()


def test_live_unix_socket_is_not_stolen(loop, tmp_path):
    """Listening on a path where another server accepts raises EADDRINUSE and leaves it alone."""
    path = str(tmp_path / "live.sock")
    first = loop.listen_unix(EchoProtocol, path)
    with pytest.raises(OSError) as info:
        loop.listen_unix(EchoProtocol, path)
    assert info.value.errno == errno.EADDRINUSE and path in str(info.value)
    with Peer(loop, path):                       # the first server still owns it
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
