"""Framers for frames that end with a marker: a delimiter, or a line ending.

The frame's end is found by searching, so the cost to watch is the search:
only the new bytes are searched while a frame is pending (plus the few
bytes a delimiter could straddle), and a chunk of whole frames is split by
the C ``bytes.split`` in one call.
"""

from typing import Any, List, Optional, Tuple

from ..errors import FramingError
from .base import DEFAULT_MAX_LENGTH, Frame, Framer


class DelimiterFramer(Framer):
    """Frames end with ``delimiter`` (stripped); ``max_length`` excludes it."""

    def __init__(self, delimiter: bytes = b"\n", max_length: int = DEFAULT_MAX_LENGTH,
                 zero_copy: bool = False) -> None:
        super().__init__(max_length, zero_copy)
        if not isinstance(delimiter, bytes) or not delimiter:
            raise ValueError("delimiter must be non-empty bytes, got %r" % (delimiter,))
        self.delimiter = delimiter
        #: The longest frame _parse accepts before subclasses post-process it.
        self._raw_limit = max_length

    def clone(self) -> "DelimiterFramer":
        return DelimiterFramer(self.delimiter, self.max_length, self.zero_copy)

    def encode(self, frame: Any) -> bytes:
        frame = bytes(frame)
        if len(frame) > self.max_length:
            raise self._too_long(len(frame))
        if self.delimiter in frame:
            raise FramingError("frame contains the delimiter %r and cannot be sent"
                               % (self.delimiter,))
        return frame + self.delimiter

    def _complete(self, data: bytes) -> Optional[Tuple[bytes, int]]:
        # Search only the new bytes, plus enough old ones for a delimiter
        # that straddles the boundary: the search resumes where it stopped.
        pending, delimiter = self._pending, self.delimiter
        overlap = min(len(delimiter) - 1, len(pending))
        if overlap:
            found = (bytes(pending[-overlap:]) + data).find(delimiter) - overlap
        else:
            found = data.find(delimiter)
        if found < -overlap:                      # not found
            pending += data
            return None
        if found < 0:                             # the delimiter began in pending
            frame = bytes(pending[:len(pending) + found])
        else:
            frame = self._join(pending, data, found)
        return self._finish(frame), found + len(delimiter)

    def _finish(self, frame: bytes) -> bytes:
        """Check (and, for lines, strip) one frame completed from pending bytes."""
        if len(frame) > self._raw_limit:
            raise self._too_long(len(frame))
        return frame

    def _check_pending(self) -> None:
        # A pending frame may end with the first bytes of a delimiter.
        if len(self._pending) > self._raw_limit + len(self.delimiter) - 1:
            raise self._too_long(len(self._pending), "unterminated frame")

    def _parse(self, data: bytes, start: int) -> Tuple[List[Frame], int]:
        delimiter = self.delimiter
        end = data.rfind(delimiter, start)
        if end < 0:
            return [], start
        consumed = end + len(delimiter)
        limit = self._raw_limit
        if not self.zero_copy:
            body = data[start:end] if start or end < len(data) else data
            frames: List[Frame] = body.split(delimiter)
            longest = max(map(len, frames))
            if longest > limit:
                raise self._too_long(longest)
            return frames, consumed
        frames = []
        view = memoryview(data)
        size = len(delimiter)
        while start < consumed:
            stop = data.find(delimiter, start)
            if stop - start > limit:
                raise self._too_long(stop - start)
            frames.append(view[start:stop])
            start = stop + size
        return frames, consumed


class LineFramer(DelimiterFramer):
    """Lines ending in ``\\n``; a ``\\r\\n`` ending is accepted too (both stripped).

    ``encode`` ends lines with ``\\n``. ``max_length`` counts the line
    without its ending.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, zero_copy: bool = False) -> None:
        super().__init__(b"\n", max_length, zero_copy)
        self._raw_limit = max_length + 1        # the line plus a '\r' to strip

    def clone(self) -> "LineFramer":
        return LineFramer(self.max_length, self.zero_copy)

    def encode(self, frame: Any) -> bytes:
        frame = bytes(frame)
        if len(frame) > self.max_length:
            raise self._too_long(len(frame))
        if b"\n" in frame:
            raise FramingError("line contains a newline and cannot be sent as one line")
        return frame + b"\n"

    def _finish(self, frame: bytes) -> bytes:
        if frame[-1:] == b"\r":
            frame = frame[:-1]
        if len(frame) > self.max_length:
            raise self._too_long(len(frame), "line")
        return frame

    def _check_pending(self) -> None:
        if len(self._pending) > self.max_length + 1:      # room for a final '\r'
            raise self._too_long(len(self._pending), "unterminated line")

    def _parse(self, data: bytes, start: int) -> Tuple[List[Frame], int]:
        frames, consumed = super()._parse(data, start)
        limit = self.max_length
        for index, frame in enumerate(frames):
            if frame[-1:] == b"\r":
                frame = frames[index] = frame[:-1]
            if len(frame) > limit:
                raise self._too_long(len(frame), "line")
        return frames, consumed
