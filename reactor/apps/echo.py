"""``python -m reactor echo``: send every byte back to whoever sent it.

The smallest useful server, and a correct one: it applies backpressure.
With ``--framing line|length|netstring`` it echoes whole frames instead of
bytes (decoded, then re-encoded), and a frame over ``--max-frame`` bytes
closes that one connection with a logged reason. With ``--websocket`` it
speaks WebSocket on any path (``websocket/``), echoing each message with
its type; a message over ``--max-frame`` is closed with 1009.
When a client sends faster than it reads, our send buffer for it grows
past the high-water mark, the transport calls ``pause_writing()``, and the
echo stops *reading* from that client until the buffer drains. The
kernel's buffers fill, TCP's window closes, and the client is slowed down:
memory per client stays bounded by the water marks, whatever it does.
"""

import argparse
import logging
from typing import Any

from ..framed import FramedProtocol
from ..http.messages import Response
from ..http.options import HTTPOptions
from ..http.router import Router
from ..http.server import HTTPServerProtocol
from ..framing import DEFAULT_MAX_LENGTH, Framer, LengthPrefixFramer, LineFramer, NetstringFramer
from ..protocols import DatagramProtocol, Protocol
from ..websocket.protocol import WebSocketProtocol
from .serving import add_server_options, serve, serve_datagrams

logger = logging.getLogger("reactor")

SUMMARY = "echo server: every byte received is sent back"


class EchoProtocol(Protocol):
    """Echo bytes back; read only while the peer keeps up with what we send."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class FramedEchoProtocol(FramedProtocol):
    """Echo whole frames, re-encoded; same backpressure as EchoProtocol."""

    def frames_received(self, frames: Any) -> None:
        self.send_frames(frames)           # one write for the whole batch

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


class DatagramEchoProtocol(DatagramProtocol):
    """Send every datagram back to its sender."""

    __slots__ = ()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)

    def error_received(self, exc: OSError) -> None:
        logger.debug("datagram error: %s", exc)


#: --framing name -> framer prototype for a maximum frame size
FRAMINGS = {
    "line": lambda max_frame: LineFramer(max_length=max_frame),
    "length": lambda max_frame: LengthPrefixFramer(4, "big", max_length=max_frame),
    "netstring": lambda max_frame: NetstringFramer(max_length=max_frame),
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the echo options to ``parser``."""
    add_server_options(parser, default_port=7000)
    parser.add_argument("--framing", choices=["raw"] + sorted(FRAMINGS), default="raw",
                        help="raw bytes (default); line: lines ending in \\n; length: 4-byte "
                             "big-endian length then payload; netstring: LEN:PAYLOAD,")
    parser.add_argument("--max-frame", type=int, default=DEFAULT_MAX_LENGTH, metavar="BYTES",
                        help="largest frame accepted (default 1 MiB); a larger one closes "
                             "that connection")
    parser.add_argument("--udp", action="store_true",
                        help="echo UDP datagrams to their sender instead of a TCP stream "
                             "(protections: --ip-rate, --ip-msg-rate, --allow, --deny, per "
                             "source; see docs/UDP.md)")
    parser.add_argument("--websocket", action="store_true",
                        help="speak WebSocket (RFC 6455) on any path: each message is echoed "
                             "with its type; a request that is not an upgrade gets 426; "
                             "--max-frame bounds a message")


def run(args: Any) -> int:
    """Serve until SIGINT/SIGTERM, then shut down gracefully."""
    if args.websocket:
        if args.udp or args.framing != "raw":
            raise SystemExit("--websocket frames its own messages: not with --udp or --framing")
        if args.max_frame < 1:
            raise SystemExit("--max-frame must be at least 1 byte")
        return serve(args, lambda: HTTPServerProtocol(websocket_echo_app(args.max_frame),
                                                      HTTPOptions()))
    if args.udp:
        refused = (["--framing"] if args.framing != "raw" else []) + (
            ["--max-frame"] if args.max_frame != DEFAULT_MAX_LENGTH else [])
        return serve_datagrams(args, DatagramEchoProtocol, refused)
    if args.framing == "raw":
        return serve(args, EchoProtocol)
    if args.max_frame < 1:
        raise SystemExit("--max-frame must be at least 1 byte")
    return serve(args, framed_factory(FramedEchoProtocol, FRAMINGS[args.framing](args.max_frame)))


class WebSocketEcho(WebSocketProtocol):
    """Send each message back as it came: text as text, binary as binary."""

    def message_received(self, data: Any, is_text: bool) -> None:
        """Echo one message."""
        self.send(data)


def websocket_echo_app(max_message_bytes: int) -> Router:
    """Return the router of ``echo --websocket``: every path upgrades; anything else is 426."""
    app = Router()
    app.websocket("/{path:path}", max_message_bytes=max_message_bytes)(WebSocketEcho)
    app.add_route("/{path:path}", _upgrade_required,
                  ["HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
    return app


def _upgrade_required(request: Any) -> Response:
    return Response(426, [("Upgrade", "websocket"), ("Connection", "close")],
                    "426 Upgrade Required: this is a WebSocket echo server\n")


def framed_factory(protocol_class: Any, prototype: Framer) -> Any:
    """Return a factory making ``protocol_class`` instances that use ``prototype``'s settings."""
    def factory() -> Any:
        protocol = protocol_class()
        protocol.framer = prototype          # cloned in connection_made
        return protocol
    return factory
