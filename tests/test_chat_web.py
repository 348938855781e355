"""python -m reactor chat --web-port: browser members (WebSocket) and nc members share rooms.

A raw WebSocket client (the codec, on a blocking socket) stands in for the
page's script here; tests/test_chat_browser.py drives the page itself in a
real Chromium.
"""

import re
import socket
import time

import pytest

from reactor.websocket import encode_close
from tests.support.processes import start_cli_on_port, stop_processes
from tests.support.ws_client import RawWebSocket


@pytest.fixture
def chat():
    """Start chat with a web port; return (tcp port, web port)."""
    processes = []
    process, (host, port) = start_cli_on_port("chat", "--port", "0", "--web-port", "0")
    processes.append(process)
    web = re.search(r"also listening on \S+:(\d+) \(http\)", process.stderr.readline())
    assert web, "no web port line"
    yield port, int(web.group(1))
    stop_processes(processes)


def nc_expect(sock, text, buffer, timeout=5.0):
    deadline = time.monotonic() + timeout
    while text not in buffer[0]:
        assert time.monotonic() < deadline, (text, buffer[0])
        buffer[0] += sock.recv(65536).decode()
    return buffer[0]


def test_the_page_is_self_contained(chat):
    """GET / is one HTML page with inline CSS and JS and no external resource."""
    _, web = chat
    with socket.create_connection(("127.0.0.1", web), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n")
        page = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            page += chunk
    head, body = page.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and b"text/html" in head
    assert b"<script>" in body and b"<style>" in body and b"new WebSocket(" in body
    assert not re.search(rb'(src|href)="?(https?:)?//', body)


def test_browser_and_nc_members_talk_both_ways(chat):
    """A WebSocket member and a TCP member see each other's lines and notices."""
    port, web = chat
    browser = RawWebSocket(web)
    browser.expect("welcome to reactor chat; enter a nick")
    browser.send("alice")
    browser.expect("* you are alice, in #lobby; /help lists commands")
    nc, seen = socket.create_connection(("127.0.0.1", port), timeout=5), [""]
    try:
        nc.sendall(b"bob\n")
        nc_expect(nc, "* you are bob, in #lobby", seen)
        browser.expect("* bob joined #lobby")
        browser.send("hello from the browser\nwith a newline")
        nc_expect(nc, "alice: hello from the browser with a newline\n", seen)
        nc.sendall(b"hello from nc\n")
        browser.expect("bob: hello from nc")
        browser.send("/who")
        browser.expect("* in #lobby: alice, bob")
    finally:
        nc.close()
    browser.expect("* bob left")
    browser.sock.sendall(encode_close(1000, "", mask=True))
    browser.read(lambda ws: ws.close is not None)
    assert browser.close.code == 1000
    browser.sock.close()


def test_a_draining_server_tells_browser_members_and_keeps_serving_them():
    """SIGTERM: a browser member gets the restart line as a message, like nc members, and is
    served until the grace ends (no immediate 1001)."""
    process, (host, port) = start_cli_on_port("chat", "--port", "0", "--web-port", "0",
                                              "--grace", "1")
    try:
        web = re.search(r"also listening on \S+:(\d+) \(http\)", process.stderr.readline())
        browser = RawWebSocket(int(web.group(1)))
        browser.expect("welcome to reactor chat; enter a nick")
        browser.send("carol")
        browser.expect("* you are carol, in #lobby; /help lists commands")
        process.terminate()
        browser.expect("* the server is restarting; you can stay until it closes, then reconnect")
        browser.send("/who")
        browser.expect("* in #lobby: carol")
        assert process.wait(timeout=10) == 0
        browser.sock.close()
    finally:
        stop_processes([process])
