"""The framer contract, and the machinery every framer shares (see ``reactor.framing``).

A framer turns a byte stream into frames whatever the chunking. This base
class owns what all of them share: the limit, the pending partial frame, the
closed-after-error state, and ``feed``, which splits the work in two steps
each subclass writes for its own wire format (``_parse`` for bytes that
hold whole frames, ``_complete`` for a frame begun in an earlier chunk).
"""

from typing import Any, Callable, List, Optional, Tuple, Union

from ..errors import FramingError

Frame = Union[bytes, memoryview]

#: The default maximum frame: 1 MiB, as the command line's ``--max-frame``.
DEFAULT_MAX_LENGTH = 1024 * 1024


class Framer:
    """Common state of every framer: a limit, a pending buffer, and 'closed'.

    Subclasses implement two steps:

    ``_parse(data, start)``
        cut as many whole frames as possible from the immutable ``data``,
        beginning at ``start``; return them and the index after the last.
    ``_complete(data)``
        with a partial frame pending, either append ``data`` to it and
        return None (the frame still cannot complete), or finish the frame
        from exactly the bytes it needs and return ``(frame, used)``.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, zero_copy: bool = False) -> None:
        if not isinstance(max_length, int) or max_length < 0:
            raise ValueError("max_length must be an int >= 0, got %r" % (max_length,))
        self.max_length = max_length
        self.zero_copy = zero_copy
        self._pending = bytearray()
        self._error: Optional[FramingError] = None

    @property
    def buffered(self) -> int:
        """Return the number of bytes held back (an incomplete frame)."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        """Tell whether an earlier error closed this framer."""
        return self._error is not None

    def clone(self) -> "Framer":
        """Return a new framer with the same settings and no state (one per connection)."""
        raise NotImplementedError

    def feed(self, data: Any) -> List[Frame]:
        """Add received bytes; return the frames they complete, in order.

        Raises :class:`FramingError` for an oversized or malformed frame; the
        framer is then closed (frames completed before the bad one in the
        same chunk are lost with it: the connection is going away).
        """
        # Hot path: once per data_received of a framed protocol.
        if self._error is not None:
            raise FramingError("framer closed by an earlier error: %s" % self._error)
        if not data:
            return []
        if type(data) is not bytes:
            data = bytes(data)
        pending = self._pending
        try:
            if pending:
                completed = self._complete(data)
                if completed is None:
                    self._check_pending()
                    return []
                frame, start = completed
                del pending[:]
                more, consumed = self._parse(data, start)
                frames = [memoryview(frame) if self.zero_copy else frame] + more
            else:
                frames, consumed = self._parse(data, 0)
            if consumed < len(data):
                pending += memoryview(data)[consumed:]
                self._check_pending()
            return frames
        except FramingError as exc:
            self._error = exc
            del pending[:]
            raise

    def encode(self, frame: Any) -> bytes:
        """Return ``frame`` as it goes on the wire; raises FramingError if it cannot."""
        raise NotImplementedError

    def encode_many(self, frames: Any) -> bytes:
        """Return several frames encoded back to back (one write for the transport)."""
        return b"".join([self.encode(frame) for frame in frames])

    # -- for subclasses ------------------------------------------------------

    def _parse(self, data: bytes, start: int) -> Tuple[List[Frame], int]:
        raise NotImplementedError

    def _complete(self, data: bytes) -> Optional[Tuple[bytes, int]]:
        raise NotImplementedError

    def _check_pending(self) -> None:
        """Raise if the pending partial frame can already be seen to be too big."""
        raise NotImplementedError

    def _cut(self, data: bytes) -> Callable[[int, int], Frame]:
        """Return a function slicing frames out of ``data`` (bytes, or views if zero-copy)."""
        if self.zero_copy:
            view = memoryview(data)
            return lambda start, stop: view[start:stop]
        return lambda start, stop: data[start:stop]

    def _join(self, head: Any, data: bytes, stop: int) -> bytes:
        """Return ``head + data[:stop]`` with one copy (a frame that spans chunks)."""
        return b"".join((head, memoryview(data)[:stop]))

    def _too_long(self, size: int, what: str = "frame") -> FramingError:
        return FramingError("%s of %d bytes exceeds the limit of %d bytes"
                            % (what, size, self.max_length))


class CodecEvent:
    """A sans-I/O codec's event (HTTP's ``RequestHead``, WebSocket's ``Message`` ...).

    Equality and repr come from ``__slots__``, so tests and logs can compare
    events whole: ``Message("hi", True) == Message("hi", True)``.
    """

    __slots__ = ()

    def __eq__(self, other: Any) -> Any:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__))

