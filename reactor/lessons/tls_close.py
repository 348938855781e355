"""The TLS close hang: waiting for the peer's close_notify with a blocking read.

TLS ends a connection with a *close_notify* alert from each side, so that a
reader can tell "the stream ended" from "someone cut the TCP connection".
The stdlib's way to do it is ``SSLSocket.unwrap()``: send ours, then read
until the peer's arrives. On a blocking socket that read has no end if the
peer never answers (it crashed, stopped reading, or does not bother). In a
single-threaded server that is worse than one stuck connection: the loop
itself is stuck inside ``unwrap()``, and every other client waits. (The
opposite mistake, no close_notify at all, hides truncation from the peer.)

reactor's ``TLSTransport.close()`` sends close_notify after what is queued
and returns at once; the loop serves on, and the peer's close_notify (or its
EOF) closes the socket, or a 5 s timer does (``shutdown_timeout``).

The lesson: two TLS clients. One sends ``quit``, then never answers; the
other pings and waits for each echo, for ``seconds``. Each side reports the
time the server spent closing the silent client, how the pinger was served
meanwhile, and whether our close_notify reached the silent client.
"""

import contextlib
import os
import selectors
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from typing import Any, Dict, List

import reactor
from reactor.tls import client_context, server_context

from . import Outcome

TITLE = "TLS close hang: a blocking wait for close_notify freezes the loop"
PREVENTED_BY = ("tls.py:TLSTransport.close", "tls.py:TLSTransport._send_close_notify",
                "tls.py:TLSTransport._peer_close_notify")
PROVED_BY = ("tests/test_tls.py::test_close_notify_both_ways_and_truncation",
             "tests/test_server_layers.py::test_tls_shutdown_aborts_peers_that_never_answer_at_the_grace")
PING_EVERY_SECONDS = 0.002            # the pinger pings, waits for the echo, rests 2 ms


def run(seconds: float) -> List[Outcome]:
    """Close a silent TLS peer while another pings, for ``seconds`` per server; naive first."""
    with tempfile.TemporaryDirectory() as folder:
        certfile, keyfile = _throwaway_certificate(folder)
        contexts = (server_context(certfile, keyfile), client_context(cafile=certfile))
        return [_judge("naive", _naive_server, contexts, seconds),
                _judge("reactor", _reactor_server, contexts, seconds)]


def _naive_server(listener: socket.socket, context: ssl.SSLContext, stop: threading.Event,
                  timing: Dict[str, float]) -> None:
    """A TLS echo server in a selectors loop; ``quit`` closes the stdlib way."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    try:
        while not stop.is_set():
            for key, _ in selector.select(0.01):
                if key.fileobj is listener:
                    raw, _ = listener.accept()
                    raw.settimeout(5)          # (a blocking handshake: another lesson's bug)
                    tls = context.wrap_socket(raw, server_side=True)
                    tls.setblocking(False)
                    selector.register(tls, selectors.EVENT_READ)
                    continue
                tls = key.fileobj
                try:
                    data = tls.recv(4096)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    data = b""
                if data and b"quit" not in data:
                    tls.send(data)
                    continue
                selector.unregister(tls)
                started = timing.setdefault("close began", time.monotonic())
                # WRONG: unwrap() on a blocking socket sends our close_notify, then
                # waits for the peer's. Plain code has no timeout here, so a silent peer
                # holds the whole loop forever; the lesson's bound ends it after the run.
                tls.settimeout(max(timing["deadline"] + 0.2 - started, 0.01))
                with contextlib.suppress(OSError):
                    tls.unwrap()
                timing.setdefault("closing", time.monotonic() - started)   # the silent one's
                tls.close()
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        selector.close()


class _Echo(reactor.Protocol):
    """Echoes; on ``quit`` closes, and records how long close() took."""

    def __init__(self, timing: Dict[str, float]) -> None:
        self.timing = timing

    def data_received(self, data: bytes) -> None:
        if b"quit" not in data:
            self.transport.write(data)
            return
        started = self.timing.setdefault("close began", time.monotonic())
        self.transport.close()                 # right: close_notify sent, no waiting here
        self.timing["closing"] = time.monotonic() - started


def _reactor_server(listener: socket.socket, context: ssl.SSLContext, stop: threading.Event,
                    timing: Dict[str, float]) -> None:
    loop = reactor.Reactor()
    server = loop.listen_tcp(lambda: _Echo(timing), sockets=[listener], ssl=context)
    try:                                       # until stopped and every connection ended
        while not stop.is_set() or len(server) and time.monotonic() < timing["deadline"] + 5:
            loop.run_once(0.01)
    finally:
        for transport in server.connections():
            transport.abort()
        server.close()
        loop.run_once(0)
        loop.close()


def _judge(side: str, server: Any, contexts: Any, seconds: float) -> Outcome:
    server_ctx, client_ctx = contexts
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    timing = {"deadline": time.monotonic() + 30.0}
    thread = threading.Thread(target=server, args=(listener, server_ctx, stop, timing),
                              daemon=True)
    thread.start()
    clients: List[ssl.SSLSocket] = []
    pings = answered_after_quit = longest = saw_close_notify = 0
    try:
        while len(clients) < 2:
            raw = socket.create_connection(listener.getsockname(), 5)
            clients.append(client_ctx.wrap_socket(raw, server_hostname="localhost",
                                                  suppress_ragged_eofs=False))
        silent, pinger = clients
        started = time.monotonic()
        timing["deadline"] = deadline = started + seconds
        quit_sent = False
        while time.monotonic() < deadline:
            if not quit_sent and time.monotonic() >= started + seconds / 10:
                silent.sendall(b"quit\n")      # ... and this client never says anything again
                while "close began" not in timing and time.monotonic() < deadline:
                    time.sleep(0.001)
                quit_sent = True
            pinged = time.monotonic()
            pinger.settimeout(max(deadline - pinged, 0.01))
            try:
                pinger.sendall(b"ping\n")
                pings += 1
                answer = pinger.recv(100)
            except OSError:
                answer = b""
            longest = max(longest, time.monotonic() - pinged)
            time.sleep(PING_EVERY_SECONDS)
            answered_after_quit += quit_sent and answer == b"ping\n"
        silent.settimeout(2)
        with contextlib.suppress(OSError):     # SSLEOFError: TCP closed without close_notify
            saw_close_notify = silent.recv(100) == b""   # b'' only after a close_notify
    finally:
        for sock in clients:
            sock.close()
        stop.set()
        thread.join(10)
        listener.close()
    closing = timing.get("closing", float("nan"))
    figures: Dict[str, object] = {
        "seconds the server spent closing the silent client": round(closing, 4),
        "pings sent": pings, "pings answered once the close began": answered_after_quit,
        "longest wait for an echo, ms": round(longest * 1000, 1),
        "close_notify reached the silent client": bool(saw_close_notify)}
    ok = closing < seconds / 4 and answered_after_quit >= 1 and saw_close_notify
    if ok:
        verdict = ("close() sent close_notify and returned in {:.1f} ms; the pinger was "
                   "answered {:,} times meanwhile".format(closing * 1000, answered_after_quit))
    else:
        verdict = ("the server sat %.2f s %swaiting for a close_notify that never came; the "
                   "pinger waited %.2f s for one echo" % (
                       closing, "inside unwrap() " if side == "naive" else "", longest))
    return Outcome(side, figures, verdict, ok)


def _throwaway_certificate(folder: str) -> Any:
    """Make a self-signed certificate for localhost with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise FileNotFoundError("the tls-close-hang lesson makes its throwaway certificate with "
                                "the openssl command: install it (apt install openssl)")
    certfile, keyfile = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:"
                    "prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost", "-keyout", keyfile, "-out", certfile],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    return certfile, keyfile
