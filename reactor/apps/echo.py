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
import signal
from typing import Any, Optional

from ..auth import PskAuth, TokenAuth
from ..framed import FramedProtocol
from ..framing import DEFAULT_MAX_LENGTH, Framer, LengthPrefixFramer, LineFramer, NetstringFramer
from ..monitor import format_stats
from ..network import Reactor
from ..policy import DEFAULT_LIMITS, Limits, Rate
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
        if (args.framing != "raw" or args.unix or args.max_connections or args.tls_cert
                or limits_from_args(args) != DEFAULT_LIMITS.with_changes(
                    auth_timeout_seconds=args.auth_timeout)
                or args.auth_token_file or args.psk_file or args.stats_interval):
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
    group = parser.add_argument_group(
        "protections", "limits for a server that faces the internet (all off unless given; "
        "see docs/PROTECTIONS.md)")
    group.add_argument("--max-per-ip", type=int, metavar="N",
                       help="at most N open connections per client address (IPv6: per /64)")
    group.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                       help="close connections with no bytes either way for this long")
    group.add_argument("--first-frame-timeout", type=float, metavar="SECONDS",
                       help="close connections that send no complete first line/frame "
                            "(first byte, for raw echo) this soon after connecting")
    group.add_argument("--rate", type=float, metavar="BYTES_PER_S",
                       help="per connection: read at most this many bytes per second "
                            "(bursts of one second's worth)")
    group.add_argument("--msg-rate", type=float, metavar="N_PER_S",
                       help="per connection: at most N messages per second (frames; reads, "
                            "for raw echo)")
    group.add_argument("--ip-rate", type=float, metavar="BYTES_PER_S",
                       help="like --rate, for all connections of one client address together")
    group.add_argument("--ip-msg-rate", type=float, metavar="N_PER_S",
                       help="like --msg-rate, for all connections of one client address together")
    group.add_argument("--rate-action", choices=["shape", "disconnect"], default="shape",
                       help="over a rate: stop reading until it refills (default; nothing is "
                            "lost), or disconnect")
    group.add_argument("--allow", action="append", default=[], metavar="CIDR",
                       help="accept only clients in this network (repeatable)")
    group.add_argument("--deny", action="append", default=[], metavar="CIDR",
                       help="refuse clients in this network (repeatable; wins over --allow)")
    group.add_argument("--auth-token-file", metavar="FILE",
                       help="clients must send one of FILE's tokens (one per line) as their "
                            "first line (first frame, for length/netstring framing); use TLS")
    group.add_argument("--psk-file", metavar="FILE",
                       help="clients must answer an HMAC-SHA256 challenge with FILE's key "
                            "(reactor.auth); safe without TLS")
    group.add_argument("--auth-timeout", type=float, default=DEFAULT_LIMITS.auth_timeout_seconds,
                       metavar="SECONDS", help="time allowed for auth (default %g)"
                       % DEFAULT_LIMITS.auth_timeout_seconds)
    group.add_argument("--stats-interval", type=float, metavar="SECONDS",
                       help="log the server's counters every SECONDS (SIGUSR1 logs them at once)")


def limits_from_args(args: Any) -> Limits:
    """Build the server's ``Limits`` from the command line; SystemExit on a bad value."""
    def rate(value: Optional[float]) -> Optional[Rate]:
        return Rate(value) if value else None
    try:
        return DEFAULT_LIMITS.with_changes(
            max_connections=args.max_connections, max_per_ip=args.max_per_ip,
            idle_timeout_seconds=args.idle_timeout or None,
            first_frame_timeout_seconds=args.first_frame_timeout or None,
            auth_timeout_seconds=args.auth_timeout,
            rate_bytes=rate(args.rate), rate_messages=rate(args.msg_rate),
            ip_rate_bytes=rate(args.ip_rate), ip_rate_messages=rate(args.ip_msg_rate),
            rate_action=args.rate_action, allow=tuple(args.allow), deny=tuple(args.deny))
    except ValueError as exc:
        raise SystemExit("bad protection option: %s" % exc) from None


def auth_from_args(args: Any) -> Any:
    """Return the authenticator the command line asks for (or None); SystemExit if unusable."""
    if args.auth_token_file and args.psk_file:
        raise SystemExit("--auth-token-file and --psk-file exclude each other; pick one")
    try:
        if args.auth_token_file:
            return TokenAuth.from_file(args.auth_token_file)
        if args.psk_file:
            return PskAuth.from_file(args.psk_file)
    except (OSError, ValueError) as exc:
        raise SystemExit("cannot use %s: %s" % (args.auth_token_file or args.psk_file, exc)) \
            from None
    return None


def serve(args: Any, protocol_factory: Any) -> int:
    """Listen as ``args`` say, log where, run until a signal, then shut down."""
    if args.tls_key and not args.tls_cert:
        raise SystemExit("--tls-key needs --tls-cert")
    context = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    limits, auth = limits_from_args(args), auth_from_args(args)
    if args.stats_interval is not None and not args.stats_interval > 0:
        raise SystemExit("--stats-interval must be > 0 seconds")
    loop = Reactor(debug=True if getattr(args, "debug", False) else None)
    try:
        options = dict(limits=limits, ssl=context, auth=auth,
                       ssl_handshake_timeout=args.tls_handshake_timeout)
        if args.unix:
            server = loop.listen_unix(protocol_factory, args.unix, **options)
        else:
            server = loop.listen_tcp(protocol_factory, args.host or None, args.port, **options)
        for address in server.addresses:
            logger.info("listening on %s%s%s", format_address(address),
                        " (tls)" if context else "", " (auth: %s)" % auth.kind if auth else "")
        if hasattr(signal, "SIGUSR1"):
            loop.add_signal_handler(signal.SIGUSR1, server.log_stats)
        if args.stats_interval:
            log_every(loop, args.stats_interval, server.log_stats)
        loop.run()
        logger.info("shutting down: %d open connection(s), %.1f s grace",
                    len(server), args.grace)
        server.shutdown(args.grace, on_done=loop.stop)
        loop.run()                       # a second signal ends the grace at once
        for transport in server.connections():
            transport.abort()
        loop.run_once()
        logger.info("stopped: %s", format_stats(server.stats()))
    finally:
        loop.close()
    return 0


def log_every(loop: Any, interval_seconds: float, log: Any) -> None:
    """Call ``log()`` every ``interval_seconds`` on one timer, reset after each firing."""
    def tick() -> None:
        log()
        timer.reset(interval_seconds)
    timer = loop.call_later(interval_seconds, tick)


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
