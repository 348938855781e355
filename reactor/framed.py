"""FramedProtocol: a Protocol that receives and sends whole messages.

It joins a sans-I/O framer (``reactor/framing/``) to a transport::

    data_received(bytes) -> framer.feed -> [gate] -> frames_received(frames) -> frame_received(frame)
    send_frame(frame)    -> framer.encode -> transport.write
    send_frames(frames)  -> one encode_many -> one transport.write

Declare the framer as a class attribute; each connection gets its own
``clone()`` in ``connection_made``, since a framer holds a partial frame::

    class Chat(FramedProtocol):
        framer = LineFramer(max_length=4096)
        def frame_received(self, line):
            self.send_frame(line.upper())

**Bounded work per read.** One 64 KiB read can hold 32,000 short frames, and
an application that does real work per frame (a broadcast to 200 members)
would hold the loop for seconds. So a framed protocol is handed at most
``Limits.frames_per_pass`` frames (64) per loop pass; the rest wait in a
backlog while reading is held (``hold_reading(HOLD_FRAMES)``), and the next
pass carries on. Every other connection is served in between. A *gate* (set
by the protections' guard for message rates) may let fewer through: frames
are charged to the rate *before* the application sees them, and the rest
wait, reading held, until the guard has credit again and calls
``deliver_frames``. The backlog is bounded by one read's worth of frames.
The application's own ``pause_reading()`` stops the *reading*: frames
already cut from the last read still arrive, as they did when a read's
frames all came in one call (asyncio's ``data_received`` is the same).

**Bad input costs one connection, nothing else.** On ``FramingError``,
``framing_error(exc)`` runs (override it to send the peer a last word), then
``transport.close_with_error(exc)`` closes the connection gracefully, so
that last word is flushed first. The server counts and logs the reason
(rate-limited), and ``connection_lost`` receives the ``FramingError``. A
frame that has begun must also *finish*: within
``Limits.frame_progress_timeout_seconds`` of its first byte (30 s), or the
connection is closed with ``FrameTimeoutError``; trickling a byte at a time
does not extend it. Partial frames count against the server's
``InputBudget`` (``Limits.max_buffered_input_bytes``).

``frames_in`` and ``frames_out`` count whole frames each way; servers add
them to their ``stats()``.
"""

from typing import Any, Callable, Iterable, List, Optional

from .errors import FrameTimeoutError, FramingError
from .framing import Framer, LineFramer
from .protocols import HOLD_FRAMES, Protocol


class FramedProtocol(Protocol):
    """A stream protocol that deals in frames; see the module docstring.

    Callback order: ``connection_made  (frames_received -> frame_received*)*  [framing_error]
    [eof_received]  connection_lost``. ``frame_received`` may call
    ``send_frame``, ``close`` and the transport's other methods; frames
    after a ``close()`` are not delivered. A subclass may define its own
    ``__init__`` without calling ``super().__init__()``; it must call
    ``super().connection_made(transport)`` if it overrides that.
    """

    #: The framer prototype; cloned per connection. Override in subclasses.
    framer: Framer = LineFramer()
    #: Whole frames received (delivered to the app) and sent on this connection.
    frames_in = 0
    frames_out = 0
    #: Frames handed over per loop pass (``Limits.frames_per_pass`` when the
    #: transport knows its limits).
    frames_per_pass = 64
    #: Set by a layer that charges frames (the guard's message rate):
    #: ``gate(n)`` returns how many of the next ``n`` frames may go through
    #: now, already charged. None: every frame may.
    frame_gate: Optional[Callable[[int], int]] = None
    # Per connection, set on first use; class defaults keep __init__ free.
    _backlog: Optional[List[Any]] = None
    _backlog_start = 0
    _frame_timer: Any = None
    _frame_timeout: Optional[float] = None
    _report_held: Any = None        # report_held("frames", bytes): the server's InputBudget
    _partial = False                # a partial frame is (or was, at the last feed) pending

    def connection_made(self, transport: Any) -> None:
        """Take the transport, a fresh framer and the limits; call super() when overriding."""
        self.transport = transport
        self.framer = self.framer.clone()
        limits = transport.get_extra_info("limits")
        if limits is not None:
            self.frames_per_pass = limits.frames_per_pass
            self._frame_timeout = limits.frame_progress_timeout_seconds
        self._report_held = transport.get_extra_info("input_budget")

    def data_received(self, data: bytes) -> None:
        """Feed bytes to the framer and hand over the whole frames, a bounded number per pass."""
        # Hot path: once per chunk. The common case (a few whole frames, no
        # gate, no backlog, nothing left pending) is one feed, two tests and
        # the application's call.
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            self._framing_failed(exc)
            return
        if self.framer.buffered or self._partial:
            self._pending_changed(bool(frames))
        if not frames:
            return
        if (self._backlog is None and self.frame_gate is None
                and len(frames) <= self.frames_per_pass):
            self.frames_in += len(frames)
            self.frames_received(frames)
            return
        self.receive_frames(frames)

    def receive_frames(self, frames: List[Any]) -> None:
        """Take whole frames into the backlog and deliver what may go now.

        ``data_received`` uses it past its common case; a layer that decoded
        frames itself (the guard, with what followed the credentials) hands
        them over here, so they are bounded and charged like any others.
        """
        if self._backlog is None:
            self._backlog, self._backlog_start = frames, 0
        else:
            self._backlog.extend(frames)
        self.deliver_frames()

    def deliver_frames(self) -> None:
        """Hand over the backlog, at most ``frames_per_pass`` and what the gate allows.

        Reading is held while frames wait. The next pass carries on by
        itself; frames the gate refused wait for the gate's owner to call
        this again when it has credit.
        """
        backlog = self._backlog
        transport = self.transport
        if backlog is None or transport.is_closing():
            self._backlog = None
            return
        start = self._backlog_start
        count = min(len(backlog) - start, self.frames_per_pass)
        gate = self.frame_gate
        allowed = gate(count) if gate is not None else count
        if allowed:
            self._backlog_start = start + allowed
            self.frames_in += allowed
            self.frames_received(backlog[start:start + allowed])
            if transport.is_closing():
                self._backlog = None
                return
        if self._backlog_start >= len(backlog):
            self._backlog = None
            transport.release_reading(HOLD_FRAMES)
            return
        transport.hold_reading(HOLD_FRAMES)
        if allowed == count:                       # the per-pass bound, not the gate, stopped us
            transport.loop.call_soon(transport.run_protected, self.deliver_frames)

    def frames_waiting(self) -> int:
        """Return how many whole frames wait in the backlog (not yet handed over)."""
        return 0 if self._backlog is None else len(self._backlog) - self._backlog_start

    def frames_received(self, frames: List[Any]) -> None:
        """Handle every whole frame of a batch; by default, one by one.

        Override it to answer a batch at once: a reply per frame costs a
        ``send()`` syscall each, while one ``send_frames`` for the batch
        costs one (16 pipelined requests, 1 syscall instead of 16).
        """
        transport = self.transport
        for frame in frames:
            self.frame_received(frame)
            if transport.is_closing():
                return

    def frame_received(self, frame: Any) -> None:
        """Handle one whole frame (``bytes``, or ``memoryview`` with a zero-copy framer)."""

    def send_frame(self, frame: Any) -> None:
        """Encode one frame and write it; raises FramingError if it cannot be framed."""
        self.transport.write(self.framer.encode(frame))
        self.frames_out += 1

    def send_frames(self, frames: Iterable[Any]) -> None:
        """Encode several frames and write them with one ``write`` (one syscall at best)."""
        if not isinstance(frames, (list, tuple)):
            frames = list(frames)
        self.transport.write(self.framer.encode_many(frames))
        self.frames_out += len(frames)

    def framing_error(self, exc: FramingError) -> None:
        """React to bad input before the connection closes (default: nothing more)."""

    # -- internals -------------------------------------------------------------

    def _pending_changed(self, completed: bool) -> None:
        """A partial frame began, grew, completed or was replaced: timer and budget follow."""
        held = self.framer.buffered
        if held and (completed or not self._partial):
            self._arm_frame_timer()                # a new frame began: its own deadline
        elif not held and self._frame_timer is not None:
            self._frame_timer.cancel()
            self._frame_timer = None
        self._partial = bool(held)
        if self._report_held is not None:
            self._report_held("frames", held)

    def _arm_frame_timer(self) -> None:
        """Start (or restart, for a new frame) the deadline of the frame now pending."""
        timeout = self._frame_timeout
        if not timeout:
            return
        if self._frame_timer is None:
            self._frame_timer = self.transport.loop.call_later(timeout, self._frame_too_slow)
        else:
            self._frame_timer.reset(timeout)            # a fired or pending timer, re-armed

    def _frame_too_slow(self) -> None:
        if self.framer.buffered and not self.transport.is_closing():
            self.transport.close_with_error(FrameTimeoutError(
                "a frame begun %.3g s ago is still not complete (%d bytes so far)"
                % (self._frame_timeout, self.framer.buffered)), flush=False)

    def _framing_failed(self, exc: FramingError) -> None:
        events = getattr(exc, "events", None)       # whole before the bad bytes: deliver them
        if events and not self.transport.is_closing():
            exc.events = []
            self.frames_in += len(events)
            self.frames_received(events)
        try:
            self.framing_error(exc)
        finally:
            self.transport.close_with_error(exc)
