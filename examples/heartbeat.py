"""A heartbeat: a periodic timer, and a watchdog deadline that every beat pushes back.

Teaches: ``loop.call_every`` (one timer, re-armed at *previous deadline +
interval*, so beats never drift), ``Periodic.cancel()``, and the watchdog
pattern: one ``call_later`` timer per connection, ``reset()`` on every beat
(O(1) on the timer wheel, no new timer), firing only once the beats stop.

The client beats every INTERVAL seconds. After five beats it falls silent but
stays connected; the server declares it dead three intervals later and closes.

    python3 examples/heartbeat.py              # 0.5 s beats: the story takes ~4 s
    python3 examples/heartbeat.py --selftest   # fast beats, and check the story
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

SELFTEST = "--selftest" in sys.argv
INTERVAL = 0.05 if SELFTEST else 0.5
story = []


def say(line):
    story.append(line)
    print(line)


class Monitor(reactor.FramedProtocol):           # the server side
    framer = reactor.framing.LineFramer(max_length=64)

    def connection_made(self, transport):
        super().connection_made(transport)
        self.watchdog = transport.loop.call_later(3 * INTERVAL, self.declare_dead)

    def frame_received(self, line):
        self.watchdog.reset(3 * INTERVAL)        # alive: push the deadline back
        say("server: got " + line.decode())

    def declare_dead(self):
        say("server: no beat for 3 intervals; closing")
        self.transport.close()

    def connection_lost(self, exc):
        self.watchdog.cancel()


class Beater(reactor.FramedProtocol):            # the client side
    framer = reactor.framing.LineFramer(max_length=64)

    def connection_made(self, transport):
        super().connection_made(transport)
        self.sent = 0
        self.beats = transport.loop.call_every(INTERVAL, self.beat)

    def beat(self):
        self.sent += 1
        self.send_frame(b"beat %d" % self.sent)
        if self.sent == 5:
            self.beats.cancel()                  # fall silent, but stay connected

    def connection_lost(self, exc):
        self.beats.cancel()
        say("client: the server closed the connection")
        self.transport.loop.stop()


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_tcp(Monitor, "127.0.0.1", 0)
    loop.connect_tcp(Beater, "127.0.0.1", server.addresses[0][1])
    loop.call_later(20, sys.exit, "timed out")
    loop.run()
    if SELFTEST:
        assert story == (["server: got beat %d" % n for n in range(1, 6)] + [
            "server: no beat for 3 intervals; closing",
            "client: the server closed the connection"]), story
        print("selftest ok")
