"""The guard: per-connection protections between a transport and the application.

A server with timeouts, rate limits or auth puts a :class:`Guard` between
each connection's transport and its protocol. Like the TLS layer, it has two
faces: to the transport below it is the protocol, to the application it is
the transport::

    StreamTransport / TLSTransport --data_received--> Guard --data_received--> app
                                   <------write------       <-----write-------

On the way through it enforces, per connection (numbers from ``Limits``):

==================  ===================================================
auth                the app sees ``connection_made`` only after the peer
                    passed the handshake (``auth.py``); failure or
                    silence until ``auth_timeout_seconds``: one generic
                    error line, then close
first frame         no complete frame (no byte, for raw protocols)
                    within ``first_frame_timeout_seconds``: close
idle                no byte received and nothing written for
                    ``idle_timeout_seconds``: close
rates               token buckets for this connection and its client
                    address, in bytes and messages, charged *before* the
                    app sees a byte or a frame (``shaper.py``): what is
                    not paid for waits, reading held, or closes
==================  ===================================================

**One timer per connection, reset, never re-created.** Every deadline
(auth, first frame, idle) is served by one wheel timer. Activity only
records ``now`` in ``_last_activity``, an attribute write; when the timer
fires it compares the deadline with that record and, if the connection was
active meanwhile, resets itself to the new deadline. So a busy connection
costs one timer firing per idle period, not one timer operation per read.
A connection is closed no earlier than its deadline, and as late as the
loop's timers run late: up to a wheel tick (1 ms) plus the selector's
millisecond rounding of its timeout. Idle means no progress: a connection
whose input the rate limit holds back is idle too.

The app may pause reading for its own reasons (backpressure) while the
shaper holds it for rate limiting; each is its own bit of the transport's
hold mask (``protocols.HOLD_RATE``), so neither undoes the other.

Every close for a reason goes through ``close_with_error``, so the server
counts it under the error's ``reason`` and logs it, rate-limited.
"""

import enum
from typing import Any, Dict, Optional

from ..errors import AuthenticationError, FirstFrameTimeoutError, IdleTimeoutError
from ..framed import FramedProtocol
from ..policy import Limits
from ..protocols import Layer
from .shaper import Shaper


class GuardState(enum.Enum):
    """Where a guarded connection is: authenticating, open (the app sees it), or closed."""

    AUTHENTICATING = "authenticating"
    OPEN = "open"
    CLOSED = "closed"


_AUTHENTICATING = GuardState.AUTHENTICATING
_OPEN = GuardState.OPEN
_CLOSED = GuardState.CLOSED


class Guard(Layer):
    """One connection's protections; see the module docstring.

    ``client`` is the connection's ``admission.ClientRecord`` (or None for a
    Unix peer or a client connection), whose buckets it charges alongside
    its own. ``counters`` (the server's) gets ``rate_pauses`` counted in it.
    Clients use a guard too, for the ``Limits`` fields that make sense on
    their side (timeouts and rates; ``network.py`` refuses the rest).
    """

    __slots__ = ("_clock", "_state", "_framed", "_handshake", "_timer", "_auth_deadline",
                 "_first_frame_deadline", "_idle_seconds", "_last_activity", "_shaper",
                 "_limits", "_counters")

    def __init__(self, loop: Any, app: Any, limits: Limits, client: Any = None,
                 auth: Any = None, counters: Optional[Dict[str, int]] = None) -> None:
        super().__init__(loop, app)
        self._counters = counters
        # The loop's own clock function, read directly: one frame less per
        # read than loop.time(). The documented exception to "only the loop
        # reads the clock" (see loop.py); a FakeClock still drives it.
        self._clock = loop._clock
        self._limits = limits
        self._state = _AUTHENTICATING if auth is not None else _OPEN
        self._framed = isinstance(app, FramedProtocol)
        self._handshake = (auth.server_handshake(app.framer.clone() if self._framed else None)
                           if auth is not None else None)
        self._timer: Any = None
        self._auth_deadline = 0.0
        self._first_frame_deadline: Optional[float] = None
        self._idle_seconds = limits.idle_timeout_seconds
        self._last_activity = 0.0
        rated = limits.rate_bytes or limits.rate_messages or (client is not None and (
            client.bytes_bucket is not None or client.messages_bucket is not None))
        self._shaper = Shaper(loop, limits, client, counters, self._clock()) if rated else None

    # -- the lower transport's protocol face ------------------------------------

    def connection_made(self, transport: Any) -> None:
        """Start the deadlines, and the handshake or the app."""
        self._transport = transport
        now = self._last_activity = self._clock()
        limits = self._limits
        if limits.first_frame_timeout_seconds:
            self._first_frame_deadline = now + limits.first_frame_timeout_seconds
        if self._shaper is not None:
            self._shaper.start(transport, self._deliver, self._app if self._framed else None, now)
        if self._handshake is not None:
            self._auth_deadline = now + limits.auth_timeout_seconds
            self._arm(now)
            if self._handshake.greeting:
                transport.write(self._handshake.greeting)
            return
        self._arm(now)
        self._start_app()

    def data_received(self, data: bytes) -> None:
        """Note the activity, have the rates paid (or hold the bytes back), pass the bytes on."""
        # Hot path: once per read of a guarded connection. The common case is
        # one clock read, two subtractions from the credit the shaper leased
        # (its test written out here: one call less per read), an attribute
        # write and the app's own call.
        now = self._clock()
        if self._state is not _OPEN:
            self._last_activity = now
            if self._state is _AUTHENTICATING:
                self._authenticate(data)
            return
        shaper = self._shaper
        if shaper is not None:
            size = len(data)
            if (shaper.held is None and shaper.byte_credit >= size
                    and shaper.message_credit >= shaper.read_cost):
                shaper.byte_credit -= size
                shaper.message_credit -= shaper.read_cost
            elif not shaper.admit_bytes(data, now):
                return                               # held back: delivered when paid for
        self._last_activity = now
        if self._framed:
            self._deliver(data)
        else:
            self._app.data_received(data)
            self._first_frame_deadline = None

    def eof_received(self) -> Optional[bool]:
        """Pass the peer's half-close on; during auth it simply ends the connection."""
        if self._state is _OPEN:
            return self._app.eof_received()
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Stop the timers and tell the app, if it ever saw ``connection_made``."""
        state, self._state = self._state, _CLOSED
        if self._timer is not None:
            self._timer.cancel()
        if self._shaper is not None:
            self._shaper.close()                 # unspent leased tokens go back to siblings
        if state is _OPEN:
            self._app.connection_lost(exc)

    def pause_writing(self) -> None:
        """The lower send buffer is full: pass it on to the app."""
        if self._state is _OPEN:
            self._app.pause_writing()

    def resume_writing(self) -> None:
        """The lower send buffer drained: pass it on to the app."""
        if self._state is _OPEN:
            self._app.resume_writing()

    # -- the application's transport face -------------------------------------------

    def write(self, data: Any) -> None:
        """Write through to the transport; writing counts as activity."""
        # Hot path: every response of a guarded connection.
        self._last_activity = self._clock()
        self._transport.write(data)

    def close(self) -> None:
        """Close the connection after what is queued."""
        self._transport.close()

    def is_closing(self) -> bool:
        """Tell whether the connection is closing or closed."""
        return self._state is _CLOSED or self._transport.is_closing()

    def __repr__(self) -> str:
        return "<Guard %s %r>" % (self._state.value, self._transport)

    # -- internals ---------------------------------------------------------------

    def set_protocol(self, protocol: Any) -> None:
        """Guard ``protocol`` from now on (the client's auth layer hands over to the app)."""
        self._app = protocol
        self._framed = isinstance(protocol, FramedProtocol)
        if self._shaper is not None:
            self._shaper.set_app(protocol if self._framed else None)

    def _deliver(self, data: bytes) -> None:
        """Hand paid-for bytes to the app; the first frame (first read, if raw) ends that timer."""
        app = self._app
        if self._framed:
            frames_before = app.frames_in
            app.data_received(data)
            if app.frames_in != frames_before:
                self._first_frame_deadline = None
        else:
            app.data_received(data)
            self._first_frame_deadline = None

    def _start_app(self) -> None:
        self._state = _OPEN
        self._app.connection_made(self)       # an exception ends the connection (see transports)

    def _authenticate(self, data: bytes) -> None:
        handshake = self._handshake
        result = handshake.feed(data)
        if result is None:
            return
        accepted, reply, rest = result
        transport = self._transport
        if reply:
            transport.write(reply)
        if not accepted:
            self._state = _CLOSED
            transport.close_with_error(AuthenticationError("authentication failed: wrong "
                                                           "credentials or malformed answer"))
            return
        self._handshake = None
        self._first_frame_deadline = None          # the credentials were the first frame
        self._start_app()
        if self._state is not _OPEN or transport.is_closing():
            return
        app = self._app
        if handshake.framer is not None:
            app.framer = handshake.framer           # holds any partial frame that followed
            if rest:
                app.receive_frames(list(rest))      # charged and bounded like any others
        elif rest:
            self.data_received(rest)

    def _arm(self, now: float) -> None:
        """Point the one timer at the earliest deadline (making it the first time)."""
        deadline = self._next_deadline()
        if deadline is None:
            return
        delay = max(deadline - now, 0.0)
        if self._timer is None:
            self._timer = self._loop.call_later(delay, self._deadline_reached)
        else:
            self._timer.reset(delay)

    def _next_deadline(self) -> Optional[float]:
        deadlines = []
        if self._state is _AUTHENTICATING:
            deadlines.append(self._auth_deadline)
        if self._first_frame_deadline is not None:
            deadlines.append(self._first_frame_deadline)
        if self._idle_seconds:
            deadlines.append(self._last_activity + self._idle_seconds)
        return min(deadlines) if deadlines else None

    def _deadline_reached(self) -> None:
        """The timer fired: close for whichever deadline has passed, or re-arm."""
        if self._state is _CLOSED:
            return
        now = self._clock()
        transport = self._transport
        if self._state is _AUTHENTICATING:
            deadline = self._next_deadline()
            if deadline is not None and now >= deadline:   # auth, or idle/first frame before it
                self._state = _CLOSED
                transport.write(self._handshake.failure()[1])
                transport.close_with_error(AuthenticationError(
                    "not authenticated after %.3g s" % (now - self._auth_deadline
                                                        + self._limits.auth_timeout_seconds)))
                return
        if self._first_frame_deadline is not None and now >= self._first_frame_deadline:
            transport.close_with_error(FirstFrameTimeoutError(
                "no complete first frame within %.3g s of connecting"
                % self._limits.first_frame_timeout_seconds))
            return
        if self._idle_seconds and now >= self._last_activity + self._idle_seconds:
            transport.close_with_error(IdleTimeoutError(
                "idle (no bytes either way) for %.3g s" % self._idle_seconds))
            return
        self._arm(now)
