"""A blocking raw WebSocket client for tests of servers in other processes: the codec only."""

import base64
import os
import socket
import time

from reactor.websocket import Close, FrameParser, encode_message


class RawWebSocket:
    """Connect, upgrade ``path``, send masked messages, collect the server's messages in order."""

    def __init__(self, port, path="/ws", host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode())
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = self.sock.recv(4096)
            assert chunk, "closed during the handshake: %r" % received
            received += chunk
        self.head, self.rest = received.split(b"\r\n\r\n", 1)
        self.parser = FrameParser(expect_masked=False, max_message_bytes=64 << 20)
        self.messages, self.close = [], None

    @property
    def status(self):
        return int(self.head.split(b" ", 2)[1])

    def send(self, data):
        self.sock.sendall(encode_message(data, mask=True))

    def read(self, predicate, timeout=5.0):
        """Read until ``predicate(self)`` holds (or the server closes); return the messages."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            assert time.monotonic() < deadline, "timed out with %r" % (self.messages[-3:],)
            data, self.rest = self.rest or self.sock.recv(1 << 20), b""
            if not data:
                break
            for event in self.parser.feed(data):
                if isinstance(event, Close):
                    self.close = event
                elif hasattr(event, "is_text"):
                    self.messages.append(event.data)
        return self.messages

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.sock.close()

    def expect(self, message, timeout=5.0):
        """Wait until ``message`` has arrived; return every message so far."""
        return self.read(lambda ws: message in ws.messages, timeout)
