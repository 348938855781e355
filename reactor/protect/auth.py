"""Authentication before the protocol sees a byte: bearer tokens and PSK challenge-response.

Sans-I/O, like the framers: each handshake takes bytes and says what to
send back and whether the peer is in. The guard (``guard.py``) runs the
server's half on a connection; ``ClientAuth`` (``client_auth.py``) runs the client's.

**Bearer token** (``TokenAuth``). The client's first line (raw and line
protocols) or first frame (other framings) must be one of the accepted
tokens. Nothing is sent on success: the application's first bytes follow.
A token crosses the wire as is, so use it over TLS.

**Pre-shared key** (``PskAuth``), safe without TLS against eavesdropping
and replay::

    server -> client   reactor-psk-v1 <nonce: 64 hex digits>\\n
    client -> server   <HMAC-SHA256(key, "reactor-psk-v1 client" + nonce): 64 hex>\\n
    server -> client   reactor-psk-v1 ok\\n           then the application's bytes

The nonce is 32 fresh random bytes per connection, so an answer recorded
on one connection is worthless on the next. It does not protect against
an active man in the middle who relays both sides (only TLS does), nor
does it prove the server knows the key (the client asks no question).

**No oracle.** Every failure (a wrong token, a wrong or malformed answer,
an oversized line, silence until the auth timeout) ends the same way: one
generic ``error: authentication failed`` and a close. Tokens are compared
through their SHA-256 digests with ``hmac.compare_digest``, against every
accepted token without stopping early, so neither the time taken nor the
reply says which token came close or how long a good one is.
"""

import hashlib
import hmac
import secrets
from typing import Any, Iterable, List, Optional, Tuple, Union

from ..errors import AuthenticationError, FramingError

PSK_VERSION = b"reactor-psk-v1"
NONCE_BYTES = 32
#: Longest token or answer line accepted; longer input fails auth at once.
MAX_AUTH_LINE_BYTES = 4096
#: What a failing peer is told, whatever failed.
FAILURE_MESSAGE = b"error: authentication failed"
#: Shortest PSK accepted: a short key can be brute-forced from one recorded exchange.
MIN_PSK_BYTES = 16

Secret = Union[bytes, str]


class TokenAuth:
    """Accept a connection whose first line or frame is one of ``tokens``."""

    kind = "token"

    def __init__(self, tokens: Iterable[Secret]) -> None:
        digests = [_digest(_as_bytes(token)) for token in tokens if _as_bytes(token)]
        if not digests:
            raise ValueError("TokenAuth needs at least one non-empty token")
        self._digests = digests

    @classmethod
    def from_file(cls, path: str) -> "TokenAuth":
        """Read tokens from ``path``, one per line (blank lines ignored).

        Raises ``OSError`` if the file cannot be read and ``ValueError`` if
        it holds no token.
        """
        return cls(_read_secret_lines(path, "token"))

    def check(self, presented: bytes) -> bool:
        """Tell whether ``presented`` is an accepted token, in time independent of which."""
        digest = _digest(presented)
        matched = False
        for accepted in self._digests:                    # no early exit: constant time
            matched |= hmac.compare_digest(digest, accepted)
        return matched

    def server_handshake(self, framer: Any = None) -> "ServerHandshake":
        """Start the server's half for one connection (``framer``: the app's, if framed)."""
        return ServerHandshake(self, framer)

    def __repr__(self) -> str:
        return "<TokenAuth %d token(s)>" % len(self._digests)


class PskAuth:
    """Accept a connection that proves knowledge of one of the pre-shared ``keys``."""

    kind = "psk"

    def __init__(self, keys: Iterable[Secret]) -> None:
        self._keys = [_as_bytes(key) for key in keys if _as_bytes(key)]
        if not self._keys:
            raise ValueError("PskAuth needs at least one key")
        for key in self._keys:
            if len(key) < MIN_PSK_BYTES:
                raise ValueError("a pre-shared key must be at least %d bytes; one is %d "
                                 "(make one with: python3 -c 'import secrets; "
                                 "print(secrets.token_hex(32))')" % (MIN_PSK_BYTES, len(key)))

    @classmethod
    def from_file(cls, path: str) -> "PskAuth":
        """Read keys from ``path``, one per line (blank lines ignored)."""
        return cls(_read_secret_lines(path, "key"))

    def check(self, nonce: bytes, answer: bytes) -> bool:
        """Tell whether ``answer`` (hex) is the right answer to ``nonce`` for any key."""
        matched = False
        presented = _digest(answer.strip().lower())
        for key in self._keys:
            expected = _digest(psk_answer(key, nonce))
            matched |= hmac.compare_digest(presented, expected)
        return matched

    def server_handshake(self, framer: Any = None) -> "ServerHandshake":
        """Start the server's half for one connection (the PSK exchange is always lines)."""
        return ServerHandshake(self, None)

    def __repr__(self) -> str:
        return "<PskAuth %d key(s)>" % len(self._keys)


class ServerHandshake:
    """The server's half of one connection's authentication, fed bytes as they come.

    ``greeting`` is what to send at once (the PSK challenge, or nothing).
    ``feed(data)`` returns None while the handshake needs more bytes, else
    ``(accepted, reply, rest)``: whether the peer is in, what to send it
    (the generic failure, the PSK "ok", or nothing), and what followed the
    handshake (raw ``bytes``, or a list of frames when a framer was given;
    the framer then holds any partial frame and should serve the app).
    """

    __slots__ = ("authenticator", "framer", "greeting", "_nonce", "_pending")

    def __init__(self, authenticator: Any, framer: Any) -> None:
        self.authenticator = authenticator
        self.framer = framer
        self._pending = bytearray()
        if authenticator.kind == "psk":
            self._nonce: Optional[bytes] = secrets.token_bytes(NONCE_BYTES)
            self.greeting = PSK_VERSION + b" " + self._nonce.hex().encode() + b"\n"
        else:
            self._nonce = None
            self.greeting = b""

    def feed(self, data: bytes) -> Optional[Tuple[bool, bytes, Any]]:
        """Consume ``data``; see the class docstring for the result."""
        if self.framer is not None:
            return self._feed_frames(data)
        pending = self._pending
        start = max(len(pending) - 1, 0)
        pending += data
        end = pending.find(b"\n", start)
        if end < 0:
            if len(pending) > MAX_AUTH_LINE_BYTES:
                return self.failure()
            return None
        line = bytes(pending[:end])
        if line.endswith(b"\r"):                    # a CRLF line ending: one CR, no more
            line = line[:-1]
        rest = bytes(pending[end + 1:])
        del pending[:]
        if len(line) > MAX_AUTH_LINE_BYTES:
            return self.failure()
        return self._decide(line, rest)

    def failure(self) -> Tuple[bool, bytes, Any]:
        """Return the generic refusal (also used for a timeout)."""
        if self.framer is not None:
            try:
                return False, self.framer.encode(FAILURE_MESSAGE), []
            except FramingError:
                pass
        return False, FAILURE_MESSAGE + b"\n", b""

    def _feed_frames(self, data: bytes) -> Optional[Tuple[bool, bytes, Any]]:
        try:
            frames = self.framer.feed(data)
        except FramingError:
            return self.failure()
        if not frames:
            if self.framer.buffered > MAX_AUTH_LINE_BYTES + 16:
                return self.failure()
            return None
        return self._decide(bytes(frames[0]), frames[1:])

    def _decide(self, presented: bytes, rest: Any) -> Tuple[bool, bytes, Any]:
        authenticator = self.authenticator
        if self._nonce is not None:
            if authenticator.check(self._nonce, presented):
                return True, PSK_VERSION + b" ok\n", rest
        elif authenticator.check(presented):
            return True, b"", rest
        return self.failure()


# -- the client's half ---------------------------------------------------------

def psk_answer(key: Secret, nonce: bytes) -> bytes:
    """Return the hex answer to ``nonce`` for ``key``: HMAC-SHA256 over a labelled nonce.

    The label keeps this MAC from being valid in any other protocol that
    might use the same key.
    """
    mac = hmac.new(_as_bytes(key), PSK_VERSION + b" client" + nonce, hashlib.sha256)
    return mac.hexdigest().encode()


def parse_challenge(line: bytes) -> bytes:
    """Return the nonce in a server's challenge line; raise AuthenticationError if it is not one."""
    version, _, nonce_hex = line.strip().partition(b" ")
    try:
        nonce = bytes.fromhex(nonce_hex.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        nonce = b""
    if version != PSK_VERSION or len(nonce) != NONCE_BYTES:
        raise AuthenticationError("the server did not send a %s challenge (got %r)"
                                  % (PSK_VERSION.decode(), line[:80]))
    return nonce


# -- helpers ------------------------------------------------------------------

def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _as_bytes(secret: Secret) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _read_secret_lines(path: str, what: str) -> List[bytes]:
    """Read one secret per line: UTF-8 (a BOM at the start ignored), surrounding blanks
    and CRs stripped, blank lines and ``#`` comment lines skipped (an annotated file
    must not turn its comments into passwords)."""
    with open(path, "rb") as secret_file:
        data = secret_file.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError("%s is not UTF-8 text (byte %d)" % (path, exc.start)) from None
    lines = [line.strip() for line in data.splitlines()]
    secrets_found = [line for line in lines if line and not line.startswith(b"#")]
    if not secrets_found:
        raise ValueError("%s holds no %s (expected one per line)" % (path, what))
    return secrets_found
