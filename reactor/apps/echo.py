"""``python -m reactor echo``: send every byte back to whoever sent it.

The smallest useful server, and a correct one: it applies backpressure.
When a client sends faster than it reads, our send buffer for it grows
past the high-water mark, the transport calls ``pause_writing()``, and the
echo stops *reading* from that client until the buffer drains. The
kernel's buffers fill, TCP's window closes, and the client is slowed down:
memory per client stays bounded by the water marks, whatever it does.
"""

import argparse
import logging
from typing import Any

from ..network import Reactor
from ..protocols import Protocol

logger = logging.getLogger("reactor")

SUMMARY = "echo server: every byte received is sent back"


class EchoProtocol(Protocol):
    """Echo bytes back; read only while the peer keeps up with what we send."""

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the echo options to ``parser``."""
    add_server_options(parser, default_port=7000)


def run(args: Any) -> int:
    """Serve until SIGINT/SIGTERM, then shut down gracefully."""
    return serve(args, EchoProtocol)


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


def serve(args: Any, protocol_factory: Any) -> int:
    """Listen as ``args`` say, log where, run until a signal, then shut down."""
    loop = Reactor(debug=True if getattr(args, "debug", False) else None)
    try:
        if args.unix:
            server = loop.listen_unix(protocol_factory, args.unix,
                                      max_connections=args.max_connections)
        else:
            server = loop.listen_tcp(protocol_factory, args.host or None, args.port,
                                     max_connections=args.max_connections)
        for address in server.addresses:
            logger.info("listening on %s", format_address(address))
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


def format_address(address: Any) -> str:
    """Render a socket address as ``HOST:PORT``, ``[V6]:PORT`` or a Unix path."""
    if isinstance(address, tuple):
        host, port = address[0], address[1]
        return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    return str(address)
