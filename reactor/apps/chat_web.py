"""``chat --web-port W``: the chat rooms in a browser, over WebSocket, beside the ``nc`` users.

On W, ``GET /`` serves one self-contained page (``PAGE``: inline CSS and
JavaScript, no external resource, works offline) and ``/ws`` is a
WebSocket. Browser users are ordinary chat members: the same
``ChatMember`` serves them, with every rule and limit it has for TCP
(nicks, rooms, the fan-out budget, the backlog cap). Only the wire differs::

    browser --text message--> LineBridge --line + "\\n"--> ChatMember  (as if typed into nc)
    browser <--text message-- LineBridge <--"line\\n"----- ChatMember  (one message per line)

``LineBridge`` is a ``WebSocketProtocol`` holding a ``ChatMember`` and
giving it a transport face (``_LineFace``): what the member writes is cut
into lines, each sent as one text message; what it pauses, closes or asks
about reaches the real transport. A newline inside a received message
becomes a space (one message, one line).
"""

from typing import Any, Optional

from ..http.messages import Response
from ..http.router import Router
from ..websocket.protocol import WebSocketProtocol


class LineBridge(WebSocketProtocol):
    """One browser member: WebSocket text messages in and out, a ChatMember in between."""

    ping_interval = 30.0

    def __init__(self, member: Any) -> None:
        self.member = member

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.member.connection_made(_LineFace(self))

    def message_received(self, data: Any, is_text: bool) -> None:
        if not is_text:
            data = bytes(data).decode("utf-8", "replace")
        line = data.replace("\r", " ").replace("\n", " ")
        self.member.data_received(line.encode("utf-8") + b"\n")

    def pause_writing(self) -> None:
        self.member.pause_writing()

    def resume_writing(self) -> None:
        self.member.resume_writing()

    def shutdown_requested(self) -> None:
        """A browser member hears the restart line like a TCP one, and stays until the grace
        ends (not WebSocket's default, an immediate 1001: chat has a room to leave gracefully)."""
        self.member.shutdown_requested()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.member.connection_lost(exc)


class _LineFace:
    """The transport a bridged ChatMember sees: lines out as messages, the rest passed down."""

    def __init__(self, bridge: LineBridge) -> None:
        self._bridge = bridge
        self._transport = bridge.transport

    @property
    def loop(self) -> Any:
        return self._transport.loop

    def write(self, data: bytes) -> None:
        for line in bytes(data).split(b"\n")[:-1]:
            self._bridge.send(line.decode("utf-8", "replace"))

    def close(self) -> None:
        self._bridge.close(1000, "bye")

    def is_closing(self) -> bool:
        return bool(self._bridge._close_sent or self._transport.is_closing())

    def __getattr__(self, name: str) -> Any:
        # pause/resume/hold/release_reading, run_protected, get_extra_info,
        # close_with_error, abort, get_write_buffer_size: the real transport's.
        return getattr(self._transport, name)


def build_web_app(service: Any) -> Router:
    """Return the router of ``--web-port``: the page at ``/``, the WebSocket at ``/ws``."""
    app = Router()
    app.add_route("/", lambda request: Response(
        200, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-cache")],
        PAGE))
    app.websocket("/ws", max_message_bytes=4096)(
        lambda request: LineBridge(service.protocol()))
    return app


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reactor chat</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; display: flex; height: 100vh; }
main { flex: 1; display: flex; flex-direction: column; }
#log { flex: 1; overflow-y: auto; padding: 8px 12px; margin: 0; white-space: pre-wrap; }
#log .notice { color: #666; } #log .error { color: #b00; }
form { display: flex; border-top: 1px solid #ccc; }
input { flex: 1; font: inherit; padding: 10px; border: 0; }
button { font: inherit; padding: 0 16px; }
aside { width: 180px; border-left: 1px solid #ccc; padding: 8px 12px; background: #f6f6f6; }
aside h2 { font-size: 13px; text-transform: uppercase; color: #666; }
#who { list-style: none; padding: 0; margin: 0; }
#status { font-size: 12px; color: #666; }
</style></head>
<body><main><pre id="log"></pre>
<form id="form"><input id="line" autocomplete="off" placeholder="your nick" autofocus>
<button>Send</button></form></main>
<aside><h2 id="room">lobby</h2><ul id="who"></ul><p id="status">connecting</p></aside>
<script>
"use strict";
const log = document.getElementById("log"), line = document.getElementById("line");
const who = document.getElementById("who"), room = document.getElementById("room");
const status = document.getElementById("status");
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://")
                         + location.host + "/ws");
let named = false, quietWho = 0;   // /who asked by the page itself: update the list only
function show(text) {
  const item = document.createElement("div");
  item.textContent = text;
  if (text.startsWith("* ")) item.className = "notice";
  if (text.startsWith("error: ")) item.className = "error";
  log.appendChild(item);
  log.scrollTop = log.scrollHeight;
}
function listWho(text) {
  const match = /^\\* in #(\\S+): (.*)$/.exec(text);
  if (!match) return false;
  room.textContent = match[1];
  who.replaceChildren(...match[2].replace(/ and \\d+ more$/, "").split(", ").map(name => {
    const li = document.createElement("li"); li.textContent = name; return li; }));
  return true;
}
ws.onopen = () => { status.textContent = "connected"; };
ws.onclose = () => { status.textContent = "disconnected"; line.disabled = true; };
ws.onmessage = event => {
  const text = String(event.data);
  if (listWho(text) && quietWho > 0) { quietWho -= 1; return; }
  show(text);
  if (text.startsWith("* you are ")) { named = true; line.placeholder = "message, or /help"; }
  if (named && (text.startsWith("* you are ") || /^\\* \\S+ (joined|left|was disconnected)/.test(text))) {
    quietWho += 1; ws.send("/who");
  }
};
document.getElementById("form").onsubmit = event => {
  event.preventDefault();
  if (!line.value || ws.readyState !== 1) return;
  ws.send(line.value);
  if (named) show("> " + line.value);
  line.value = "";
};
</script></body></html>
"""
