"""UDP ping: datagrams, a connected client, and losses counted instead of waited for.

Teaches: ``DatagramProtocol`` (each datagram arrives whole, or not at all),
``listen_udp`` for a server that answers every sender, ``connect_udp`` for a
client with one peer (the kernel then reports ICMP errors such as "port
unreachable" to ``error_received``), ``call_every`` to pace the pings, and
loss measured without a timer per ping: whatever is unanswered one interval
after the last ping is lost (the self-test's server drops ping 3 on purpose).

    python3 examples/udp_ping.py server       # answers on 127.0.0.1:7103
    python3 examples/udp_ping.py client       # 5 pings to it, then a summary
    python3 examples/udp_ping.py --selftest   # both in one process, check, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

PORT, COUNT, INTERVAL = 7103, 5, 0.2


class Pong(reactor.DatagramProtocol):             # the server: answer every ping ...
    drop = b""                                    # ... but this one (the self-test's loss)

    def datagram_received(self, data, addr):
        if data != self.drop:
            self.transport.sendto(b"pong" + data[4:], addr)


class Ping(reactor.DatagramProtocol):             # the client
    def connection_made(self, transport):
        super().connection_made(transport)
        self.loop, self.sent_at, self.replies = transport.loop, {}, 0
        self.pacer = self.loop.call_every(INTERVAL, self.ping)

    def ping(self):
        if len(self.sent_at) == COUNT:            # all sent: wait one interval, then sum up
            self.pacer.cancel()
            self.loop.call_later(INTERVAL, self.finish)
            return
        seq = len(self.sent_at) + 1
        self.sent_at[seq] = self.loop.time()
        self.transport.sendto(b"ping %d" % seq)   # connected: no address needed

    def datagram_received(self, data, addr):
        seq = int(data.split()[1])
        self.replies += 1
        print("%s: %.3f ms" % (data.decode(), 1000 * (self.loop.time() - self.sent_at[seq])))

    def error_received(self, exc):                # e.g. nothing listens on that port
        print("error:", exc)

    def finish(self):
        print("%d sent, %d answered, %.0f%% lost" % (COUNT, self.replies,
                                                     100.0 * (COUNT - self.replies) / COUNT))
        self.transport.close()
        self.loop.stop()


if __name__ == "__main__":
    loop = reactor.Reactor()
    role = (sys.argv[1:] or ["--selftest"])[0]
    if role == "server":
        server = loop.listen_udp(Pong, "127.0.0.1", PORT)
        print("answering pings on 127.0.0.1:%d" % PORT)
    elif role == "client":
        client = loop.connect_udp(Ping, "127.0.0.1", PORT)
    else:                                         # --selftest
        INTERVAL, Pong.drop = 0.02, b"ping 3"
        server = loop.listen_udp(Pong, "127.0.0.1", 0)
        client = loop.connect_udp(Ping, "127.0.0.1", server.get_extra_info("sockname")[1])
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if role == "--selftest":
        assert client.get_protocol().replies == COUNT - 1
        print("selftest ok")
