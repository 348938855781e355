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
the protocol a copy of exactly the bytes received. What does wait on the
receiving side (a framer's partial frame, input a rate limit holds back) is
bounded per connection by the framer's limit, and across a server by an
:class:`InputBudget`: 400 connections each holding an almost-complete 1 MiB
frame would otherwise cost 400 MiB.

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


class InputBudget:
    """Bytes held on the receiving side across a server's connections, with a cap.

    What a connection holds is reported per *part*: ``"frames"`` (a framed
    protocol's partial frame) and ``"rate"`` (input a rate limit holds
    back), each with ``update(transport, part, held_bytes)``. When the total
    passes ``max_bytes``, the connections holding the most are told to let
    go (``transport.input_budget_exceeded(held, max_bytes)`` closes it with a
    logged reason) until the total is back under the cap: those hoarding the
    most pay. ``forget(transport)`` when a connection closes. Cost: a dict
    write when a holding changes (a connection whose frames end inside each
    chunk holds nothing and reports nothing); O(holders) only past the cap.
    """

    __slots__ = ("max_bytes", "total", "_held")

    PARTS = ("frames", "rate")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.total = 0
        self._held: Dict[Any, int] = {}         # (transport, part) -> bytes

    def update(self, transport: Any, part: str, held_bytes: int) -> None:
        """Record that ``transport`` now holds ``held_bytes`` for ``part``; enforce the cap."""
        key = (transport, part)
        before = self._held.pop(key, 0)
        if held_bytes:
            self._held[key] = held_bytes
        self.total += held_bytes - before
        while self.total > self.max_bytes and self._held:
            largest = max(self._held, key=self._held.__getitem__)
            held = self._held.pop(largest)
            self.total -= held
            largest[0].input_budget_exceeded(held, self.max_bytes)

    def forget(self, transport: Any) -> None:
        """Drop every holding of a connection that closed."""
        for part in self.PARTS:
            self.total -= self._held.pop((transport, part), 0)


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
