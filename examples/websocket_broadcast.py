"""A WebSocket broadcast: whatever one client sends, every connected client receives.

Teaches: an HTTP route that upgrades to WebSocket (``@app.websocket``), a
``WebSocketProtocol`` that receives whole messages (``message_received``),
the set of open connections kept by ``connection_made`` and
``connection_lost``, and ``broadcast()``, which encodes a message once for
all of them and skips a listener whose send buffer is already full
(``max_buffered_bytes``: a live feed drops for a reader that fell behind,
rather than queue for it without end). The clients are ``connect_websocket``.

    python3 examples/websocket_broadcast.py             # ws://127.0.0.1:7107/feed; in two
    # browser tabs' consoles: w = new WebSocket("ws://127.0.0.1:7107/feed");
    # w.onmessage = (e) => console.log(e.data); then w.send("hi"): both tabs log it
    python3 examples/websocket_broadcast.py --selftest  # three clients, one speaks, all hear
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import reactor  # noqa: E402  (found in the checkout above, no install needed)
from reactor.http import Router  # noqa: E402
from reactor.websocket.client import connect_websocket  # noqa: E402
from reactor.websocket.protocol import WebSocketProtocol, broadcast  # noqa: E402

PORT, CLIENTS = 7107, 3
app = Router()
listeners = set()


@app.websocket("/feed")
class Feed(WebSocketProtocol):                   # the server's side of one connection
    def connection_made(self, transport):
        super().connection_made(transport)
        listeners.add(self)
        broadcast(listeners, "%d listening" % len(listeners))

    def message_received(self, data, is_text):
        broadcast(listeners, data, max_buffered_bytes=256 * 1024)

    def connection_lost(self, exc):
        listeners.discard(self)


class Listener(WebSocketProtocol):
    """The self-test's client: the first speaks once all are in; each counts the hello."""

    heard = []

    def __init__(self, number):
        self.number = number

    def message_received(self, data, is_text):
        if data == "%d listening" % CLIENTS and self.number == 0:
            self.send_text("hello, everyone")
        elif data == "hello, everyone":
            Listener.heard.append(self.number)
            print("client %d heard: %s" % (self.number, data))
            if len(Listener.heard) == CLIENTS:
                self.transport.loop.stop()


if __name__ == "__main__":
    loop = reactor.Reactor()
    server = loop.listen_http(app, "127.0.0.1", 0 if "--selftest" in sys.argv else PORT)
    url = "ws://127.0.0.1:%d/feed" % server.addresses[0][1]
    print("broadcasting on", url)
    if "--selftest" in sys.argv:
        for number in range(CLIENTS):
            connect_websocket(loop, url, lambda number=number: Listener(number), on_error=sys.exit)
        loop.call_later(10, sys.exit, "selftest timed out")
    loop.run()
    if "--selftest" in sys.argv:
        assert sorted(Listener.heard) == list(range(CLIENTS)), Listener.heard
        print("selftest ok")
