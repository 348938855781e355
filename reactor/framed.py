"""FramedProtocol: a Protocol that receives and sends whole messages.

It joins a sans-I/O framer (``reactor/framing/``) to a transport::

    data_received(bytes) -> framer.feed -> frames_received(frames) -> frame_received(frame)
    send_frame(frame)    -> framer.encode -> transport.write
    send_frames(frames)  -> one encode_many -> one transport.write

Declare the framer as a class attribute; each connection gets its own
``clone()`` in ``connection_made``, since a framer holds a partial frame::

    class Chat(FramedProtocol):
        framer = LineFramer(max_length=4096)
        def frame_received(self, line):
            self.send_frame(line.upper())

Bad input costs one connection, nothing else: on ``FramingError``,
``framing_error(exc)`` runs (override it to send the peer a last word), then
``transport.close_with_error(exc)`` closes the connection gracefully, so
that last word is flushed first. The server counts and logs the reason
(rate-limited: ten thousand bad clients make two log lines, not ten
thousand), and ``connection_lost`` receives the ``FramingError``.

``frames_in`` and ``frames_out`` count whole frames each way; servers add
them to their ``stats()`` and rate limits count messages by them.
"""

from typing import Any, Iterable, List

from .errors import FramingError
from .framing import Framer, LineFramer
from .protocols import Protocol


class FramedProtocol(Protocol):
    """A stream protocol that deals in frames; see the module docstring.

    Callback order: ``connection_made  (frames_received -> frame_received*)*  [framing_error]
    [eof_received]  connection_lost``. ``frame_received`` may call
    ``send_frame``, ``close`` and the transport's other methods; frames
    decoded from the same chunk after a ``close()`` are not delivered.
    """

    #: The framer prototype; cloned per connection. Override in subclasses.
    framer: Framer = LineFramer()
    #: Whole frames received and sent on this connection.
    frames_in = 0
    frames_out = 0

    def connection_made(self, transport: Any) -> None:
        """Take the transport and a fresh framer; call super() when overriding."""
        self.transport = transport
        self.framer = self.framer.clone()

    def data_received(self, data: bytes) -> None:
        """Feed bytes to the framer and deliver each whole frame."""
        # Hot path: once per chunk; the per-frame loop is the protocol's own.
        try:
            frames = self.framer.feed(data)
        except FramingError as exc:
            self._framing_failed(exc)
            return
        if frames:
            self.frames_in += len(frames)
            self.frames_received(frames)

    def frames_received(self, frames: List[Any]) -> None:
        """Handle every whole frame one chunk completed; by default, one by one.

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

    def _framing_failed(self, exc: FramingError) -> None:
        try:
            self.framing_error(exc)
        finally:
            self.transport.close_with_error(exc)
