"""The send buffer: append, peek and advance at, inside and across chunk boundaries."""

import pytest

from reactor.buffers import GATHER_CHUNKS, SendBuffer, immutable_tail


def filled(*chunks):
    buffer = SendBuffer()
    for chunk in chunks:
        buffer.append(chunk)
    return buffer


def contents(buffer):
    return b"".join(bytes(chunk) for chunk in buffer.peek(max_chunks=10**6))


def test_append_counts_bytes_and_chunks_without_copying():
    """append queues the chunk object itself; nbytes counts bytes, chunk_count chunks."""
    first, second = b"abc", b"defgh"
    buffer = filled(first, second)
    assert (buffer.nbytes, buffer.chunk_count()) == (8, 2)
    assert buffer.peek()[0] is first and buffer.peek()[1] is second


@pytest.mark.parametrize("sent, left, chunks_left", [
    (0, b"abcdefgh", 2),         # nothing sent
    (2, b"cdefgh", 2),           # inside the first chunk
    (3, b"defgh", 1),            # exactly at the boundary: the first chunk is popped
    (5, b"fgh", 1),              # across the boundary, inside the second chunk
    (8, b"", 0),                 # everything
])
def test_advance_at_inside_and_across_chunk_boundaries(sent, left, chunks_left):
    """advance(n) forgets exactly n bytes wherever n falls relative to chunk boundaries."""
    buffer = filled(b"abc", b"defgh")
    buffer.advance(sent)
    assert contents(buffer) == left
    assert buffer.nbytes == len(left)
    assert buffer.chunk_count() == chunks_left


def test_a_partly_sent_chunk_becomes_a_view_not_a_copy():
    """The unsent tail of a chunk is a memoryview of it (zero copy)."""
    chunk = b"x" * 1000
    buffer = filled(chunk)
    buffer.advance(10)
    head = buffer.peek()[0]
    assert isinstance(head, memoryview) and head.obj is chunk and len(head) == 990


def test_every_split_of_a_random_stream_comes_out_whole():
    """Advancing by every step size drains exactly the bytes appended, in order."""
    payload = bytes(range(256)) * 4
    for step in range(1, 40):
        buffer = SendBuffer()
        for start in range(0, len(payload), 7):
            buffer.append(payload[start:start + 7])
        out = bytearray()
        while buffer.nbytes:
            take = min(step, buffer.nbytes)
            out += contents(buffer)[:take]
            buffer.advance(take)
        assert bytes(out) == payload, step


def test_peek_gathers_at_most_the_given_number_of_chunks():
    """peek() returns at most GATHER_CHUNKS chunks for one sendmsg()."""
    buffer = filled(*[b"%d" % i for i in range(GATHER_CHUNKS + 5)])
    assert len(buffer.peek()) == GATHER_CHUNKS
    assert len(buffer.peek(3)) == 3


def test_immutable_tail_copies_only_mutable_input():
    """A bytes tail is a zero-copy view; a bytearray is copied, so later edits cannot leak in."""
    data = b"hello world"
    assert immutable_tail(data, 0) is data
    assert bytes(immutable_tail(data, 6)) == b"world"
    mutable = bytearray(b"hello world")
    tail = immutable_tail(mutable, 6)
    mutable[6:] = b"XXXXX"
    assert tail == b"world"
