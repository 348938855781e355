"""A line chat: whole messages with FramedProtocol, and shared state through the factory.

Teaches: a framer turns a byte stream into lines, whatever the chunking
(``frame_received`` gets one whole line); every connection's protocol
shares one ``Room``, passed in by the factory (``lambda: Member(room)``);
and a member who stops reading is dropped at a send-buffer cap
(``SlowConsumerError``) instead of slowing the whole room down.

    python3 examples/chat.py               # serves 127.0.0.1:7101; join with nc 127.0.0.1 7101
    python3 examples/chat.py --selftest    # alice says hello, bob hears it, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

PORT = 7101


class Room:
    def __init__(self):
        self.members = set()

    def broadcast(self, line):
        for member in self.members:
            if not member.transport.is_closing():     # it may be on its way out
                member.send_frame(line)


class Member(reactor.FramedProtocol):
    framer = reactor.framing.LineFramer(max_length=1024)   # a longer line ends the connection

    def __init__(self, room):
        self.room = room
        self.nick = None

    def connection_made(self, transport):
        super().connection_made(transport)
        self.send_frame(b"welcome; your nick?")

    def frame_received(self, line):
        if self.nick is None:                 # the first line is the nick
            self.nick = bytes(line)
            self.room.members.add(self)
            self.room.broadcast(b"* " + self.nick + b" joined")
        else:
            self.room.broadcast(self.nick + b": " + line)

    def connection_lost(self, exc):
        if self.nick is not None:
            self.room.members.discard(self)
            self.room.broadcast(b"* " + self.nick + b" left")


class Scripted(reactor.FramedProtocol):
    """The self-test's client: on each line it expects, send a reply (or call a function)."""

    framer = reactor.framing.LineFramer(max_length=1024)

    def __init__(self, script):
        self.script = script

    def frame_received(self, line):
        action = self.script.get(line)
        if callable(action):
            action()
        elif action is not None:
            self.send_frame(action)


def selftest(loop, port):
    def connect(script):
        loop.connect_tcp(lambda: Scripted(script), "127.0.0.1", port)

    def bob_heard_alice():
        print("selftest ok: bob heard alice")
        loop.stop()
    bob = {b"welcome; your nick?": b"bob", b"alice: hello bob": bob_heard_alice}
    connect({b"welcome; your nick?": b"alice", b"* alice joined": lambda: connect(bob),
             b"* bob joined": b"hello bob"})
    loop.call_later(10, sys.exit, "selftest timed out")


if __name__ == "__main__":
    loop = reactor.Reactor()
    room = Room()
    server = loop.listen_tcp(lambda: Member(room), "127.0.0.1",
                             0 if "--selftest" in sys.argv else PORT,
                             limits=reactor.Limits(send_buffer_hard_cap_bytes=256 * 1024))
    print("listening on 127.0.0.1:%d" % server.addresses[0][1])
    if "--selftest" in sys.argv:
        selftest(loop, server.addresses[0][1])
    loop.run()
