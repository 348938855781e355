"""The client's half of auth: a layer that answers the server, then steps aside.

``connect_tcp(..., auth_token=...)`` or ``connect_tcp(..., psk=...)`` puts a
:class:`ClientAuth` between the new transport and the application protocol
(``client.py`` does it). It speaks the wire format of ``auth.py``, and once
the server has let us in it hands the transport to the application
(``transport.set_protocol(app)``), so it costs nothing afterwards::

    token:  connect -> write token line (or frame) -> app.connection_made
    psk:    connect -> read challenge -> write HMAC answer -> read "ok" -> app.connection_made
"""

import logging
from typing import Any, Optional

from .auth import FAILURE_MESSAGE, PSK_VERSION, parse_challenge, psk_answer
from ..errors import AuthenticationError
from ..framed import FramedProtocol

logger = logging.getLogger("reactor")
#: Longest handshake line we accept from a server.
MAX_LINE_BYTES = 4096


class ClientAuth:
    """The client's half of auth, between a client transport and the app protocol.

    With a token, it writes the token as the first line (or first frame,
    for a ``FramedProtocol``) and hands over to the app at once: the
    server says nothing on success, so a refusal reaches the app as the
    generic error line and a close. With a PSK, it answers the server's
    challenge, waits for the server's "ok", then hands over. A refusal, a
    close or ``timeout_seconds`` of silence before the "ok" calls
    ``on_error(AuthenticationError)``; the app never sees the connection.
    """

    def __init__(self, loop: Any, app: Any, token: Any = None, psk: Any = None,
                 on_error: Any = None, timeout_seconds: float = 10.0) -> None:
        if (token is None) == (psk is None):
            raise ValueError("ClientAuth needs exactly one of token= and psk=")
        self._loop = loop
        self._app = app
        self._token = token.encode() if isinstance(token, str) else token
        self._psk = psk
        self._on_error = on_error
        self._timeout_seconds = timeout_seconds
        self._transport: Any = None
        self._pending = bytearray()
        self._stage = "challenge"             # -> "ok" -> "done"
        self._timer: Any = None

    def connection_made(self, transport: Any) -> None:
        """Send the token and hand over, or wait for the PSK challenge."""
        self._transport = transport
        if self._token is not None:
            app = self._app
            if isinstance(app, FramedProtocol):
                transport.write(app.framer.encode(self._token))
            else:
                transport.write(self._token + b"\n")
            self._hand_over(b"")
            return
        self._timer = self._loop.call_later(self._timeout_seconds, self._fail,
                                            "the server did not complete the PSK handshake "
                                            "within %.3g s" % self._timeout_seconds)

    def data_received(self, data: bytes) -> None:
        """Read the challenge, then the verdict, one line each."""
        pending = self._pending
        pending += data
        while self._stage != "done":
            end = pending.find(b"\n")
            if end < 0:
                if len(pending) > MAX_LINE_BYTES:
                    self._fail("the server sent an overlong handshake line")
                return
            line = bytes(pending[:end]).rstrip(b"\r")
            del pending[:end + 1]
            if self._stage == "challenge":
                try:
                    nonce = parse_challenge(line)
                except AuthenticationError as exc:
                    self._fail(str(exc))
                    return
                self._transport.write(psk_answer(self._psk, nonce) + b"\n")
                self._stage = "ok"
            elif line == PSK_VERSION + b" ok":
                self._hand_over(bytes(pending))
                return
            else:
                self._fail("the server refused the pre-shared key"
                           if line == FAILURE_MESSAGE else
                           "unexpected handshake reply %r" % line[:80])
                return

    def eof_received(self) -> Optional[bool]:
        """The server closed during the handshake: that is a refusal."""
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Closed before the handshake finished: report it."""
        if self._stage != "done":
            self._fail("the server closed the connection during authentication")

    def pause_writing(self) -> None:
        """Nothing to pause: the handshake writes one line."""

    def resume_writing(self) -> None:
        """Nothing to resume."""

    def _hand_over(self, rest: bytes) -> None:
        self._stage = "done"
        if self._timer is not None:
            self._timer.cancel()
        transport, app = self._transport, self._app
        transport.set_protocol(app)
        app.connection_made(transport)
        if rest and not transport.is_closing():
            app.data_received(rest)

    def _fail(self, message: str) -> None:
        if self._stage == "done":
            return
        self._stage = "done"
        if self._timer is not None:
            self._timer.cancel()
        self._transport.abort()
        error = AuthenticationError(message)
        if self._on_error is not None:
            self._on_error(error)
        else:
            logger.warning("authentication failed: %s", message)


