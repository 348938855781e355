"""python -m reactor echo --websocket as users run it: any path upgrades, violations get codes."""

import socket

import pytest

from reactor.websocket import encode_frame
from tests.support.processes import start_cli_on_port, stop_processes
from tests.support.ws_client import RawWebSocket


@pytest.fixture
def echo():
    processes = []

    def start(*args):
        process, (host, port) = start_cli_on_port("echo", "--websocket", "--port", "0", *args)
        processes.append(process)
        return port
    yield start
    stop_processes(processes)


def test_any_path_upgrades_and_each_message_comes_back_with_its_type(echo):
    """Text comes back as text, binary as binary, on any path."""
    with RawWebSocket(echo(), path="/any/path?x=1") as ws:
        assert ws.status == 101
        ws.send("h\u00e9llo")
        ws.send(b"\x00\x01\x02")
        assert ws.read(lambda w: len(w.messages) == 2) == ["h\u00e9llo", b"\x00\x01\x02"]


def test_a_request_that_is_not_an_upgrade_gets_426(echo):
    """A plain GET (and a POST) is answered 426 Upgrade Required."""
    port = echo()
    for method in (b"GET", b"POST"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(method + b" / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 426 Upgrade Required\r\n")


@pytest.mark.parametrize("frame, code", [
    (encode_frame(0x1, b"plain", mask=False), 1002),
    (encode_frame(0x1, b"\xc3\x28", mask=True), 1007),
    (encode_frame(0x2, b"x" * 101, mask=True), 1009),
])
def test_violations_close_with_the_rfc_code(echo, frame, code):
    """Unmasked 1002, bad UTF-8 1007, over --max-frame 1009; the server goes on."""
    port = echo("--max-frame", "100")
    with RawWebSocket(port) as ws:
        ws.sock.sendall(frame)
        ws.read(lambda w: w.close is not None)
        assert ws.close.code == code
    with RawWebSocket(port) as again:
        again.send("still up")
        assert again.expect("still up") == ["still up"]
