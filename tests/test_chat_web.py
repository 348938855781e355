"""python -m reactor chat --web-port: browser members (WebSocket) and nc members share rooms.

A raw WebSocket client (the codec, on a blocking socket) stands in for the
page's script here; tests/test_chat_browser.py drives the page itself in a
real Chromium.
"""

import base64
import os
import re
import socket
import time

import pytest

from reactor.websocket import Close, FrameParser, encode_close, encode_message
from tests.support.processes import start_cli_on_port, stop_processes


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


class Browser:
    """A WebSocket member: each message sent is one line; each received is one line."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /ws HTTP/1.1\r\nHost: chat\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % key).encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += self.sock.recv(4096)
        head, self.rest = received.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101 ")
        self.parser = FrameParser(expect_masked=False)
        self.lines = []

    def send(self, text):
        self.sock.sendall(encode_message(text, mask=True))

    def expect(self, line, timeout=5.0):
        """Wait until ``line`` has arrived as one text message; return all lines so far."""
        deadline = time.monotonic() + timeout
        while line not in self.lines:
            assert time.monotonic() < deadline, (line, self.lines)
            data, self.rest = self.rest or self.sock.recv(65536), b""
            assert data, "closed; got %r" % self.lines
            self.lines += [event.data for event in self.parser.feed(data)
                           if not isinstance(event, Close)]
        return self.lines


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
    browser = Browser(web)
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
    browser.sock.close()
