"""Byte buffers: where a connection's outgoing bytes wait for the socket.

A send buffer is a queue of chunks with three operations (Tornado's
``_StreamBuffer`` is the model)::

    append(chunk)     O(1), no copy: the chunk object itself is queued
    peek(n)           the first n chunks, ready for sendmsg() (scatter/gather)
    advance(sent)     drop ``sent`` bytes from the front; a partly sent chunk
                      becomes a memoryview slice of itself, again no copy

Why a deque of chunks rather than one growing ``bytearray``? Appending to a
bytearray copies every byte once, and removing sent bytes from its front
copies the rest again (or needs an offset and periodic compaction). Chunks
are never copied here at all; the kernel gathers them with one ``sendmsg``.
The price is one small object per queued write, which matters only for
protocols that queue thousands of tiny writes (they should batch them with
``writelines``).

Chunks must be immutable (``bytes``, or a read-only ``memoryview``): the
transport copies mutable input before it gets here, so a caller reusing its
``bytearray`` cannot change bytes already queued.
"""

import collections
from itertools import islice
from typing import Deque, List, Union

Chunk = Union[bytes, memoryview]

#: How many chunks one sendmsg() call gathers; IOV_MAX is 1024 on Linux,
#: but past a few dozen the kernel copy dominates and the list costs more.
GATHER_CHUNKS = 64


class SendBuffer:
    """A FIFO of immutable byte chunks with a running byte count."""

    __slots__ = ("_chunks", "_size")

    def __init__(self) -> None:
        self._chunks: Deque[Chunk] = collections.deque()
        self._size = 0

    def __len__(self) -> int:
        """Return the number of bytes queued (not chunks)."""
        return self._size

    def append(self, chunk: Chunk) -> None:
        """Queue ``chunk`` (immutable, one byte per item) after everything already queued."""
        self._chunks.append(chunk)
        self._size += len(chunk)

    def peek(self, max_chunks: int = GATHER_CHUNKS) -> List[Chunk]:
        """Return up to ``max_chunks`` chunks from the front, without removing them."""
        chunks = self._chunks
        if len(chunks) <= max_chunks:
            return list(chunks)
        return list(islice(chunks, max_chunks))

    def first(self) -> Chunk:
        """Return the front chunk (the buffer must not be empty)."""
        return self._chunks[0]

    def chunk_count(self) -> int:
        """Return how many chunks are queued; 1 lets the caller use send() over sendmsg()."""
        return len(self._chunks)

    def advance(self, sent: int) -> None:
        """Forget the first ``sent`` bytes, which the socket has taken."""
        self._size -= sent
        chunks = self._chunks
        while sent:
            head = chunks[0]
            length = len(head)
            if sent < length:
                chunks[0] = memoryview(head)[sent:]
                return
            chunks.popleft()
            sent -= length

    def clear(self) -> None:
        """Drop everything queued (abort)."""
        self._chunks.clear()
        self._size = 0
