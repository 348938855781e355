"""``python -m reactor echo``: send every byte back to whoever sent it.

The smallest useful server, and a correct one: it applies backpressure.
With ``--framing line|length|netstring`` it echoes whole frames instead of
bytes (decoded, then re-encoded), and a frame over ``--max-frame`` bytes
closes that one connection with a logged reason.
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
from ..framing import DEFAULT_MAX_LENGTH, Framer, LengthPrefixFramer, LineFramer, NetstringFramer
from ..network import Reactor
from ..protocols import DatagramProtocol, Protocol
from ..tls import server_context

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
                        help="echo UDP datagrams to their sender instead of a TCP stream")


def run(args: Any) -> int:
    """Serve until SIGINT/SIGTERM, then shut down gracefully."""
    if args.udp:
        if args.framing != "raw" or args.unix or args.max_connections or args.tls_cert:
            raise SystemExit("--udp takes only --host and --port")
        return serve_datagrams(args, DatagramEchoProtocol)
    if args.framing == "raw":
        return serve(args, EchoProtocol)
    if args.max_frame < 1:
        raise SystemExit("--max-frame must be at least 1 byte")
    return serve(args, framed_factory(FramedEchoProtocol, FRAMINGS[args.framing](args.max_frame)))


def framed_factory(protocol_class: Any, prototype: Framer) -> Any:
    """Return a factory making ``protocol_class`` instances that use ``prototype``'s settings."""
    def factory() -> Any:
        protocol = protocol_class()
        protocol.framer = prototype          # cloned in connection_made
        return protocol
    return factory


def add_server_options(parser: argparse.ArgumentParser, default_port: int) -> None:
    """Add the options every stream server subcommand shares."""
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; '' for all)")
    parser.add_argument("--port", type=int, default=default_port,
                        help="TCP port (default %d; 0 picks a free one)" % default_port)
    parser.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead of TCP")
    parser.add_argument("--max-connections", type=int, metavar="N",
                        help="accept at most N open connections; more are closed at once")
    parser.add_argument("--grace", type=float, default=2.0, metavar="SECONDS",
                        help="on shutdown, time given to connections to flush (default 2)")
    parser.add_argument("--tls-cert", metavar="CERT",
                        help="serve TLS with this certificate chain (PEM)")
    parser.add_argument("--tls-key", metavar="KEY",
                        help="private key for --tls-cert (PEM; default: inside CERT)")
    parser.add_argument("--tls-handshake-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="drop clients that have not finished the TLS handshake (default 10)")


def serve(args: Any, protocol_factory: Any) -> int:
    """Listen as ``args`` say, log where, run until a signal, then shut down."""
    if args.tls_key and not args.tls_cert:
        raise SystemExit("--tls-key needs --tls-cert")
    context = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    loop = Reactor(debug=True if getattr(args, "debug", False) else None)
    try:
        options = dict(max_connections=args.max_connections, ssl=context,
                       ssl_handshake_timeout=args.tls_handshake_timeout)
        if args.unix:
            server = loop.listen_unix(protocol_factory, args.unix, **options)
        else:
            server = loop.listen_tcp(protocol_factory, args.host or None, args.port, **options)
        for address in server.addresses:
            logger.info("listening on %s%s", format_address(address), " (tls)" if context else "")
        loop.run()
        logger.info("shutting down: %d open connection(s), %.1f s grace",
                    len(server), args.grace)
        server.shutdown(args.grace, on_done=loop.stop)
        loop.run()                       # a second signal ends the grace at once
        for transport in server.connections():
            transport.abort()
        loop.run_once()
        logger.info("stopped (%s)", ", ".join("%s=%d" % item for item in
                                               sorted(server.stats().items())))
    finally:
        loop.close()
    return 0


def serve_datagrams(args: Any, protocol_factory: Any) -> int:
    """Bind a UDP socket as ``args`` say, log where, run until a signal, then close."""
    loop = Reactor(debug=True if getattr(args, "debug", False) else None)
    try:
        transport = loop.listen_udp(protocol_factory, args.host or None, args.port)
        logger.info("listening on %s (udp)", format_address(transport.get_extra_info("sockname")))
        loop.run()
        transport.close()
        loop.run_once()
        logger.info("stopped (%s)", ", ".join("%s=%d" % item for item in
                                               sorted(transport.stats().items())))
    finally:
        loop.close()
    return 0


def format_address(address: Any) -> str:
    """Render a socket address as ``HOST:PORT``, ``[V6]:PORT`` or a Unix path."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    return str(address)
