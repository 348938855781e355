"""Protocols and helpers shared by the stream tests."""

import os
import random
import re
import socket
import subprocess
import sys

from reactor import Protocol


class Recorder(Protocol):
    """Records every callback as a tuple; optionally echoes and/or keeps the write side open."""

    def __init__(self, echo=False, keep_open_on_eof=False):
        self.events = []
        self.received = bytearray()
        self.echo = echo
        self.keep_open_on_eof = keep_open_on_eof
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def data_received(self, data):
        assert type(data) is bytes
        self.received += data
        if self.echo:
            self.transport.write(data)

    def eof_received(self):
        self.events.append(("eof",))
        return self.keep_open_on_eof

    def pause_writing(self):
        self.events.append(("pause_writing",))
        if self.echo:
            self.transport.pause_reading()

    def resume_writing(self):
        self.events.append(("resume_writing",))
        if self.echo:
            self.transport.resume_reading()

    def connection_lost(self, exc):
        self.events.append(("lost", None if exc is None else type(exc).__name__))

    def lost(self):
        return bool(self.events) and self.events[-1][0] == "lost"


class StreamingClient(Protocol):
    """Sends ``payload`` in random-sized writes honouring backpressure, then EOF,
    and checks every echoed byte against the payload as it arrives."""

    def __init__(self, payload, rng, finished):
        self.payload = payload
        self.rng = rng
        self.finished = finished
        self.sent = 0
        self.checked = 0
        self.paused = False
        self.mismatch = None
        self.lost_with = "not yet"

    def connection_made(self, transport):
        self.transport = transport
        self.send_more()

    def send_more(self):
        payload = self.payload
        while self.sent < len(payload) and not self.paused:
            size = self.rng.randint(1, 65536)
            self.transport.write(payload[self.sent:self.sent + size])
            self.sent = min(len(payload), self.sent + size)
        if self.sent == len(payload) and not self.paused:
            self.transport.write_eof()

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        self.paused = False
        self.send_more()

    def data_received(self, data):
        expected = self.payload[self.checked:self.checked + len(data)]
        if self.mismatch is None and bytes(expected) != data:
            self.mismatch = self.checked
        self.checked += len(data)

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost_with = exc
        self.finished.append(self)


def random_payload(size, seed):
    rng = random.Random(seed)
    return rng.getrandbits(size * 8).to_bytes(size, "little")


def free_port():
    """Return a port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def has_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def start_cli(*args):
    """Start ``python -m reactor ARGS``; return the process and where it said it listens."""
    process = subprocess.Popen([sys.executable, "-m", "reactor"] + list(args), cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = process.stderr.readline()
    match = re.search(r"listening on (\S+)", line)
    if not match:
        process.kill()
        raise AssertionError("no 'listening on' line: %r %r" % (line, process.communicate()))
    return process, match.group(1)
