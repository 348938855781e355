"""TLS on a stream transport: the stdlib ``ssl`` module over memory BIOs.

``SSLContext.wrap_bio`` gives an ``SSLObject`` that never touches a socket:
ciphertext goes in and out through two ``MemoryBIO`` buffers, so TLS runs
non-blocking on every selector, and the stream transport underneath keeps
doing what it always does. :class:`TLSTransport` sits between the two and
has two faces::

    StreamTransport --data_received(ciphertext)--> TLSTransport --data_received(plain)--> app
    StreamTransport <--write(ciphertext)---------- TLSTransport <--write(plain)---------- app

To the stream transport it is the *protocol*; to the application it is
the *transport* (the same API as ``StreamTransport``, plus
``get_extra_info('ssl_object' | 'peercert' | 'cipher' |
'selected_alpn_protocol')``). The two method sets do not overlap; the
pass-through half of the transport face comes from ``protocols.Layer``.

Lifecycle (``TLSState``)::

    HANDSHAKING --ok--> OPEN --close()--> CLOSING --peer's close_notify--> CLOSED
         |                 \\--peer's close_notify / error / abort()----> CLOSED
         \\--error, timeout--> CLOSED   (the app protocol never saw connection_made)

* The handshake has a deadline on the timer wheel (``handshake_timeout``,
  10 s by default). A failure is logged with its specific reason
  (certificate, unknown CA, protocol version, plaintext sent to a TLS port)
  and reported to ``on_handshake_error``; the application protocol, made
  already, gets no callback at all, since it never saw ``connection_made``.
* ``close()`` sends close_notify after everything written, then waits up to
  ``shutdown_timeout`` for the peer's before closing the socket.
* A peer that closes the TCP connection without close_notify may be
  truncating the stream: every byte already decrypted has been delivered,
  and ``connection_lost`` gets an ``ssl.SSLEOFError`` that says so.
* Backpressure passes through: ``pause_reading`` (and any other hold,
  ``hold_reading``) stops the socket reads and the delivery of what is
  already decrypted, and the stream transport's ``pause_writing`` reaches
  the application.
"""

import enum
import logging
import ssl
from typing import Any, Callable, Optional

from .addresses import format_address
from .errors import TLSHandshakeTimeoutError, TLSProtocolError, TransportClosedError
from .protocols import Layer
from .tls_contexts import client_context, describe_tls_error, server_context

__all__ = ["TLSTransport", "TLSState", "client_context", "server_context", "describe_tls_error",
           "DEFAULT_HANDSHAKE_TIMEOUT", "DEFAULT_SHUTDOWN_TIMEOUT"]

logger = logging.getLogger("reactor")

#: Plaintext bytes decrypted per SSLObject.read() call.
READ_CHUNK_BYTES = 64 * 1024
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
DEFAULT_SHUTDOWN_TIMEOUT = 5.0


class TLSState(enum.Enum):
    """Where a TLS connection is in its life."""

    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSING = "closing"        # our close_notify sent; waiting for the peer's
    CLOSED = "closed"


class TLSTransport(Layer):
    """TLS between a stream transport and an application protocol; see the module docstring."""

    __slots__ = ("_context", "_server_side", "_server_hostname", "_handshake_timeout",
                 "_shutdown_timeout", "_on_handshake_error", "_incoming", "_outgoing",
                 "_sslobj", "_state", "_timer", "_read_holds", "_app_made",
                 "_lost_reason", "_closed_locally")

    def __init__(self, loop: Any, context: ssl.SSLContext, app_protocol: Any,
                 server_side: bool, server_hostname: Optional[str] = None,
                 handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
                 shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
                 on_handshake_error: Optional[Callable[[BaseException], None]] = None) -> None:
        super().__init__(loop, app_protocol)
        self._context = context
        self._server_side = server_side
        self._server_hostname = server_hostname
        self._handshake_timeout = handshake_timeout
        self._shutdown_timeout = shutdown_timeout
        self._on_handshake_error = on_handshake_error
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._sslobj: Optional[ssl.SSLObject] = None
        self._state = TLSState.HANDSHAKING
        self._timer: Any = None                 # handshake deadline, then shutdown deadline
        self._read_holds = 0                    # bits of protocols.PAUSED_BY_APP, HOLD_*
        self._app_made = False
        self._lost_reason: Optional[BaseException] = None
        self._closed_locally = False

    # -- the stream transport's protocol face -----------------------------------

    def connection_made(self, raw_transport: Any) -> None:
        """Start the handshake on a fresh stream transport."""
        self._transport = raw_transport
        try:
            self._sslobj = self._context.wrap_bio(self._incoming, self._outgoing,
                                                  server_side=self._server_side,
                                                  server_hostname=self._server_hostname)
        except (ssl.SSLError, ValueError) as exc:
            self._handshake_failed(exc)
            return
        self._timer = self._loop.call_later(self._handshake_timeout, self._handshake_timed_out)
        self._handshake_step()

    def data_received(self, data: bytes) -> None:
        """Ciphertext arrived: continue the handshake, or decrypt for the app."""
        self._incoming.write(data)
        if self._state is TLSState.HANDSHAKING:
            self._handshake_step()
        elif self._state is not TLSState.CLOSED:
            self._deliver()

    def eof_received(self) -> bool:
        """The peer closed TCP: a clean end only if its close_notify came first."""
        if self._state is TLSState.HANDSHAKING:
            self._handshake_failed(ConnectionResetError(
                "peer closed the connection during the TLS handshake"))
        elif self._state is TLSState.OPEN:
            self._deliver()                      # everything already received, first
            if self._state is TLSState.OPEN:
                self._lost_reason = ssl.SSLEOFError(
                    ssl.SSL_ERROR_EOF, "peer closed the connection without a TLS "
                    "close_notify; the data may be truncated")
                self._transport.close()
        else:
            self._transport.close()
        return True                              # we decide when the socket closes

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """The socket is closed: tell the app once (if it ever saw connection_made)."""
        state, self._state = self._state, TLSState.CLOSED
        self._cancel_timer()
        if state is TLSState.HANDSHAKING:
            self._handshake_failed(exc or ConnectionResetError(
                "connection closed during the TLS handshake"))
            return
        if self._app_made:
            self._app_made = False
            self._app.connection_lost(self._lost_reason or exc)

    def pause_writing(self) -> None:
        """The stream transport's buffer is full: pass it on to the app."""
        if self._app_made:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        """The stream transport's buffer drained: pass it on to the app."""
        if self._app_made:
            self._app.resume_writing()

    # -- the application's transport face ----------------------------------------

    def write(self, data: Any) -> None:
        """Encrypt ``data`` and queue the records on the stream transport, in order."""
        if self._state is not TLSState.OPEN:
            if self._closed_locally:
                raise TransportClosedError("write() after close() or abort()")
            return                               # the connection ended; connection_lost is coming
        if not data:
            return
        try:
            self._sslobj.write(data)
        except ssl.SSLError as exc:
            self._fatal(exc)
            return
        self._flush()

    def can_write_eof(self) -> bool:
        """Tell whether half-close works: not over TLS (close_notify ends both ways)."""
        return False

    def write_eof(self) -> None:
        """Refuse: TLS has no half-close. Use ``close()``, which sends close_notify."""
        raise NotImplementedError("TLS has no half-close; close() sends close_notify")

    def close(self) -> None:
        """Send close_notify after what is queued, then wait a bounded time for the peer's."""
        self._closed_locally = True
        if self._state is TLSState.HANDSHAKING:
            self._transport.abort()
            return
        if self._state is not TLSState.OPEN:
            return
        self._state = TLSState.CLOSING
        self._send_close_notify()

    def close_with_error(self, exc: BaseException, flush: bool = True) -> None:
        """Close because of ``exc``: the app's ``connection_lost`` gets it, the owner counts it.

        With ``flush``, what is queued goes out with our close_notify, but
        we do not wait for the peer's (it may be the reason we are closing).
        """
        if self._state is TLSState.CLOSED or self._transport is None:
            return
        self._lost_reason = exc
        if flush and self._state is TLSState.OPEN:
            self._state = TLSState.CLOSING
            try:
                self._sslobj.unwrap()
            except ssl.SSLError:
                pass                              # ours is written; theirs is not awaited
            self._flush()
        self._transport.close_with_error(exc, flush)

    def abort(self) -> None:
        """Close the socket now, without close_notify, dropping what is queued."""
        self._closed_locally = True
        if self._state is not TLSState.HANDSHAKING:
            self._state = TLSState.CLOSED        # is_closing() at once; connection_lost follows
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        """Tell whether the connection is closing or closed."""
        return self._state is not TLSState.OPEN

    def hold_reading(self, reason: int) -> None:
        """Stop reading and delivering for ``reason``, even data already decrypted."""
        if not self._read_holds & reason:
            self._read_holds |= reason
            self._transport.hold_reading(reason)

    def release_reading(self, reason: int) -> None:
        """Drop the hold for ``reason``; read and deliver again once none is left."""
        if self._read_holds & reason:
            self._read_holds &= ~reason
            self._transport.release_reading(reason)
            if not self._read_holds:
                # What the SSL object already holds, delivered in a later pass,
                # under the connection's failure policy.
                self._loop.call_soon(self._transport.run_protected, self._deliver)

    def is_reading(self) -> bool:
        """Tell whether the transport is delivering data."""
        return self._state is TLSState.OPEN and not self._read_holds

    def sendfile(self, file: Any, offset: int, count: int) -> int:
        """Refuse: the kernel would send the file's bytes unencrypted under our TLS."""
        raise NotImplementedError("sendfile() on a TLS connection would bypass encryption; "
                                  "read the file and write() it")

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """Return TLS details (``ssl_object``, ``peercert``, ``cipher``,
        ``selected_alpn_protocol``, ``server_hostname``) or the socket's."""
        sslobj = self._sslobj
        if name == "ssl_object":
            return sslobj
        if sslobj is not None and self._state is not TLSState.HANDSHAKING:
            if name == "peercert":
                return sslobj.getpeercert()
            if name == "cipher":
                return sslobj.cipher()
            if name == "selected_alpn_protocol":
                return sslobj.selected_alpn_protocol()
            if name == "compression":
                return sslobj.compression()
        if name == "server_hostname":
            return self._server_hostname
        if self._transport is None:
            return default
        return self._transport.get_extra_info(name, default)

    def __repr__(self) -> str:
        return "<TLSTransport %s %r>" % (self._state.value, self._transport)

    # -- internals ------------------------------------------------------------------

    def _handshake_step(self) -> None:
        try:
            self._sslobj.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except (ssl.SSLError, OSError) as exc:
            self._flush()                        # the alert tells the peer why
            self._handshake_failed(exc)
            return
        self._flush()
        self._cancel_timer()
        self._state = TLSState.OPEN
        self._app_made = True
        self._app.connection_made(self)          # an exception ends the connection (loop)
        if self._state is TLSState.OPEN:
            self._deliver()                          # application data that came with the handshake

    def _deliver(self) -> None:
        """Decrypt what has arrived and hand it to the app, unless paused."""
        # Hot path: once per ciphertext chunk.
        sslobj = self._sslobj
        # While CLOSING we read on, paused or not: the peer's close_notify is due.
        while ((self._state is TLSState.OPEN and not self._read_holds)
               or self._state is TLSState.CLOSING):
            try:
                chunk = sslobj.read(READ_CHUNK_BYTES)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                if isinstance(exc, ssl.SSLZeroReturnError):
                    self._peer_close_notify()
                    break
                self._fatal(exc)
                return
            if not chunk:                        # b'': the peer's close_notify arrived
                self._peer_close_notify()         # ("no data yet" is SSLWantReadError)
                break
            if self._state is TLSState.OPEN:     # after our close_notify, data is dropped
                self._app.data_received(chunk)
            # Nothing left to decrypt: stop here rather than pay for the
            # SSLWantReadError that one more read() would raise.
            if not self._incoming.pending and not sslobj.pending():
                break
        self._flush()                            # reading can produce records (key updates)

    def _peer_close_notify(self) -> None:
        if self._state is TLSState.CLOSING:      # both sides said goodbye
            self._transport.close()
            return
        keep_open = self._app.eof_received()
        if self._state is TLSState.OPEN and not keep_open:
            self.close()

    def _send_close_notify(self) -> None:
        try:
            self._sslobj.unwrap()
        except ssl.SSLWantReadError:
            pass                                 # sent ours; the peer's is yet to come
        except ssl.SSLError as exc:
            self._flush()
            self._fatal(exc)
            return
        else:
            self._flush()
            self._transport.close()                    # the peer's close_notify came first
            return
        self._flush()
        self._cancel_timer()
        self._timer = self._loop.call_later(self._shutdown_timeout, self._transport.close)

    def _flush(self) -> None:
        if self._outgoing.pending:
            data = self._outgoing.read()
            if not self._transport.is_closing():
                self._transport.write(data)

    def _fatal(self, exc: BaseException) -> None:
        """A TLS error after the handshake: close for that reason (counted, rate-limited log)."""
        error = TLSProtocolError("TLS error with %s: %s" % (self._peer(), describe_tls_error(exc)))
        error.__cause__ = exc
        self._lost_reason = error
        self._transport.close_with_error(error, flush=False)

    def _handshake_failed(self, exc: BaseException) -> None:
        self._cancel_timer()
        if self._state is not TLSState.CLOSED:
            self._state = TLSState.CLOSED
            if self._transport is not None:
                self._transport.abort()
        callback, self._on_handshake_error = self._on_handshake_error, None
        if callback is None or not self._server_side:    # a server logs it, rate-limited
            logger.warning("TLS handshake with %s failed: %s", self._peer(),
                           describe_tls_error(exc))
        if callback is not None:
            callback(exc)

    def _handshake_timed_out(self) -> None:
        self._timer = None
        self._handshake_failed(TLSHandshakeTimeoutError(
            "TLS handshake did not finish within %.3g s" % self._handshake_timeout))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _peer(self) -> str:
        return format_address(self.get_extra_info("peername"))
