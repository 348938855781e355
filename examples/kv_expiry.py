"""A key-value store whose keys expire on the timer wheel: one timer per key, moved on overwrite.

Teaches: ``loop.call_later`` returns a timer handle, so an expiring key costs
one timer on the wheel (O(1) to schedule and to cancel), and nothing scans
the keys. A new ``EX`` moves the key's deadline with ``reset()`` (no second
timer); ``cancel()`` drops it on a ``SET`` without ``EX`` or a ``DEL``.

    python3 examples/kv_expiry.py              # 127.0.0.1:7104: SET k v [EX s], GET k, DEL k
    python3 examples/kv_expiry.py --selftest   # three keys, 0.1 s expiries, check, exit
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)

PORT = 7104
store, deadlines = {}, {}       # key -> value; key -> the timer that will delete it


def expire(key):                # a timer fired: the key's time is up
    del store[key], deadlines[key]


class KeyValue(reactor.FramedProtocol):
    framer = reactor.framing.LineFramer(max_length=4096)
    def frame_received(self, line):
        words = bytes(line).split()
        verb = words[0].upper() if words else b""
        if verb == b"SET" and (len(words) == 3 or len(words) == 5 and words[3].upper() == b"EX"
                               and words[4].replace(b".", b"", 1).isdigit()):
            self.set(words[1], words[2], float(words[4]) if len(words) == 5 else None)
        elif verb == b"GET" and len(words) == 2:
            self.send_frame(store.get(words[1], b"(nil)"))
        elif verb == b"DEL" and len(words) == 2:
            if words[1] in deadlines:
                deadlines.pop(words[1]).cancel()
            self.send_frame(b"1" if store.pop(words[1], None) is not None else b"0")
        else:
            self.send_frame(b"ERR usage: SET key value [EX seconds] | GET key | DEL key")

    def set(self, key, value, seconds):
        store[key], timer = value, deadlines.get(key)
        if timer is not None and seconds is None:
            deadlines.pop(key).cancel()              # no EX: the key now lives for ever
        elif timer is not None:
            timer.reset(seconds)                     # the same timer, a new deadline: O(1)
        elif seconds is not None:
            deadlines[key] = self.transport.loop.call_later(seconds, expire, key)
        self.send_frame(b"OK")


class Client(reactor.FramedProtocol):     # the self-test's: two pipelined batches, 0.3 s apart
    framer = reactor.framing.LineFramer(max_length=4096)
    replies = []

    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"SET a 1 EX 0.1\nSET b 2 EX 0.1\nSET b 3 EX 60\n"
                        b"SET c 4 EX 0.1\nSET c 5\n")
        transport.loop.call_later(0.3, transport.write, b"GET a\nGET b\nGET c\nDEL b\nGET b\n")

    def frame_received(self, reply):
        self.replies.append(bytes(reply))
        if len(self.replies) == 10:
            self.transport.loop.stop()


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_tcp(KeyValue, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT)
    print("listening on 127.0.0.1:%d" % server.addresses[0][1])
    if "--selftest" in sys.argv:
        loop.connect_tcp(Client, "127.0.0.1", server.addresses[0][1])
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if "--selftest" in sys.argv:
        assert Client.replies == [b"OK"] * 5 + [b"(nil)", b"3", b"5", b"1", b"(nil)"]
        assert not deadlines, deadlines                  # no timer is left behind
        print("selftest ok: a expired, b's deadline moved, c's was cancelled")
