"""Framers for frames whose size is known up front: a length header, a netstring, a constant.

Nothing is searched: the size says where the frame ends, so a frame larger
than the limit is refused from its header, before its payload is buffered.
"""

import struct
from typing import Any, List, Optional, Tuple

from ..errors import FramingError
from .base import DEFAULT_MAX_LENGTH, Frame, Framer


class LengthPrefixFramer(Framer):
    """Frames are ``LENGTH PAYLOAD`` with a 1, 2, 4 or 8-byte unsigned length header.

    ``length_adjustment`` is added to the header's value to get the payload
    size, for protocols whose header counts itself (use ``-header_size``).
    """

    _FORMATS = {1: "B", 2: "H", 4: "I", 8: "Q"}

    def __init__(self, header_size: int = 4, byteorder: str = "big",
                 max_length: int = DEFAULT_MAX_LENGTH, length_adjustment: int = 0,
                 zero_copy: bool = False) -> None:
        super().__init__(max_length, zero_copy)
        if header_size not in self._FORMATS:
            raise ValueError("header_size must be 1, 2, 4 or 8, got %r" % (header_size,))
        if byteorder not in ("big", "little"):
            raise ValueError("byteorder must be 'big' or 'little', got %r" % (byteorder,))
        self.header_size = header_size
        self.byteorder = byteorder
        self.length_adjustment = length_adjustment
        self._header = struct.Struct((">" if byteorder == "big" else "<")
                                     + self._FORMATS[header_size])
        self._largest_header = (1 << (8 * header_size)) - 1

    def clone(self) -> "LengthPrefixFramer":
        return LengthPrefixFramer(self.header_size, self.byteorder, self.max_length,
                                  self.length_adjustment, self.zero_copy)

    def encode(self, frame: Any) -> bytes:
        frame = bytes(frame)
        size = len(frame)
        if size > self.max_length:
            raise self._too_long(size)
        value = size - self.length_adjustment
        if not 0 <= value <= self._largest_header:
            raise FramingError("a %d-byte frame does not fit a %d-byte length header"
                               % (size, self.header_size))
        return self._header.pack(value) + frame

    def _payload_size(self, value: int) -> int:
        size = value + self.length_adjustment
        if size < 0:
            raise FramingError("length header %d is smaller than the header itself "
                               "(adjustment %d)" % (value, self.length_adjustment))
        if size > self.max_length:
            raise self._too_long(size)
        return size

    def _complete(self, data: bytes) -> Optional[Tuple[bytes, int]]:
        pending, header_size = self._pending, self.header_size
        have = len(pending)
        if have < header_size:
            if have + len(data) < header_size:
                pending += data
                return None
            header = bytes(pending) + data[:header_size - have]
        else:
            header = pending
        size = self._payload_size(self._header.unpack_from(header)[0])
        used = header_size + size - have          # bytes of data this frame takes
        if used > len(data):
            pending += data
            return None
        if have <= header_size:
            return data[header_size - have:used], used
        return self._join(memoryview(pending)[header_size:], data, used), used

    def _check_pending(self) -> None:
        if len(self._pending) >= self.header_size:     # validates the header early
            self._payload_size(self._header.unpack_from(self._pending)[0])

    def _parse(self, data: bytes, start: int) -> Tuple[List[Frame], int]:
        header_size = self.header_size
        unpack_from = self._header.unpack_from
        cut = self._cut(data)
        frames: List[Frame] = []
        position, end = start, len(data)
        while end - position >= header_size:
            size = self._payload_size(unpack_from(data, position)[0])
            first = position + header_size
            if end - first < size:
                break
            frames.append(cut(first, first + size))
            position = first + size
        return frames, position


class NetstringFramer(Framer):
    """Netstrings (D. J. Bernstein): ``LEN:PAYLOAD,`` with LEN in decimal ASCII.

    A length with a non-digit, a leading zero, more digits than the limit
    allows, or a missing ``,`` is malformed.
    """

    def __init__(self, max_length: int = DEFAULT_MAX_LENGTH, zero_copy: bool = False) -> None:
        super().__init__(max_length, zero_copy)
        self._max_digits = len(str(max_length))

    def clone(self) -> "NetstringFramer":
        return NetstringFramer(self.max_length, self.zero_copy)

    def encode(self, frame: Any) -> bytes:
        frame = bytes(frame)
        if len(frame) > self.max_length:
            raise self._too_long(len(frame))
        return b"%d:%s," % (len(frame), frame)

    def _frame_end(self, data: Any, position: int) -> Optional[Tuple[int, int]]:
        """Return (payload start, payload size) of the netstring at ``position``, or None."""
        colon = data.find(b":", position, position + self._max_digits + 1)
        if colon < 0:
            digits = bytes(data[position:position + self._max_digits + 1])
            if len(digits) > self._max_digits or not digits.isdigit():
                raise FramingError("netstring must start with at most %d digits and ':', got %r"
                                   % (self._max_digits, digits[:16]))
            return None
        digits = bytes(data[position:colon])
        if not digits.isdigit() or (len(digits) > 1 and digits[:1] == b"0"):
            raise FramingError("netstring length %r is not a decimal number" % (digits,))
        size = int(digits)
        if size > self.max_length:
            raise self._too_long(size, "netstring")
        return colon + 1, size

    def _complete(self, data: bytes) -> Optional[Tuple[bytes, int]]:
        pending = self._pending
        have = len(pending)
        head_size = self._max_digits + 1
        head = bytes(pending[:head_size]) if have >= head_size else \
            bytes(pending) + data[:head_size - have]
        found = self._frame_end(head, 0)
        if found is None or found[0] + found[1] + 1 > have + len(data):
            pending += data
            return None
        start, size = found
        used = start + size + 1 - have            # through the ','
        whole = self._join(pending, data, used)
        if whole[-1:] != b",":
            raise FramingError("netstring of %d bytes is not followed by ','" % size)
        return whole[start:start + size], used

    def _check_pending(self) -> None:
        self._frame_end(bytes(self._pending[:self._max_digits + 1]), 0)

    def _parse(self, data: bytes, start: int) -> Tuple[List[Frame], int]:
        cut = self._cut(data)
        frames: List[Frame] = []
        position, end = start, len(data)
        while position < end:
            found = self._frame_end(data, position)
            if found is None:
                break
            first, size = found
            if end - first < size + 1:
                break
            if data[first + size:first + size + 1] != b",":
                raise FramingError("netstring of %d bytes is not followed by ','" % size)
            frames.append(cut(first, first + size))
            position = first + size + 1
        return frames, position


class FixedSizeFramer(Framer):
    """Every frame is exactly ``size`` bytes (``max_length`` is ``size``)."""

    def __init__(self, size: int, zero_copy: bool = False) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError("size must be an int >= 1, got %r" % (size,))
        super().__init__(size, zero_copy)
        self.size = size

    def clone(self) -> "FixedSizeFramer":
        return FixedSizeFramer(self.size, self.zero_copy)

    def encode(self, frame: Any) -> bytes:
        frame = bytes(frame)
        if len(frame) != self.size:
            raise FramingError("frame of %d bytes is not the fixed size %d"
                               % (len(frame), self.size))
        return frame

    def _complete(self, data: bytes) -> Optional[Tuple[bytes, int]]:
        used = self.size - len(self._pending)
        if used > len(data):
            self._pending += data
            return None
        return self._join(self._pending, data, used), used

    def _check_pending(self) -> None:
        pass                                  # never more than size - 1 pending

    def _parse(self, data: bytes, start: int) -> Tuple[List[Frame], int]:
        size = self.size
        consumed = len(data) - (len(data) - start) % size
        cut = self._cut(data)
        return [cut(first, first + size) for first in range(start, consumed, size)], consumed
