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

The package, in reading order: ``base.py`` (``Framer``: the contract and
the shared machinery), ``delimited.py`` (frames that end with a marker:
``DelimiterFramer``, ``LineFramer``), ``counted.py`` (frames whose size is
known up front: ``LengthPrefixFramer``, ``NetstringFramer``,
``FixedSizeFramer``). Import them from here: ``reactor.framing.LineFramer``.

Discussion: asyncio's ``StreamReader.readuntil`` finds one frame per call
(a coroutine round trip each), and Twisted's ``LineReceiver`` buffers by
concatenation. We decode a whole chunk per call: for small frames the C
``bytes.split`` does all the work at once.
"""

from ..errors import FramingError
from .base import DEFAULT_MAX_LENGTH, Frame, Framer
from .counted import FixedSizeFramer, LengthPrefixFramer, NetstringFramer
from .delimited import DelimiterFramer, LineFramer

__all__ = ["DEFAULT_MAX_LENGTH", "Frame", "Framer", "FramingError", "DelimiterFramer",
           "LineFramer", "LengthPrefixFramer", "NetstringFramer", "FixedSizeFramer"]
