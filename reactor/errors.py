"""Every exception `reactor` raises on purpose, in one place.

Each error says what went wrong and, where it can, what to do instead. They
subclass the built-in type a caller would already catch (``ValueError`` for
bad arguments, ``RuntimeError`` for a loop in the wrong state,
``ConnectionError`` for a failed connect), so code written against asyncio
keeps working, and code that wants to be precise can catch ours.

This module imports nothing from the package, so any layer may import it.
"""


class ReactorError(Exception):
    """Base class for every error `reactor` raises on purpose."""


# -- the loop -------------------------------------------------------------

class LoopClosedError(ReactorError, RuntimeError):
    """The loop was used after ``close()``; create a new ``Reactor``."""


class LoopRunningError(ReactorError, RuntimeError):
    """``run()`` was called while this loop, or another loop on this thread, is running."""


class NoRunningLoopError(ReactorError, RuntimeError):
    """``get_running_loop()`` was called outside a loop callback (no loop runs on this thread)."""


class LoopForkedError(ReactorError, RuntimeError):
    """A loop was used in the child of ``fork()``; it belongs to the parent (``forks.py``)."""


class WrongThreadError(ReactorError, RuntimeError):
    """A loop method that is not thread-safe was called from another thread (debug mode).

    Only ``call_soon_threadsafe`` may be called from a thread other than the
    one running the loop.
    """


class InvalidDelayError(ReactorError, ValueError):
    """A delay or deadline was negative, NaN or infinite."""


class NotCallableError(ReactorError, TypeError):
    """A callback argument was not callable."""


class BadFileDescriptorError(ReactorError, ValueError):
    """A file descriptor was negative, closed, or not a file object."""


class SignalHandlerError(ReactorError, RuntimeError):
    """A signal handler could not be installed (wrong thread, bad signal)."""


class TimerCancelledError(ReactorError, RuntimeError):
    """``reset()`` was called on a cancelled timer; schedule a new one instead."""


class InvalidAddressError(ReactorError, ValueError):
    """A host or port given to ``listen_*`` / ``connect_*`` cannot be used (port 70000, host '')."""


class ProtectionsUnavailableError(ReactorError, RuntimeError):
    """Limits ask for a protection, but this copy of reactor has no ``reactor/protect/``.

    Vendored copies may delete the protections wing; the core then serves
    plain TCP, UDP and TLS, and refuses settings only the wing can enforce.
    """


# -- framing --------------------------------------------------------------

class FramingError(ReactorError, ValueError):
    """A byte stream broke its framing rules: a frame too large or malformed.

    The framer that raised it is closed; the connection it served should be
    closed too, since the stream position is no longer known.
    """

    #: The rejection reason a server counts it under (see ``ProtectionError``).
    reason = "framing"


# -- connections ----------------------------------------------------------

class ConnectError(ReactorError, ConnectionError):
    """An outgoing connection could not be established."""


class ConnectTimeoutError(ConnectError, TimeoutError):
    """An outgoing connection did not complete within its timeout."""


class ConnectRefusedError(ConnectError, ConnectionRefusedError):
    """The peer actively refused the connection (nothing listens there)."""


class TransportClosedError(ReactorError, ConnectionError):
    """A write or other operation was attempted on a closed transport."""


class TLSHandshakeTimeoutError(ReactorError, TimeoutError):
    """A TLS handshake did not finish within its timeout (a stalled or slowloris peer)."""


class TLSProtocolError(ReactorError, ConnectionError):
    """The TLS layer failed after the handshake (a bad record, a bad MAC, an alert).

    ``__cause__`` is the ``ssl.SSLError``. A server counts it under ``tls``
    and logs it through its rate-limited abuse log: 2,000 peers sending one
    bad record each make two log lines, not 2,000.
    """

    reason = "tls"


class DatagramTooLargeError(ReactorError, ValueError):
    """A datagram is larger than the socket can send in one piece (65,507 B over IPv4 UDP)."""


# -- protections (why a server closed a connection) ------------------------

class ProtectionError(ReactorError, ConnectionError):
    """A server protection closed this connection; ``connection_lost`` receives it.

    ``reason`` is the key the server counts it under in ``stats()``
    (``rejected_<reason>``) and the name its rate-limited log line uses.
    """

    reason = "protection"


class AccessDeniedError(ProtectionError):
    """The peer's address is denied by the server's allow/deny lists."""

    reason = "filter"


class IdleTimeoutError(ProtectionError, TimeoutError):
    """No bytes moved either way for ``Limits.idle_timeout_seconds``."""

    reason = "timeout"


class FirstFrameTimeoutError(ProtectionError, TimeoutError):
    """The peer sent no complete first frame within ``Limits.first_frame_timeout_seconds``."""

    reason = "timeout"


class FrameTimeoutError(ProtectionError, TimeoutError):
    """A frame that had begun was not complete within ``Limits.frame_progress_timeout_seconds``."""

    reason = "timeout"


class InputBudgetError(ProtectionError):
    """The server's bytes held in partial frames passed ``Limits.max_buffered_input_bytes``,
    and this connection held the most."""

    reason = "input_budget"


class RateLimitError(ProtectionError):
    """The peer sent faster than its rate limit, and the policy is to disconnect."""

    reason = "rate"


class SlowConsumerError(ProtectionError):
    """The peer reads too slowly: our send buffer for it passed a hard or soft cap."""

    reason = "slow_consumer"


class AuthenticationError(ProtectionError):
    """Authentication failed or timed out.

    What the *peer* is told is deliberately generic; the message here (for
    our logs and the client helper's ``on_error``) may say more.
    """

    reason = "auth"
