"""Protocols for tests: ones that record what happens to them, and one that streams a payload.

Events are tuples, so a test compares a whole history at once::

    assert protocol.events == [("made",), ("eof",), ("lost", None)]

:class:`Recorder` keeps the bytes apart (in ``received``) and names an
exception by its type; :class:`EventRecorder` keeps the bytes in the
history (``("data", b"...")``) and the exception itself, for the contract
suite, where "which exception" and "in what order" are the claims.
"""

import random

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


class EventRecorder(Protocol):
    """Records every callback, data included, as a tuple; ``("lost", exc)`` keeps the exception.

    ``history()`` joins adjacent ``("data", ...)`` events (chunk boundaries
    carry no meaning) and leaves flow control out; ``flow()`` is the flow
    control alone.
    """

    FLOW = ("pause_writing", "resume_writing")

    def __init__(self):
        self.events = []
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.append(("made",))

    def data_received(self, data):
        self.events.append(("data", data))

    def eof_received(self):
        self.events.append(("eof",))
        return False

    def pause_writing(self):
        self.events.append(("pause_writing",))

    def resume_writing(self):
        self.events.append(("resume_writing",))

    def connection_lost(self, exc):
        self.events.append(("lost", exc))

    def lost(self):
        """Tell whether ``connection_lost`` has been called."""
        return any(event[0] == "lost" for event in self.events)

    def received(self):
        """Return every byte received, joined."""
        return b"".join(event[1] for event in self.events if event[0] == "data")

    def history(self):
        """Return the events without flow control, adjacent data events joined into one."""
        history = []
        for event in self.events:
            if event[0] in self.FLOW:
                continue
            if event[0] == "data" and history and history[-1][0] == "data":
                history[-1] = ("data", history[-1][1] + event[1])
            else:
                history.append(event)
        return history

    def flow(self):
        """Return the flow-control events alone, in order."""
        return [event[0] for event in self.events if event[0] in self.FLOW]


class StreamingClient(Protocol):
    """Sends ``payload`` in random-sized writes honouring backpressure, and checks every
    echoed byte against the payload as it arrives.

    It ends its side with ``write_eof()`` once everything is sent, or, with
    ``half_close=False`` (TLS has no half-close), with ``close()`` once the
    whole echo is back. ``finished`` gets the client when its connection is lost.
    """

    def __init__(self, payload, rng, finished, max_write_bytes=65536, half_close=True):
        self.payload = payload
        self.rng = rng
        self.finished = finished
        self.max_write_bytes = max_write_bytes
        self.half_close = half_close
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
            size = self.rng.randint(1, self.max_write_bytes)
            self.transport.write(payload[self.sent:self.sent + size])
            self.sent = min(len(payload), self.sent + size)
        if self.half_close and self.sent == len(payload) and not self.paused:
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
        if not self.half_close and self.checked == len(self.payload):
            self.transport.close()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        self.lost_with = exc
        self.finished.append(self)


def random_payload(size, seed):
    """Return ``size`` random bytes, the same for the same ``seed``."""
    rng = random.Random(seed)
    return (rng.getrandbits(size * 8) if size else 0).to_bytes(size, "little")  # 3.8: no 0 bits
