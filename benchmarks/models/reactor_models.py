"""reactor's own servers: echo (one process, and under its --workers supervisor), echo behind
every protection, TLS, UDP and length-prefixed echo."""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

from .registry import register
from .support import CERTS, ROOT, ready, report_idle, start_tracing

#: The token the echo-protected server accepts and the load generator sends first.
BENCH_TOKEN = b"benchmark-token-0123456789abcdef"
#: reactor-workers: how many worker processes its supervisor runs
WORKERS = 2
ACCEPTING = re.compile(r"worker (\d+) \(pid (\d+)\) is accepting")


@register("reactor", speaks=("echo",), idle=True,
          note="reactor.Reactor serving reactor.apps.echo.EchoProtocol in one process")
def serve_reactor(port, options):
    import reactor
    from reactor.apps.echo import EchoProtocol
    start_tracing(options)
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", port)
    if options.measure_idle:
        loop.add_signal_handler(signal.SIGUSR1, report_idle, lambda: len(server))
    ready()
    loop.run()
    loop.close()


@register("reactor-workers", speaks=("echo",),
          note="python -m reactor echo --workers %d: reactor's own supervisor and %d worker "
               "processes (this process waits for them; CPU is counted over the whole tree)"
               % (WORKERS, WORKERS))
def serve_reactor_workers(port, options):
    """Run reactor's CLI with --workers as a child; say ready once every worker accepts;
    pass SIGTERM on (the supervisor drains its workers) and exit with it."""
    command = [sys.executable, "-m", "reactor", "--log-level", "INFO", "echo",
               "--port", str(port), "--workers", str(WORKERS), "--grace", "1"]
    with tempfile.TemporaryFile(mode="w+") as log:
        child = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=log)
        signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
        deadline = time.monotonic() + 20
        while True:
            log.seek(0)
            text = log.read()
            if len(set(ACCEPTING.findall(text))) >= WORKERS:
                break
            exited = child.poll()
            if exited is not None or time.monotonic() > deadline:
                child.kill()
                child.wait()
                lines = text.strip().splitlines()
                sys.exit("reactor-workers: the supervisor %s: %s"
                         % ("was not ready in 20 s" if exited is None else "exited (%d)" % exited,
                            lines[-1] if lines else "no output"))
            time.sleep(0.05)
        ready()
        child.wait()


@register("reactor-protected", speaks=("echo-protected",),
          note="reactor echo behind token auth, an idle timeout (--idle-timeout S), a per-IP "
               "cap and four rate limits, all far above the load")
def serve_reactor_protected(port, options):
    """The limits are set far above what the benchmark sends, so they cost
    their bookkeeping but never bind. ``--idle-timeout S`` (default 300)
    is what the slowloris measurement shortens."""
    import reactor
    from reactor.apps.echo import EchoProtocol
    from reactor.auth import TokenAuth
    from reactor.policy import Rate
    limits = reactor.Limits(
        idle_timeout_seconds=options.idle_timeout, max_per_ip=100000,
        rate_bytes=Rate(1e9), rate_messages=Rate(1e7),
        ip_rate_bytes=Rate(1e10), ip_rate_messages=Rate(1e8))
    loop = reactor.Reactor()
    server = loop.listen_tcp(EchoProtocol, "127.0.0.1", port, limits=limits,
                             auth=TokenAuth([BENCH_TOKEN]))
    loop.add_signal_handler(signal.SIGUSR1, lambda: print("connections %d" % len(server),
                                                          flush=True))
    ready()
    loop.run()
    loop.close()


@register("reactor-tls", speaks=("echo-tls",), note="reactor echo with reactor.tls")
def serve_reactor_tls(port, options):
    import reactor
    from reactor.apps.echo import EchoProtocol
    from reactor.tls import server_context
    context = server_context(os.path.join(CERTS, "server.pem"), os.path.join(CERTS, "server.key"))
    loop = reactor.Reactor()
    loop.listen_tcp(EchoProtocol, "127.0.0.1", port, ssl=context)
    ready()
    loop.run()
    loop.close()


@register("reactor-udp", speaks=("echo-udp",), note="reactor.apps.echo.DatagramEchoProtocol")
def serve_reactor_udp(port, options):
    import reactor
    from reactor.apps.echo import DatagramEchoProtocol
    loop = reactor.Reactor()
    transport = loop.listen_udp(DatagramEchoProtocol, "127.0.0.1", port)
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    ready()
    loop.run()
    loop.close()


@register("reactor-length", speaks=("echo-framed",),
          note="reactor's FramedEchoProtocol with a 4-byte length framer")
def serve_reactor_length(port, options):
    import reactor
    from reactor.apps.echo import FRAMINGS, FramedEchoProtocol, framed_factory
    loop = reactor.Reactor()
    loop.listen_tcp(framed_factory(FramedEchoProtocol, FRAMINGS["length"](1 << 20)),
                    "127.0.0.1", port)
    ready()
    loop.run()
    loop.close()
