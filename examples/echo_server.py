"""An echo server: a Protocol, its transport, and backpressure.

Teaches: the callbacks a transport makes (``data_received``), the one call
a protocol makes back (``transport.write``), and flow control: when a client
sends faster than it reads, our send buffer passes the high-water mark,
``pause_writing`` stops us reading from it, and TCP slows the client down.

Run it from the repository root, then type lines into ``nc``::

    python3 examples/echo_server.py             # serves 127.0.0.1:7100; Ctrl-C stops it
    nc 127.0.0.1 7100
    python3 examples/echo_server.py --selftest  # serve one client in-process, check, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

PORT = 7100


class Echo(reactor.Protocol):
    def data_received(self, data):
        self.transport.write(data)

    def pause_writing(self):            # our send buffer passed the high-water mark:
        self.transport.pause_reading()  # stop reading until the client catches up

    def resume_writing(self):
        self.transport.resume_reading()


class Sender(reactor.Protocol):
    """The self-test's client: send 4 MiB at once, stop when all of it is back."""

    message = bytes(range(256)) * 16384

    def connection_made(self, transport):
        self.received = bytearray()
        transport.write(self.message)     # never blocks: what the kernel refuses is queued

    def data_received(self, data):
        self.received += data
        if len(self.received) == len(self.message):
            assert self.received == self.message
            print("selftest ok: %d bytes echoed" % len(self.received))
            reactor.get_running_loop().stop()


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_tcp(Echo, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT)
    print("listening on 127.0.0.1:%d" % server.addresses[0][1])
    if "--selftest" in sys.argv:
        loop.connect_tcp(Sender, "127.0.0.1", server.addresses[0][1])
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
