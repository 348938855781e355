"""``python -m reactor http``: static files over HTTP/1.1, with the protections.

Serves the files under ``--root`` (default: the current directory) with GET
and HEAD, ``index.html`` for a directory, never a listing and never a byte
from outside the root (``reactor/http/static.py`` has the rules). Keep-alive,
pipelining, conditional requests (304) and byte ranges (206/416) work as
browsers and ``curl`` expect. The layers, bottom up::

    http/parser.py    bytes -> request events (sans-I/O), limits with their statuses
    http/router.py    method and path -> handler (here: one static mount)
    http/server.py    one connection: parser, router, timeouts, sendfile
    http/static.py    a path -> a file under the root, or 304/206/404
    http.py (here)    the command line and its protections

``--auth-token-file`` asks every request for ``Authorization: Bearer
TOKEN`` (answering 401 otherwise), since HTTP clients speak that rather than
reactor's first-line token; use it with TLS.
"""

import argparse
import logging
import os
from typing import Any

from ..http.messages import Request, Response
from ..http.router import Router
from ..http.server import HTTPOptions, HTTPServerProtocol
from ..http.static import StaticFiles
from ..protect.auth import TokenAuth
from .serving import add_server_options, header_token_auth, serve

logger = logging.getLogger("reactor")

SUMMARY = "static files over HTTP/1.1 (GET/HEAD, ranges, 304), for curl and browsers"
DEFAULT_PORT = 8000


class BearerAuth:
    """Let a request through to ``handler`` only with ``Authorization: Bearer <a token>``.

    A wrong or missing token is answered 401 and the connection closed, so
    guessing costs a connection per guess (and ``--max-per-ip`` and the
    rate switches bound those).
    """

    def __init__(self, handler: Any, auth: TokenAuth) -> None:
        self.handler, self.auth = handler, auth

    def __call__(self, request: Request) -> Any:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not self.auth.check(token.strip().encode("utf-8")):
            return Response(401, [("WWW-Authenticate", 'Bearer realm="reactor"'),
                                  ("Connection", "close")], "401 Unauthorized\n")
        return self.handler(request)


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the http subcommand's options to its sub-parser."""
    add_server_options(parser, DEFAULT_PORT)
    for action in parser._actions:
        if action.dest == "auth_token_file":
            action.help = ("require 'Authorization: Bearer TOKEN' with one of FILE's tokens "
                           "(one per line, # comments skipped); use TLS")
        elif action.dest in ("psk_file", "first_frame_timeout"):
            action.help = argparse.SUPPRESS
    parser.add_argument("--root", default=".", metavar="DIR",
                        help="serve the files under DIR (default: the current directory)")
    parser.add_argument("--access-log", action="store_true",
                        help="log each request in Common Log Format (logger reactor.access)")
    parser.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="close a connection whose request head is not complete this "
                             "long after it began, or after connecting (default 10)")
    parser.add_argument("--keepalive-timeout", type=float, default=5.0, metavar="SECONDS",
                        help="close a keep-alive connection idle this long (default 5)")
    parser.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="close a connection whose request body stalls this long "
                             "(default 30)")
    parser.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES",
                        help="answer 413 to a request body over BYTES (default 1 MiB)")


def build_app(root: str, auth: Any = None) -> Router:
    """Return the router of ``python -m reactor http``: one static mount at ``/``."""
    static: Any = StaticFiles(root)
    if auth is not None:
        static = BearerAuth(static, auth)
    app = Router()
    app.add_route("/{path:path}", static, ["GET", "HEAD"])
    return app


def run(args: Any) -> int:
    """Serve files until SIGINT/SIGTERM; SystemExit with one line for a bad option."""
    if not os.path.isdir(args.root):
        raise SystemExit("--root %s is not a directory" % args.root)
    if args.psk_file:
        raise SystemExit("http authenticates with 'Authorization: Bearer': use "
                         "--auth-token-file, not --psk-file")
    if args.first_frame_timeout:
        raise SystemExit("http uses --header-timeout, not --first-frame-timeout")
    auth = header_token_auth(args)          # the Authorization header, not the handshake
    if args.max_body < 1:
        raise SystemExit("--max-body must be a whole number of bytes >= 1, got %d"
                         % args.max_body)
    try:
        options = HTTPOptions(header_timeout=args.header_timeout,
                              keepalive_timeout=args.keepalive_timeout,
                              body_timeout=args.body_timeout, max_body_bytes=args.max_body,
                              access_log=args.access_log)
    except ValueError as exc:
        raise SystemExit("--" + str(exc).replace("_", "-")) from None
    app = build_app(args.root, auth)
    logger.info("serving %s", os.path.abspath(args.root))
    return serve(args, lambda: HTTPServerProtocol(app, options))


__all__ = ["BearerAuth", "build_app", "configure", "run"]
