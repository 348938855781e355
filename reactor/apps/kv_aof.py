"""The append-only file behind ``python -m reactor kv --appendonly FILE``.

Every write command the server executes is appended to one file in RESP
form, exactly as Redis's AOF holds it, and replayed when the server starts::

    *3\\r\\n$3\\r\\nSET\\r\\n$1\\r\\nk\\r\\n$5\\r\\nhello\\r\\n      (SET k hello)

``AppendOnlyFile`` writes, ``replay`` reads. Both stand alone (their own
encoder, their own strict multibulk-only reader), so the file can be read
and checked without the server's RESP codec.

Where an appended command lives, and what loses it::

    our buffer  --flush(): write()-->  page cache  --os.fsync()-->  disk
    lost if the process dies           lost if the OS dies (power loss, panic)

A ``kill -9`` cannot lose what write() already handed to the kernel: the
kernel owns those pages and writes them back later. Only an OS crash loses
the page cache, and fsync is the guard against that.

========  ===============================================  ====================
policy    what happens                                     a power loss loses
========  ===============================================  ====================
always    ``append()`` buffers, ``flush()`` writes and  nothing acknowledged
          fsyncs (once a batch, before its replies)
everysec  ``append()`` buffers, ``flush()`` writes once    about one second
          per loop pass, ``tick()`` fsyncs once a second
no        as everysec, but nothing fsyncs: the OS writes   about 30 s (Linux)
          dirty pages back when it likes
========  ===============================================  ====================

Under everysec and no, a ``kill -9`` loses only what the running loop pass
appended and had not flushed yet: nearly nothing. ``always`` costs one fsync
per flush (per batch of pipelined commands), typically 0.1-10 ms on an SSD
and much more on a spinning disk, during which the loop serves no one.

Discussion: buffer, or write() per command? A loop pass may execute
hundreds of pipelined commands; one write() per pass is one syscall instead
of hundreds. The price is an ordering rule for the owner: flush before
sending the replies to the commands appended, as Redis does in
``beforeSleep``; a reply sent first could reach its client and then be lost
to a ``kill -9`` before the flush. The buffer is a list of encoded commands,
joined once per flush, rather than a ``bytearray`` grown on every append.

Discussion: ``tick()`` fsyncs on the loop thread. Redis hands the fsync to a
background thread (``bio.c``) so a slow disk cannot stall the loop; we keep
it inline, which is simpler, and the stall is at most one fsync a second.
Redis calls ``fdatasync`` on Linux and ``F_FULLFSYNC`` on macOS; we call
``os.fsync`` everywhere (an append changes the file size, which fdatasync
must write too, so it saves little; on macOS the drive's cache is not flushed).

Invariant: the file is always a byte prefix of every encoded command
appended, in order. A short or failed write() leaves the unwritten rest first
in the buffer, so the next flush finishes that command before starting
another. Our own writes can therefore leave at most one incomplete command
at the end, which ``replay`` reports as a truncated tail; any other damage
(a filesystem that leaves zeros after a power loss, a hand edit) is refused
with its byte offset.
"""

import logging
import os
import re
from typing import List, NamedTuple, Optional, Sequence, Tuple

from ..errors import ReactorError

logger = logging.getLogger("reactor")

FSYNC_POLICIES = ("always", "everysec", "no")

#: Redis's protocol limits (``processMultibulkBuffer``: a count up to INT_MAX,
#: a bulk up to the default ``proto-max-bulk-len``). A larger number in the
#: file is corruption, not a long command: without a bound, one flipped length
#: digit near the end would make the rest of the file look like a cut-off tail,
#: and ``open_and_replay`` would drop it. ``append`` refuses what replay would.
MAX_ARGUMENTS = 2 ** 31 - 1
MAX_ARGUMENT_BYTES = 512 * 1024 * 1024


class _HeaderKind(NamedTuple):
    """How to read one kind of header: the ``*`` count or the ``$`` length."""

    header: "re.Pattern[bytes]"     # a whole header; group 1 is the number
    prefix: "re.Pattern[bytes]"     # the longest start of a header (may match b"")
    limit: int
    first_byte: str                 # what the header starts with, for error messages


# No sign, no leading zero, at most as many digits as the limit has (the value
# itself is checked against the limit after the match).
_COUNT = _HeaderKind(re.compile(rb"\*([1-9][0-9]{0,9})\r\n"),
                     re.compile(rb"(?:\*(?:[1-9][0-9]{0,9}\r?)?)?"),
                     MAX_ARGUMENTS, "'*', the start of a command")
_LENGTH = _HeaderKind(re.compile(rb"\$(0|[1-9][0-9]{0,8})\r\n"),
                      re.compile(rb"(?:\$(?:(?:0|[1-9][0-9]{0,8})\r?)?)?"),
                      MAX_ARGUMENT_BYTES, "'$', the start of an argument")


class AofCorruptError(ReactorError, ValueError):
    """The append-only file is damaged somewhere other than a cut-off tail.

    ``path`` is the file, ``offset`` the byte offset of the first bad byte.
    The file is left untouched; the server refuses to start rather than
    serve a dataset that silently lost commands.
    """

    def __init__(self, path: str, offset: int, expected: str, found: bytes) -> None:
        super().__init__("appendonly file %s is corrupt at byte %d: expected %s, found %r"
                         % (path, offset, expected, found))
        self.path = path
        self.offset = offset


class AofClosedError(ReactorError, ValueError):
    """An ``AppendOnlyFile`` was written to after ``close()``."""


def replay(path: str) -> Tuple[List[List[bytes]], int, Optional[int]]:
    """Read every whole command in the file at ``path``.

    Return ``(commands, good_bytes, truncated_at)``: ``good_bytes`` is the
    offset just past the last whole command; ``truncated_at`` is None if the
    file ends cleanly, else the offset where an incomplete final command
    starts (then equal to ``good_bytes``). A missing file is an empty AOF.
    Raise ``AofCorruptError`` if the file is not a clean prefix of valid
    commands, optionally followed by the beginning of one more.

    Cost: the file is read whole, so memory is about twice its size while
    the commands are built; time is linear (each header is one regex match).
    """
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        return [], 0, None
    commands: List[List[bytes]] = []
    end = len(data)
    start = 0
    while start < end:
        command = _read_command(data, start, path)
        if command is None:
            return commands, start, start
        args, start = command
        commands.append(args)
    return commands, end, None


class AppendOnlyFile:
    """Append write commands to a file; flush and fsync by policy.

    It never reads a clock: under ``everysec`` the owner calls ``tick()``
    once a second from a loop timer, and ``flush()`` once per loop pass.
    ``bytes_written`` counts the bytes this object handed to the OS.
    """

    __slots__ = ("path", "fsync", "bytes_written", "_fd", "_pending", "_is_unsynced")

    def __init__(self, path: str, fsync: str = "everysec") -> None:
        """Open (or create, mode 0600: it holds every value) ``path`` for appending.

        Raise ``ValueError`` for a policy not in ``FSYNC_POLICIES``, ``OSError``
        if the file cannot be opened.
        """
        if fsync not in FSYNC_POLICIES:
            raise ValueError("unknown appendfsync policy %r; expected one of %s"
                             % (fsync, ", ".join(FSYNC_POLICIES)))
        self.path = path
        self.fsync = fsync
        self.bytes_written = 0
        self._pending: List[bytes] = []
        self._is_unsynced = False
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)
        self._fd = os.open(path, flags, 0o600)

    @classmethod
    def open_and_replay(cls, path: str, fsync: str = "everysec"
                        ) -> Tuple["AppendOnlyFile", List[List[bytes]]]:
        """Replay ``path``, cut off an incomplete last command, and open it for appending.

        A cut-off tail is logged as a WARNING naming the path, the offset and
        the bytes dropped; the truncation is fsynced before any new append, so
        new commands never follow the dropped bytes. Raise ``AofCorruptError``
        (the file untouched) for any other damage.
        """
        commands, good_bytes, truncated_at = replay(path)
        aof = cls(path, fsync)
        if truncated_at is not None:
            dropped_bytes = os.fstat(aof._fd).st_size - good_bytes
            logger.warning("appendonly file %s ends with an incomplete command at byte %d "
                           "(a crash mid-write?): dropping its %d bytes, keeping %d commands",
                           path, truncated_at, dropped_bytes, len(commands))
            try:
                os.ftruncate(aof._fd, good_bytes)
                os.fsync(aof._fd)
            except OSError:
                aof.close()
                raise
        return aof, commands

    def append(self, args: Sequence[bytes]) -> None:
        """Encode one command and buffer it (every policy: ``flush`` writes it).

        Raise ``ValueError`` for a command the file could not replay (no
        arguments, or one over ``MAX_ARGUMENT_BYTES``), ``AofClosedError``
        after ``close()``; nothing is buffered then.
        """
        # Hot path: once per write command; one join, no logging, no syscall.
        if self._fd < 0:
            raise AofClosedError("appendonly file %s is closed" % self.path)
        if not args:
            raise ValueError("a command needs at least one argument")
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            if len(arg) > MAX_ARGUMENT_BYTES:
                raise ValueError("an argument of %d bytes is over the limit of %d"
                                 % (len(arg), MAX_ARGUMENT_BYTES))
            parts += (b"$%d\r\n" % len(arg), arg, b"\r\n")
        self._pending.append(b"".join(parts))

    def flush(self) -> None:
        """Write the buffered commands to the OS (and fsync them under ``always``).

        The owner calls it before the replies to those commands leave: kv does,
        once per batch of pipelined commands, so ``always`` costs one fsync a
        batch, not one a command, and nothing acknowledged is lost.

        If write() fails (disk full), the unwritten bytes stay buffered ahead
        of any new ones and the ``OSError`` propagates; a later flush resumes.
        """
        if not self._pending:
            return
        if self._fd < 0:
            raise AofClosedError("appendonly file %s is closed" % self.path)
        view = memoryview(b"".join(self._pending))
        self._pending = []
        try:
            while view:
                # os.write may write less than asked; EINTR is retried by Python (PEP 475).
                written = os.write(self._fd, view)
                self.bytes_written += written
                self._is_unsynced = True
                view = view[written:]
        finally:
            if view:
                self._pending.insert(0, bytes(view))
        if self.fsync == "always":
            os.fsync(self._fd)
            self._is_unsynced = False

    def tick(self) -> None:
        """Flush, and under ``everysec`` fsync what is not yet on disk; call once a second."""
        self.flush()
        if self.fsync == "everysec" and self._is_unsynced:
            os.fsync(self._fd)
            self._is_unsynced = False

    def close(self) -> None:
        """Flush, fsync and close the file, whatever the policy; a second call does nothing."""
        if self._fd < 0:
            return
        try:
            self.flush()
            os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


def _read_command(data: bytes, start: int, path: str) -> Optional[Tuple[List[bytes], int]]:
    """Parse the command at ``start``: return (args, end), or None if the data ends inside it."""
    header = _read_header(data, start, _COUNT, path)
    if header is None:
        return None
    count, position = header
    args = []
    for _ in range(count):
        header = _read_header(data, position, _LENGTH, path)
        if header is None:
            return None
        length, payload_start = header
        payload_end = payload_start + length
        terminator = data[payload_end:payload_end + 2]
        if terminator != b"\r\n":
            if b"\r\n".startswith(terminator):
                return None                     # the data ends inside the payload or its \r\n
            bad_offset = payload_end + (terminator[:1] == b"\r")
            raise AofCorruptError(path, bad_offset, "'\\r\\n' after a %d-byte argument" % length,
                                  data[bad_offset:bad_offset + 1])
        args.append(data[payload_start:payload_end])
        position = payload_end + 2
    return args, position


def _read_header(data: bytes, start: int, kind: "_HeaderKind", path: str
                 ) -> Optional[Tuple[int, int]]:
    """Parse the header (``*N`` or ``$N``, then CRLF) at ``start``: return (N, end).

    Return None if the data ends inside a header that could still be valid.

    On a mismatch, ``kind.prefix`` finds the longest run a valid header could
    begin with. If the run reaches the end of the data, the file was cut inside
    the header; otherwise the byte after the run is the first bad one.
    """
    match = kind.header.match(data, start)
    if match:
        number = int(match.group(1))
        if number > kind.limit:
            raise AofCorruptError(path, start + 1, "a number up to %d" % kind.limit,
                                  match.group(1))
        return number, match.end()
    run_end = kind.prefix.match(data, start).end()   # type: ignore[union-attr]  # matches b""
    digits = data[start + 1:run_end].rstrip(b"\r")
    if digits and int(digits) > kind.limit:             # refused even when cut off
        raise AofCorruptError(path, start + 1, "a number up to %d" % kind.limit, digits)
    if run_end == len(data):
        return None
    run = data[start:run_end]
    if not run:
        expected = kind.first_byte
    elif run[-1:] == b"\r":
        expected = "'\\n'"
    elif len(run) == 1:
        expected = "a digit 1-9 (a count of at least 1)" if kind is _COUNT else "a digit (no sign)"
    elif kind.prefix.match(run + b"1").end() > len(run):      # type: ignore[union-attr]
        expected = "a digit or '\\r'"
    else:
        expected = "'\\r' (no more digits)"
    raise AofCorruptError(path, run_end, expected, data[run_end:run_end + 1])
