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

Receiving needs no per-connection buffer at all: every transport of a loop
reads into one preallocated buffer (:func:`thread_read_buffer`) and hands
the protocol a copy of exactly the bytes received.

Chunks must be immutable (``bytes``, or a read-only ``memoryview``): the
transport copies mutable input before it gets here, so a caller reusing its
``bytearray`` cannot change bytes already queued.
"""

import collections
import threading
from itertools import islice
from typing import Any, Deque, Dict, List, Union

Chunk = Union[bytes, memoryview]

#: How many chunks one sendmsg() call gathers; IOV_MAX is 1024 on Linux,
#: but past a few dozen the kernel copy dominates and the list costs more.
GATHER_CHUNKS = 64


class SendBuffer:
    """A FIFO of immutable byte chunks; ``nbytes`` counts the bytes queued.

    A transport creates one when a write cannot be sent at once, and drops
    it (back to None) once the socket has taken everything, so an idle
    connection holds no buffer object at all::

        None --write() short--> SendBuffer --on_writable() drains it--> None
    """

    __slots__ = ("_chunks", "nbytes")

    def __init__(self) -> None:
        self._chunks: Deque[Chunk] = collections.deque()
        self.nbytes = 0

    def append(self, chunk: Chunk) -> None:
        """Queue ``chunk`` (immutable, one byte per item) after everything already queued.

        The only way bytes enter the buffer, so ``nbytes`` is always right.
        """
        self._chunks.append(chunk)
        self.nbytes += len(chunk)

    def peek(self, max_chunks: int = GATHER_CHUNKS) -> List[Chunk]:
        """Return up to ``max_chunks`` chunks from the front, without removing them."""
        chunks = self._chunks
        if len(chunks) <= max_chunks:
            return list(chunks)
        return list(islice(chunks, max_chunks))

    def advance(self, sent: int) -> None:
        """Forget the first ``sent`` bytes, which the socket has taken.

        Whole chunks are popped; a chunk sent only in part is replaced by a
        memoryview of its unsent tail (no copy). ``sent`` must not exceed
        ``nbytes``.
        """
        chunks = self._chunks
        self.nbytes -= sent
        while sent:
            head = chunks[0]
            length = len(head)
            if sent < length:
                chunks[0] = memoryview(head)[sent:]
                return
            chunks.popleft()
            sent -= length

    def chunk_count(self) -> int:
        """Return how many chunks are queued (not bytes: that is ``nbytes``)."""
        return len(self._chunks)


def immutable_tail(data: Any, start: int) -> Any:
    """Return ``data[start:]`` as a chunk nobody can change: a zero-copy slice of
    ``bytes``, a one-time copy of anything mutable (``bytearray``, a writable view)."""
    if type(data) is bytes:
        return memoryview(data)[start:] if start else data
    view = memoryview(data).cast("B")[start:]
    return view if view.readonly else view.tobytes()


_thread_buffers = threading.local()


def thread_read_buffer(size: int) -> memoryview:
    """Return this thread's reusable receive buffer of ``size`` bytes.

    One per thread and size (a loop runs in one thread): every transport of
    a loop reads into the same memory, and the protocol gets a copy of the
    bytes received, so the buffer is free again before the next read. This
    is what keeps a read from allocating ``size`` bytes it mostly does not use.
    """
    buffers: Dict[int, memoryview] = getattr(_thread_buffers, "by_size", None)
    if buffers is None:
        buffers = _thread_buffers.by_size = {}
    view = buffers.get(size)
    if view is None:
        view = buffers[size] = memoryview(bytearray(size))
    return view
