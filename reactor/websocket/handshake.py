"""The WebSocket opening handshake (RFC 6455 section 4), sans-I/O: headers in, verdicts out.

An HTTP/1.1 GET asks to switch protocols; the server proves it read the key::

    GET /chat HTTP/1.1                        HTTP/1.1 101 Switching Protocols
    Host: example.com                         Upgrade: websocket
    Upgrade: websocket                        Connection: Upgrade
    Connection: Upgrade                       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
    Sec-WebSocket-Version: 13                 accept = base64(sha1(key + GUID))

The server half is ``check_client_request`` (a request's method, version and
fields, as ``(lowercased name, value)`` pairs: what iterating
``reactor.http.messages.Headers`` gives) then ``server_response_headers``
for the 101; the client half is ``client_request_headers`` then
``check_server_response``. Nothing here reads a socket or writes a status
line: the HTTP server and client own those. ``parse_extensions`` reads the
``Sec-WebSocket-Extensions`` grammar (RFC 6455 9.1) for ``deflate.py``.

A refusal raises :class:`HandshakeError` with the status to answer: 400 for a
malformed request, 426 (with ``Sec-WebSocket-Version: 13`` in ``headers``)
for a version we do not speak. On the client side, ``status`` is what the
server answered (101 when its fields were wrong); the client must then fail
the connection (RFC 6455 4.1).

Discussion: whose preference picks the subprotocol. RFC 6455 lets the
server choose any one the client offered. ``choose_subprotocol`` takes the
server's order: the server knows which of its protocols is newest or
cheapest, and a client that cares can offer only one.
"""

import base64
import binascii
import hashlib
import os
import re
from http import HTTPStatus
from typing import Iterable, List, Optional, Sequence, Tuple

from ..errors import FramingError

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"     #: RFC 6455 1.3: appended to the key
VERSION = "13"                                     #: the only version RFC 6455 defines

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"           # RFC 9110 5.6.2
_TOKEN_ONLY = re.compile(_TOKEN + r"\Z")
_EXTENSION_NAME = re.compile(r"[ \t]*(%s)[ \t]*" % _TOKEN)
_EXTENSION_PARAM = re.compile(r';[ \t]*(%s)[ \t]*(?:=[ \t]*(?:(%s)|"((?:[^"\\]|\\.)*)")[ \t]*)?'
                              % (_TOKEN, _TOKEN))
_TARGET = re.compile(r"/[\x21-\x7e]*\Z")
Fields = List[Tuple[str, str]]


class HandshakeError(FramingError):
    """An opening handshake failed: answer ``status`` with ``headers``, then close.

    ``phrase`` is the status's reason phrase; ``reason`` stays ``"framing"``.
    """

    def __init__(self, status: int, message: str, headers: Iterable[Tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status, self.headers = status, list(headers)
        try:
            self.phrase = HTTPStatus(status).phrase
        except ValueError:
            self.phrase = ""


class ClientHandshake:
    """A valid upgrade request: its key, offered subprotocols and extensions header.

    ``extensions`` is every ``Sec-WebSocket-Extensions`` field joined with
    ", " (None when absent); pass it to ``deflate.negotiate_server``.
    """

    __slots__ = ("key", "subprotocols", "extensions")

    def __init__(self, key: str, subprotocols: List[str], extensions: Optional[str]) -> None:
        self.key, self.subprotocols, self.extensions = key, subprotocols, extensions

    def __repr__(self) -> str:
        return "ClientHandshake(%r, %r, %r)" % (self.key, self.subprotocols, self.extensions)


def accept_key(client_key: str) -> str:
    """Return ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key``: base64(sha1(key + GUID))."""
    digest = hashlib.sha1((client_key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def check_client_request(method: str, http_version: str,
                         headers: Iterable[Tuple[str, str]]) -> ClientHandshake:
    """Check an upgrade request (server side); return what the response needs.

    ``http_version`` is ``"1.1"`` or ``"HTTP/1.1"``. Raises ``HandshakeError``:
    400 for a method other than GET, a version other than HTTP/1.1, no
    ``websocket`` token in Upgrade or ``upgrade`` in Connection, or a
    missing, repeated or malformed key (it must be base64 of 16 bytes);
    426 for a ``Sec-WebSocket-Version`` other than 13.
    """
    fields = _collect(headers)
    if method != "GET":
        raise HandshakeError(400, "a WebSocket upgrade must be a GET, not %s" % method)
    if http_version not in ("1.1", "HTTP/1.1"):
        raise HandshakeError(400, "a WebSocket upgrade needs HTTP/1.1, not %s" % http_version)
    _require_upgrade_tokens(fields, 400)
    keys = fields.get("sec-websocket-key", [])
    if len(keys) != 1 or not _is_valid_key(keys[0].strip()):
        raise HandshakeError(400, "Sec-WebSocket-Key must appear once, as base64 of 16 bytes")
    versions = fields.get("sec-websocket-version", [])
    if not versions:
        raise HandshakeError(400, "the request has no Sec-WebSocket-Version")
    if [value.strip() for value in versions] != [VERSION]:
        raise HandshakeError(426, "Sec-WebSocket-Version %s is not 13" % ", ".join(versions),
                             [("Sec-WebSocket-Version", VERSION)])
    extensions = fields.get("sec-websocket-extensions")
    return ClientHandshake(keys[0].strip(), _list_tokens(fields, "sec-websocket-protocol"),
                           ", ".join(extensions) if extensions else None)


def server_response_headers(handshake: ClientHandshake, subprotocol: Optional[str] = None,
                            extensions: Optional[str] = None) -> Fields:
    """Return the 101 response's fields: Upgrade, Connection, Accept, and the agreed extras.

    Raises ``ValueError`` if ``subprotocol`` is not one the client offered.
    """
    fields = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Accept", accept_key(handshake.key))]
    if subprotocol is not None:
        if subprotocol not in handshake.subprotocols:
            raise ValueError("the client did not offer subprotocol %r" % subprotocol)
        fields.append(("Sec-WebSocket-Protocol", subprotocol))
    if extensions:
        fields.append(("Sec-WebSocket-Extensions", extensions))
    return fields


def choose_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> Optional[str]:
    """Return the first of ``supported`` (the server's order) that the client offered, or None."""
    for name in supported:
        if name in offered:
            return name
    return None


def client_request_headers(host: str, path: str, subprotocols: Sequence[str] = (),
                           extensions: Optional[str] = None) -> Tuple[str, Fields]:
    """Return a fresh key and the fields of ``GET path HTTP/1.1`` (client side).

    Keep the key for ``check_server_response``. Raises ``ValueError`` for a
    ``path`` that cannot follow GET (it must start with "/", no spaces or
    controls) or a subprotocol that is not a token.
    """
    if not _TARGET.match(path):
        raise ValueError("a request path must start with '/' and hold no spaces: %r" % path)
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    fields = [("Host", host), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", VERSION)]
    if subprotocols:
        for name in subprotocols:
            if not _TOKEN_ONLY.match(name):
                raise ValueError("a subprotocol must be a token, not %r" % name)
        fields.append(("Sec-WebSocket-Protocol", ", ".join(subprotocols)))
    if extensions:
        fields.append(("Sec-WebSocket-Extensions", extensions))
    return key, fields


def check_server_response(status: int, headers: Iterable[Tuple[str, str]], key: str,
                          offered_subprotocols: Sequence[str] = (), *,
                          offered_extensions: Optional[str] = None
                          ) -> Tuple[Optional[str], Optional[str]]:
    """Check the server's answer (client side); return (subprotocol, extensions header).

    Raises ``HandshakeError`` (``status`` = the server's) for a status other
    than 101, missing Upgrade/Connection tokens, a wrong Accept, a
    subprotocol we did not offer, or an extension whose name is not in
    ``offered_extensions`` (the header we sent; None: any is refused). Its
    parameters are ``deflate.accept_client``'s to check.
    """
    fields = _collect(headers)
    if status != 101:
        raise HandshakeError(status, "the server answered %d, not 101" % status)
    _require_upgrade_tokens(fields, status)
    if [value.strip() for value in fields.get("sec-websocket-accept", [])] != [accept_key(key)]:
        raise HandshakeError(status, "Sec-WebSocket-Accept is missing or does not match the key")
    protocols = _list_tokens(fields, "sec-websocket-protocol")
    if len(protocols) > 1 or (protocols and protocols[0] not in offered_subprotocols):
        raise HandshakeError(status, "the server chose subprotocol %s, which we did not offer"
                             % ", ".join(protocols))
    extensions = ", ".join(fields.get("sec-websocket-extensions", [])) or None
    if extensions is not None:
        try:
            offered = {name for name, _ in parse_extensions(offered_extensions or "")}
            answered = [name for name, _ in parse_extensions(extensions)]
        except ValueError as exc:
            raise HandshakeError(status, "bad Sec-WebSocket-Extensions: %s" % exc)
        if not set(answered) <= offered:
            raise HandshakeError(status, "the server agreed extensions we did not offer: %s"
                                 % ", ".join(sorted(set(answered) - offered)))
    return (protocols[0] if protocols else None), extensions


def parse_extensions(value: str) -> List[Tuple[str, List[Tuple[str, Optional[str]]]]]:
    """Return ``[(name, [(param, value or None), ...]), ...]`` from an extensions header.

    Names and parameters are lowercased; a quoted value is unquoted and must
    then be a token (RFC 6455 9.1). Raises ``ValueError`` for bad syntax.
    """
    extensions: List[Tuple[str, List[Tuple[str, Optional[str]]]]] = []
    pos, end = 0, len(value)
    while pos < end:
        if value[pos] in ", \t":
            pos += 1
            continue
        name = _EXTENSION_NAME.match(value, pos)
        if name is None:
            raise ValueError("no extension name at %r" % value[pos:])
        params: List[Tuple[str, Optional[str]]] = []
        pos = name.end()
        param = _EXTENSION_PARAM.match(value, pos)
        while param is not None:
            token, quoted = param.group(2), param.group(3)
            if quoted is not None:
                token = re.sub(r"\\(.)", r"\1", quoted)
                if not _TOKEN_ONLY.match(token):
                    raise ValueError("parameter %s's quoted value is not a token"
                                     % param.group(1))
            params.append((param.group(1).lower(), token))
            pos = param.end()
            param = _EXTENSION_PARAM.match(value, pos)
        if pos < end and value[pos] != ",":
            raise ValueError("unexpected %r after extension %s" % (value[pos:], name.group(1)))
        extensions.append((name.group(1).lower(), params))
    return extensions


def _collect(headers: Iterable[Tuple[str, str]]) -> dict:
    """Return {lowercased name: [values]} for the fields the handshake reads."""
    fields: dict = {}
    for name, value in headers:
        fields.setdefault(name.lower(), []).append(value)
    return fields


def _list_tokens(fields: dict, name: str) -> List[str]:
    """Return the comma-separated elements of every ``name`` field, stripped, empties dropped."""
    return [item.strip() for value in fields.get(name, []) for item in value.split(",")
            if item.strip()]


def _require_upgrade_tokens(fields: dict, status: int) -> None:
    """Raise unless Upgrade lists ``websocket`` and Connection lists ``upgrade`` (any case)."""
    if "websocket" not in [token.lower() for token in _list_tokens(fields, "upgrade")]:
        raise HandshakeError(status, "no 'websocket' in the Upgrade field")
    if "upgrade" not in [token.lower() for token in _list_tokens(fields, "connection")]:
        raise HandshakeError(status, "no 'upgrade' in the Connection field")


def _is_valid_key(key: str) -> bool:
    """Tell whether ``key`` is base64 of exactly 16 bytes (RFC 6455 4.1, item 7)."""
    try:
        return len(key) == 24 and len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        return False
