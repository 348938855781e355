"""A line chat: whole messages with FramedProtocol, and shared state through the factory.

Teaches: a framer turns a byte stream into lines, whatever the chunking
(``frame_received`` gets one whole line); every connection's protocol shares
one ``Room``, passed in by the factory (``lambda: Member(room)``); a member
who stops reading is cut at a send-buffer cap, not waited for by the room.

    python3 examples/chat.py               # serves 127.0.0.1:7101; join with nc 127.0.0.1 7101
    python3 examples/chat.py --selftest    # alice says hello, bob hears it, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

PORT = 7101
LIMITS = reactor.Limits(send_buffer_hard_cap_bytes=256 * 1024)   # then: SlowConsumerError


class Room(set):                                  # the members, and one way to talk to all
    def broadcast(self, line):
        for member in self:
            if not member.transport.is_closing():     # it may be on its way out
                member.send_frame(line)


class Member(reactor.FramedProtocol):
    framer = reactor.framing.LineFramer(max_length=1024)   # a longer line ends the connection

    def __init__(self, room):
        self.room, self.nick = room, None

    def connection_made(self, transport):
        super().connection_made(transport)
        self.send_frame(b"welcome; your nick?")

    def frame_received(self, line):
        if self.nick is None:                 # the first line is the nick
            self.nick = bytes(line)
            self.room.add(self)
            self.room.broadcast(b"* " + self.nick + b" joined")
        else:
            self.room.broadcast(self.nick + b": " + line)

    def connection_lost(self, exc):
        if self.nick is not None:
            self.room.discard(self)
            self.room.broadcast(b"* " + self.nick + b" left")


class Scripted(reactor.FramedProtocol):          # the self-test's client: line -> reply
    framer = reactor.framing.LineFramer(max_length=1024)

    def __init__(self, script):
        self.script = script

    def frame_received(self, line):
        action = self.script.get(line)
        if callable(action):
            action()
        elif action is not None:
            self.send_frame(action)


if __name__ == "__main__":
    loop, room = reactor.Reactor(), Room()
    server = loop.listen_tcp(lambda: Member(room), "127.0.0.1",
                             0 if "--selftest" in sys.argv else PORT, limits=LIMITS)
    print("listening on 127.0.0.1:%d" % server.addresses[0][1])
    if "--selftest" in sys.argv:                 # alice joins, then bob; alice greets bob
        def connect(script):
            loop.connect_tcp(lambda: Scripted(script), "127.0.0.1", server.addresses[0][1])
        bob = {b"welcome; your nick?": b"bob", b"alice: hello bob": loop.stop}
        connect({b"welcome; your nick?": b"alice", b"* alice joined": lambda: connect(bob),
                 b"* bob joined": b"hello bob"})
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if "--selftest" in sys.argv:
        print("selftest ok: bob heard alice")
