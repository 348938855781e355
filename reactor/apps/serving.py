"""What every server subcommand shares: its options, its protections, its life.

``add_server_options`` gives a subcommand the common switches (where to
listen, TLS, and the protections of ``docs/PROTECTIONS.md``), and
``serve`` runs it the same way every time::

    check options -> Limits + auth -> listen (log where) -> run until SIGINT/SIGTERM
        (SIGUSR1 and --stats-interval log the server's counters meanwhile)
    -> shutdown(grace): drain -> log the final counters

With ``--workers N`` the same steps run in each of N forked workers, and
this process supervises them (``reactor/workers.py``): it checks the
options, binds the sockets once (``bind_for_workers``) and logs where;
each worker re-reads the TLS and token files, listens on its inherited
sockets, says it is ready, and drains on SIGTERM or when the supervisor
dies.

``--trace FILE`` records every pass of the server's loop as Chrome
trace-event JSON (``reactor/trace.py``, docs/TRACING.md); it starts before
the server listens and ``loop.close()`` finishes the file after the drain.

Each subcommand (``echo.py``, ``chat.py``) supplies its protocol and, if it
needs them, its own ``Limits`` as the base the shared switches change
(chat caps each member's send buffer at ``--max-backlog`` that way).

A bad option stops the program before it listens, with one line saying
which option and why: ``serve`` raises ``SystemExit(message)``, and
``cli.main`` prints it (and the library's own argument errors) as
``python -m reactor SUBCOMMAND: error: ...``, without a traceback.
"""

import argparse
import functools
import logging
import math
import os
import signal
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..addresses import format_address
from ..network import Reactor
from ..policy import DEFAULT_LIMITS, Limits, Rate
from ..protect.auth import PskAuth, TokenAuth
from ..server import format_stats
from ..sockets import bind_tcp, bind_unix, inode, unlink_if_ours
from ..tls import server_context
from ..trace import DEFAULT_MAX_BYTES
from ..workers import sockets_in, supervise

logger = logging.getLogger("reactor")

#: The most ``--workers`` a supervisor runs (each is a process with its own loop).
MAX_WORKERS = 256


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
                        help="on shutdown or reload, connections are served this long before "
                             "what is left is closed (default 2)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="run N worker processes on the port, under a supervisor that "
                             "restarts them; SIGHUP reloads them gracefully (docs/SCALING.md)")
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
    group = parser.add_argument_group(
        "tracing", "record every loop pass for https://ui.perfetto.dev (docs/TRACING.md)")
    group.add_argument("--trace", metavar="FILE",
                       help="write Chrome trace-event JSON to FILE until shutdown; with "
                            "--workers, one file per worker: FILE with its pid before the "
                            "suffix (t.json -> t.4242.json); summarise with "
                            "'python -m reactor trace-report FILE'")
    group.add_argument("--trace-max-mb", type=float, default=DEFAULT_MAX_BYTES / 2 ** 20,
                       metavar="MB", help="stop tracing with a warning when FILE reaches this "
                                          "size (default %g)" % (DEFAULT_MAX_BYTES / 2 ** 20))


def limits_from_args(args: Any, base: Limits = DEFAULT_LIMITS) -> Limits:
    """Return ``base`` with the command line's protection switches applied; SystemExit if bad.

    ``base`` carries a subcommand's own fields (chat's send-buffer cap);
    the switches change only the fields they name, so both survive.
    """
    def rate(value: Optional[float]) -> Optional[Rate]:
        return Rate(value) if value else None
    try:
        return base.with_changes(
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


def header_token_auth(args: Any) -> Any:
    """Return the TokenAuth of ``--auth-token-file`` for an app that checks it in its protocol.

    kv (Redis's AUTH) and http (``Authorization: Bearer``) read the tokens
    themselves, so the option is cleared: reactor's first-line handshake
    must not ask for them too. Returns None without the option; SystemExit
    if the file is unusable.
    """
    if not args.auth_token_file:
        return None
    try:
        auth = TokenAuth.from_file(args.auth_token_file)
    except (OSError, ValueError) as exc:
        raise SystemExit("cannot use %s: %s" % (args.auth_token_file, exc)) from None
    args.auth_token_file = None
    return auth


def check_server_options(args: Any) -> None:
    """Refuse option values the library would take but misuse; SystemExit naming the option.

    Ports and hosts are not checked here: ``listen_tcp`` checks them and
    says what it got, and ``cli.main`` prints that as one line too.
    """
    if args.tls_key and not args.tls_cert:
        raise SystemExit("--tls-key needs --tls-cert")
    if not 0 < args.tls_handshake_timeout < math.inf:     # also refuses NaN
        raise SystemExit("--tls-handshake-timeout must be a finite number of seconds > 0, "
                         "got %g" % args.tls_handshake_timeout)
    if args.workers is not None and not 1 <= args.workers <= MAX_WORKERS:
        raise SystemExit("--workers must be a whole number from 1 to %d, got %d"
                         % (MAX_WORKERS, args.workers))
    if not 0 <= args.grace < math.inf:
        raise SystemExit("--grace must be a finite number of seconds >= 0, got %g" % args.grace)
    if args.stats_interval is not None and not 0 < args.stats_interval < math.inf:
        raise SystemExit("--stats-interval must be > 0 seconds, got %g" % args.stats_interval)
    if getattr(args, "trace", None) and not 0.001 <= args.trace_max_mb < math.inf:
        raise SystemExit("--trace-max-mb must be a number of megabytes >= 0.001, got %g"
                         % args.trace_max_mb)


def serve(args: Any, protocol_factory: Any, base_limits: Limits = DEFAULT_LIMITS,
          setup: Optional[Callable[[Any], Any]] = None,
          listening: Optional[Callable[[Any], None]] = None,
          companions: Optional[Callable[..., List[Any]]] = None,
          on_stop: Optional[Callable[[], None]] = None,
          companion_ports: Sequence[int] = ()) -> int:
    """Listen as ``args`` say, log where, run until a signal, then drain and stop.

    ``base_limits`` is the subcommand's own ``Limits``; the protection
    switches change it (``limits_from_args``). Raises ``SystemExit`` with
    one line for a bad option, before anything listens. An app whose state
    needs the loop (kv's keyspace and file) passes ``setup(loop)``, which
    returns the protocol factory, and may take the listening ``Server``
    from ``listening(server)``. ``companions(loop)`` starts other servers
    on the same loop (chat's web port, one of ``companion_ports``); they
    log where they listen and drain with the main one. ``on_stop()`` runs
    once after the drain, when no connection is left: the place to close
    an app's own client links (chat's Redis), which served the draining
    connections until then.

    With ``--workers N`` this process becomes a supervisor (``workers.py``):
    it binds here, once, then each forked worker runs the same steps on
    its own loop, with ``companions(loop, sockets)`` given the companion
    ports' sockets. ``setup`` runs in each worker, after its loop exists.
    """
    check_server_options(args)
    if args.tls_cert:
        server_context(args.tls_cert, args.tls_key)    # a bad file stops us here, not a worker
    limits, _ = limits_from_args(args, base_limits), auth_from_args(args)
    run_here = functools.partial(_serve_here, args, protocol_factory, limits, setup, listening,
                                 companions, on_stop)
    if not getattr(args, "workers", None):
        return run_here()
    listeners = bind_for_workers(args, limits, args.workers, companion_ports)
    unix_inode = inode(args.unix) if args.unix else None
    try:
        how = "%d workers, %s" % (args.workers, "a socket each" if listeners[0] is not
                                  listeners[-1] else "one shared socket")
        for address in [args.unix] if args.unix else [s.getsockname()
                                                      for s in listeners[0]["main"]]:
            logger.info("listening on %s%s (%s)", format_address(address),
                        " (tls)" if args.tls_cert else "", how)
        for address in [sock.getsockname() for socks in listeners[0]["more"] for sock in socks]:
            logger.info("also listening on %s (http)", format_address(address))
        return supervise(lambda sockets, link: run_here(sockets, link), listeners, args.grace)
    finally:
        for sock in sockets_in(listeners):
            sock.close()
        if args.unix:
            unlink_if_ours(args.unix, unix_inode)


def _serve_here(args: Any, protocol_factory: Any, limits: Limits, setup: Any, listening: Any,
                companions: Any, on_stop: Any, sockets: Optional[Dict[str, Any]] = None,
                link: Any = None) -> int:
    """Serve in this process: alone, or as worker ``link.slot`` on ``sockets``."""
    # Files are read here, so each worker of a reload reads them afresh.
    context = server_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    auth = auth_from_args(args)
    loop = Reactor(debug=True if getattr(args, "debug", False) else None)
    try:
        start_trace(loop, args, worker=link is not None)     # loop.close() finishes the file
        if setup is not None:
            protocol_factory = setup(loop)
        options = dict(limits=limits, ssl=context, auth=auth,
                       ssl_handshake_timeout=args.tls_handshake_timeout)
        if sockets is not None:
            server = loop.listen_tcp(protocol_factory, sockets=sockets["main"], **options)
        elif args.unix:
            server = loop.listen_unix(protocol_factory, args.unix, **options)
        else:
            server = loop.listen_tcp(protocol_factory, args.host or None, args.port, **options)
        if listening is not None:
            listening(server)
        others = []
        if companions is not None:
            others = companions(loop) if sockets is None else companions(loop, sockets["more"])
        if link is None:
            for address in server.addresses:
                logger.info("listening on %s%s%s", format_address(address),
                            " (tls)" if context else "",
                            " (auth: %s)" % auth.kind if auth else "")
            for other in others:
                for address in other.addresses:
                    logger.info("also listening on %s (http)", format_address(address))
        if hasattr(signal, "SIGUSR1"):
            loop.add_signal_handler(signal.SIGUSR1, server.log_stats)
        if args.stats_interval:
            loop.call_every(args.stats_interval, server.log_stats)
        if link is not None:              # a worker: SIGTERM or the supervisor's death drains
            loop.add_signal_handler(signal.SIGTERM, loop.stop)
            link.attach(loop, server.stats, loop.stop)
            link.ready()
        loop.run(stop_on_signals=link is None)
        logger.info("shutting down: draining %d open connection(s), %g s grace", len(server),
                    args.grace)
        for other in others:
            other.shutdown(args.grace)
        server.shutdown(args.grace, on_done=loop.stop)
        loop.run(stop_on_signals=link is None)        # a second signal ends the grace at once
        for transport in server.connections() + [t for o in others for t in o.connections()]:
            transport.abort()
        if on_stop is not None:
            on_stop()
        loop.run_once()
        logger.info("stopped: %s", format_stats(server.stats()))
    finally:
        loop.close()
    return 0


def start_trace(loop: Any, args: Any, worker: bool = False) -> None:
    """Start ``--trace FILE`` on ``loop`` if asked; a worker writes FILE with its pid inserted.

    A worker's own file keeps the JSON of each process whole; a reload's
    new workers write new files. ``OSError`` (an unwritable FILE) stops the
    server before it listens, as one line.
    """
    path = getattr(args, "trace", None)
    if not path:
        return
    if worker:
        stem, suffix = os.path.splitext(path)
        path = "%s.%d%s" % (stem, os.getpid(), suffix)
    loop.start_trace(path, max_bytes=int(args.trace_max_mb * 2 ** 20))


def bind_for_workers(args: Any, limits: Limits, count: int,
                     companion_ports: Sequence[int] = ()) -> List[Dict[str, Any]]:
    """Bind the listening sockets of ``count`` workers: one set per worker with SO_REUSEPORT,
    else one set they all share (the same dict ``count`` times).

    A set is ``{"main": [sockets], "more": [[sockets] per companion port]}``.
    """
    def bind_set(reuse_port: bool, ports: Sequence[int]) -> Dict[str, Any]:
        main = bind_tcp(args.host or None, ports[0], limits, reuse_port)
        return {"main": main, "more": [bind_tcp(args.host or None, port, limits, reuse_port)
                                       for port in ports[1:]]}
    if args.unix:
        sock = bind_unix(args.unix, limits)
        shared = {"main": [sock],
                  "more": [bind_tcp(args.host or None, port, limits) for port in companion_ports]}
        return [shared] * count
    try:
        first = bind_set(True, [args.port] + list(companion_ports))
    except ValueError:                                  # no SO_REUSEPORT here: share one set
        return [bind_set(False, [args.port] + list(companion_ports))] * count
    ports = [first["main"][0].getsockname()[1]] + [socks[0].getsockname()[1]
                                                    for socks in first["more"]]
    return [first] + [bind_set(True, ports) for _ in range(count - 1)]


#: Switches only stream servers use: (switch, attribute, its value when not given).
STREAM_ONLY_OPTIONS = (
    ("--unix", "unix", None), ("--max-connections", "max_connections", None),
    ("--tls-cert", "tls_cert", None), ("--tls-key", "tls_key", None),
    ("--tls-handshake-timeout", "tls_handshake_timeout", 10.0),
    ("--max-per-ip", "max_per_ip", None), ("--idle-timeout", "idle_timeout", None),
    ("--first-frame-timeout", "first_frame_timeout", None), ("--rate", "rate", None),
    ("--msg-rate", "msg_rate", None), ("--rate-action", "rate_action", "shape"),
    ("--auth-token-file", "auth_token_file", None), ("--psk-file", "psk_file", None),
    ("--auth-timeout", "auth_timeout", DEFAULT_LIMITS.auth_timeout_seconds),
    ("--workers", "workers", None))


def datagram_limits_from_args(args: Any, refused: Any = ()) -> Limits:
    """Return the ``Limits`` of a UDP server's switches; SystemExit naming a stream-only one.

    A UDP server takes the per-source protections (``--ip-rate``,
    ``--ip-msg-rate``, ``--allow``, ``--deny``: ``protect/datagram_guard.py``);
    ``refused`` adds a subcommand's own stream-only switches (echo's ``--framing``).
    """
    given = list(refused) + [switch for switch, name, unset in STREAM_ONLY_OPTIONS
                             if getattr(args, name, unset) != unset]
    if given:
        raise SystemExit("--udp takes only --host and --port, the per-source protections "
                         "--ip-rate, --ip-msg-rate, --allow and --deny, and --stats-interval; "
                         "not %s" % ", ".join(given))
    try:
        return DEFAULT_LIMITS.with_changes(
            ip_rate_bytes=Rate(args.ip_rate) if args.ip_rate else None,
            ip_rate_messages=Rate(args.ip_msg_rate) if args.ip_msg_rate else None,
            allow=tuple(args.allow), deny=tuple(args.deny))
    except ValueError as exc:
        raise SystemExit("bad protection option: %s" % exc) from None


def serve_datagrams(args: Any, protocol_factory: Any, refused: Any = ()) -> int:
    """Bind a UDP socket as ``args`` say, log where, run until a signal, then close.

    Raises ``SystemExit`` with one line for a switch UDP cannot use (see
    ``datagram_limits_from_args``) or a bad value, before anything binds.
    SIGUSR1 and ``--stats-interval`` log the counters (``DatagramTransport.stats``).
    """
    limits = datagram_limits_from_args(args, refused)
    check_server_options(args)
    loop = Reactor(debug=True if getattr(args, "debug", False) else None)
    try:
        start_trace(loop, args)
        transport = loop.listen_udp(protocol_factory, args.host or None, args.port,
                                    limits=limits)
        where = format_address(transport.get_extra_info("sockname"))
        logger.info("listening on %s (udp)", where)

        def log_stats() -> None:
            logger.info("stats %s (udp): %s", where, _format_counters(transport.stats()))
        if hasattr(signal, "SIGUSR1"):
            loop.add_signal_handler(signal.SIGUSR1, log_stats)
        if args.stats_interval:
            loop.call_every(args.stats_interval, log_stats)
        loop.run()
        transport.close()
        loop.run_once()
        logger.info("stopped (%s)", _format_counters(transport.stats()))
    finally:
        loop.close()
    return 0


def _format_counters(counters: Any) -> str:
    return ", ".join("%s=%d" % item for item in sorted(counters.items()))
