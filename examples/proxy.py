"""A TCP proxy with backpressure both ways, and half-close passed through.

Teaches: flow control between two connections. Each side's ``pause_writing`` (its
send buffer is full) pauses the *other* side's reading and ``resume_writing`` resumes
it, so the proxy holds a few buffers' worth whatever the peers' speeds. Half-close:
``eof_received`` passes EOF on (``write_eof()``) and returns True to keep the way back open.

    python3 examples/proxy.py               # :7102 -> :7000 (start python3 -m reactor echo)
    python3 examples/proxy.py --selftest    # 16 MiB through an in-process echo, check, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

PORT, UPSTREAM = 7102, ["127.0.0.1", 7000]


class Pipe(reactor.Protocol):                      # one side; ``peer`` is the other side's Pipe
    peer, largest_buffer = None, 0                 # (the most any Pipe queued: the self-test's)
    def connection_made(self, transport):
        super().connection_made(transport)
        if self.peer is None:                      # a client arrived: dial the upstream,
            transport.pause_reading()              # holding the client's bytes till then
            self.peer = Pipe()
            self.peer.peer = self                  # each Pipe knows the other
            transport.loop.connect_tcp(lambda: self.peer, *UPSTREAM,
                                       on_error=lambda exc: transport.close())
        elif self.peer.transport.is_closing():     # the client left while we dialled
            transport.close()
        else:                                      # the upstream answered: let bytes flow
            self.peer.transport.resume_reading()

    def data_received(self, data):
        self.peer.transport.write(data)
        Pipe.largest_buffer = max(Pipe.largest_buffer, self.peer.transport.get_write_buffer_size())

    def eof_received(self):
        self.peer.transport.write_eof()            # pass the half-close on ...
        return True                                # ... and keep the other direction open

    def pause_writing(self):                       # our send buffer is full:
        self.peer.transport.pause_reading()        # stop reading what would go into it

    def resume_writing(self):
        self.peer.transport.resume_reading()

    def connection_lost(self, exc):                # one side ended: end the other
        if hasattr(self.peer, "transport"):
            self.peer.transport.close()


class Sender(reactor.Protocol):                    # the self-test's client: a slow reader
    message, received = os.urandom(16 << 20), bytearray()
    def connection_made(self, transport):          # send 16 MiB and EOF; read nothing for 0.5 s
        transport.write(self.message)
        transport.write_eof()
        transport.pause_reading()
        transport.loop.call_later(0.5, transport.resume_reading)

    def data_received(self, data):
        self.received += data

    def connection_lost(self, exc):                # both directions shut: closed for us
        assert exc is None and self.received == self.message and Pipe.largest_buffer < 512 * 1024
        print("selftest ok: largest proxy buffer %d KiB" % (Pipe.largest_buffer // 1024))
        reactor.get_running_loop().stop()


if __name__ == "__main__":
    loop = reactor.Reactor()
    proxy = loop.listen_tcp(Pipe, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT)
    if "--selftest" in sys.argv:
        from reactor.apps.echo import EchoProtocol    # the echo of `python3 -m reactor echo`
        UPSTREAM[1] = loop.listen_tcp(EchoProtocol, "127.0.0.1", 0).addresses[0][1]
        loop.connect_tcp(Sender, "127.0.0.1", proxy.addresses[0][1])
        loop.call_later(20, sys.exit, "selftest timed out")
    print("proxy on 127.0.0.1:%d -> %s:%d" % (proxy.addresses[0][1], *UPSTREAM))
    loop.run()
