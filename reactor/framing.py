"""Framing: turn a byte stream into messages, whatever the chunking (sans-I/O).

TCP delivers bytes, not messages: one ``data_received`` may hold half a
message, or three and a bit. A *framer* restores the message boundaries.
It knows nothing of sockets: bytes go in, frames come out, so every framer
is tested by feeding it bytes split at every possible point::

    framer.feed(data) -> [frame, ...]     zero or more whole frames, in order
    framer.encode(frame) -> bytes         the frame as it goes on the wire
    framer.buffered                       bytes held back (a partial frame)
    framer.clone()                        a fresh framer with the same settings

======================  ==========================  =========================
framer                  on the wire                 frame is
======================  ==========================  =========================
``DelimiterFramer``     ``payload DELIM``           the bytes before DELIM
``LineFramer``          ``line\\n`` (or ``\\r\\n``)  the line, without ending
``LengthPrefixFramer``  ``LEN payload`` (1-8 bytes) the payload
``NetstringFramer``     ``5:hello,``                the payload
``FixedSizeFramer``     ``payload`` (N bytes)       the payload
======================  ==========================  =========================

Safety: every framer has a maximum frame length and never holds more than
that (plus one header or delimiter) before deciding. An oversized or
malformed frame raises :class:`~reactor.errors.FramingError` (a
``ValueError``) naming the limit and the offending size, as soon as it can
be known: a length header claiming 2**63 bytes fails on the header, not
after buffering; a line that never ends fails once it passes the limit.
After an error the framer is *closed*: the stream position is lost, so
every later ``feed`` raises too. The connection should be closed.

Speed: decoding is linear in the bytes fed, whatever the chunk sizes.

* With nothing pending (the common case: a chunk holding whole frames),
  frames are cut straight out of the fed ``bytes``: one copy per frame
  (or none: ``zero_copy=True`` yields ``memoryview`` slices of the chunk).
* A partial frame is kept in a ``bytearray``. While it cannot complete,
  new chunks are only appended (and, for delimiters, only the new chunk is
  searched: the search resumes where it stopped). When it completes, the
  frame is joined from the pending bytes and exactly the part of the new
  chunk it needs (one copy), and the rest of the chunk is parsed in place.
  Each byte is therefore searched once and copied a bounded number of times.

Discussion: asyncio's ``StreamReader.readuntil`` finds one frame per call
(a coroutine round trip each), and Twisted's ``LineReceiver`` buffers by
concatenation. We decode a whole chunk per call: for small frames the C
``bytes.split`` does all the work at once.
"""

import struct
from typing import Any, Callable, List, Optional, Tuple, Union

from .errors import FramingError

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
