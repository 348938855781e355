"""Framers (sans-I/O): every chunking gives the same frames; bad input fails early and closes."""

import random

import pytest

from reactor import FramingError
from reactor.framing import (DelimiterFramer, FixedSizeFramer, LengthPrefixFramer, LineFramer,
                             NetstringFramer)

SEED = 20261126


def all_framers():
    """(name, framer factory, sample frames) for every framer and interesting setting."""
    lines = [b"hello", b"", b"world with spaces", b"x" * 40]
    payloads = [b"hello", b"", b"\n,:\x00binary\r\n", b"y" * 250]
    return [
        ("line", lambda: LineFramer(max_length=64), lines),
        ("crlf-delimiter", lambda: DelimiterFramer(b"\r\n", max_length=64), lines),
        ("long-delimiter", lambda: DelimiterFramer(b"--END--", max_length=64), lines),
        ("length-1-big", lambda: LengthPrefixFramer(1, "big", max_length=255), payloads),
        ("length-2-little", lambda: LengthPrefixFramer(2, "little", max_length=1000), payloads),
        ("length-4-big", lambda: LengthPrefixFramer(4, "big", max_length=1000), payloads),
        ("length-8-little", lambda: LengthPrefixFramer(8, "little", max_length=1000), payloads),
        ("length-4-counts-itself",
         lambda: LengthPrefixFramer(4, "big", max_length=1000, length_adjustment=-4), payloads),
        ("netstring", lambda: NetstringFramer(max_length=1000), payloads),
        ("fixed-5", lambda: FixedSizeFramer(5), [b"hello", b"\x00\x01\x02\x03\x04", b"five!"]),
    ]


FRAMERS = all_framers()
IDS = [name for name, _, _ in FRAMERS]


def feed_chunks(framer, data, chunks):
    frames = []
    for chunk in chunks:
        frames.extend(bytes(frame) for frame in framer.feed(chunk))
    return frames


def split_at(data, points):
    points = [0] + sorted(points) + [len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


@pytest.mark.parametrize("name,make,frames", FRAMERS, ids=IDS)
def test_every_single_split_point_gives_the_same_frames(name, make, frames):
    """Splitting the encoded stream at any one byte position changes nothing."""
    wire = make().encode_many(frames)
    for point in range(len(wire) + 1):
        assert feed_chunks(make(), wire, split_at(wire, [point])) == frames, point


@pytest.mark.parametrize("name,make,frames", FRAMERS, ids=IDS)
def test_every_pair_of_split_points_on_a_small_input(name, make, frames):
    """Exhaustively, every two-cut split of a small multi-frame input gives the same frames."""
    small = [frame[:7] for frame in frames[:3]] if name != "fixed-5" else frames[:3]
    wire = make().encode_many(small)
    for first in range(len(wire) + 1):
        for second in range(first, len(wire) + 1):
            assert feed_chunks(make(), wire, split_at(wire, [first, second])) == small


@pytest.mark.parametrize("name,make,frames", FRAMERS, ids=IDS)
def test_byte_by_byte_and_trailing_partial(name, make, frames):
    """One byte at a time gives every frame; a trailing partial frame stays buffered, not lost."""
    framer = make()
    wire = framer.encode_many(frames)
    extra = framer.encode(frames[0])[:-1]
    got = feed_chunks(framer, wire + extra, [bytes([b]) for b in wire + extra])
    assert got == frames
    assert framer.buffered == len(extra)
    assert feed_chunks(framer, b"", [framer.encode(frames[0])[-1:]]) == [frames[0]]


@pytest.mark.parametrize("name,make,frames", FRAMERS, ids=IDS)
def test_seeded_fuzz_round_trip(name, make, frames):
    """Random frames through random chunkings round-trip through encode and feed."""
    rng = random.Random(SEED)
    prototype = make()
    for round_number in range(200):
        if name == "fixed-5":
            sample = [bytes(rng.getrandbits(8) for _ in range(5)) for _ in range(rng.randint(0, 20))]
        else:
            limit = min(prototype.max_length, 200)
            alphabet = b"abc \t" if "delimiter" in name or name == "line" else bytes(range(256))
            sample = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, limit)))
                      for _ in range(rng.randint(0, 20))]
        wire = prototype.encode_many(sample)
        cuts = [rng.randint(0, len(wire)) for _ in range(rng.randint(0, 12))]
        framer = prototype.clone()
        assert feed_chunks(framer, wire, split_at(wire, cuts)) == sample, \
            "seed=%d round=%d" % (SEED, round_number)
        assert framer.buffered == 0


@pytest.mark.parametrize("name,make,frames", FRAMERS, ids=IDS)
def test_zero_copy_frames_are_views_with_the_same_bytes(name, make, frames):
    """zero_copy=True yields memoryview frames equal to the bytes frames."""
    framer = make()
    framer.zero_copy = True
    wire = framer.encode_many(frames)
    got = framer.feed(wire)
    assert all(isinstance(frame, memoryview) for frame in got)
    assert [bytes(frame) for frame in got] == frames


def test_line_framer_accepts_crlf_and_strips_it():
    """LineFramer strips '\\n' and '\\r\\n' endings; encode always ends with '\\n'."""
    framer = LineFramer(max_length=10)
    assert framer.feed(b"one\r\ntwo\nthree\r") == [b"one", b"two"]
    assert framer.feed(b"\n") == [b"three"]
    assert framer.encode(b"x") == b"x\n"


@pytest.mark.parametrize("make,wire_for", [
    (lambda: LineFramer(max_length=8), lambda n: b"a" * n + b"\n"),
    (lambda: DelimiterFramer(b"||", max_length=8), lambda n: b"a" * n + b"||"),
    (lambda: LengthPrefixFramer(4, max_length=8), lambda n: n.to_bytes(4, "big") + b"a" * n),
    (lambda: NetstringFramer(max_length=8), lambda n: b"%d:%s," % (n, b"a" * n)),
], ids=["line", "delimiter", "length", "netstring"])
def test_limits_at_minus_one_exact_and_plus_one(make, wire_for):
    """A frame of limit-1 and limit bytes decodes; limit+1 raises FramingError naming both sizes."""
    assert make().feed(wire_for(7)) == [b"a" * 7]
    assert make().feed(wire_for(8)) == [b"a" * 8]
    with pytest.raises(FramingError, match=r"9 bytes.*limit of 8"):
        make().feed(wire_for(9))
    framer = make()
    with pytest.raises(FramingError):                # the same, one byte at a time
        for byte in wire_for(9):
            framer.feed(bytes([byte]))
            assert framer.buffered <= 8 + 2


def test_header_claiming_2_to_the_63_fails_on_the_header():
    """An 8-byte length header of 2**63 raises at once, with only the header buffered."""
    framer = LengthPrefixFramer(8, max_length=1 << 20)
    with pytest.raises(FramingError, match="9223372036854775808"):
        framer.feed((1 << 63).to_bytes(8, "big"))
    framer = LengthPrefixFramer(8, max_length=1 << 20)
    with pytest.raises(FramingError):
        for byte in (1 << 63).to_bytes(8, "big"):
            framer.feed(bytes([byte]))
            assert framer.buffered < 8


def test_header_smaller_than_itself_is_malformed():
    """With a self-counting header, a length below the header size is malformed."""
    framer = LengthPrefixFramer(4, length_adjustment=-4)
    with pytest.raises(FramingError, match="smaller than the header"):
        framer.feed((2).to_bytes(4, "big"))


@pytest.mark.parametrize("bad", [b"5x:hello,", b"x:", b"-1:a,", b"05:hello,", b":,",
                                 b"5:hello;", b"99999999999:"])
def test_malformed_netstrings(bad):
    """Non-digit lengths, leading zeros, a missing ',' and too many digits are FramingErrors."""
    with pytest.raises(FramingError):
        NetstringFramer(max_length=1000).feed(bad)


def test_netstring_rejects_non_digit_before_the_colon_arrives():
    """A netstring length is rejected at its first non-digit, without waiting for ':'."""
    framer = NetstringFramer(max_length=1000)
    framer.feed(b"1")
    with pytest.raises(FramingError):
        framer.feed(b"a")


def test_line_that_never_ends_fails_within_limit_plus_one_chunk():
    """A 64 MiB line with no newline, fed in 4 KiB chunks, raises after <= limit + a chunk buffered."""
    limit, chunk = 1 << 20, b"z" * 4096
    framer = LineFramer(max_length=limit)
    fed = 0
    with pytest.raises(FramingError, match="unterminated line"):
        while fed < 64 << 20:
            framer.feed(chunk)
            fed += len(chunk)
            assert framer.buffered <= limit + len(chunk)
    assert fed <= limit + len(chunk)


def test_a_failed_framer_stays_closed():
    """After a FramingError every feed raises and nothing is buffered."""
    framer = LineFramer(max_length=4)
    with pytest.raises(FramingError):
        framer.feed(b"too long line\n")
    assert framer.closed and framer.buffered == 0
    with pytest.raises(FramingError, match="closed"):
        framer.feed(b"ok\n")
    assert framer.clone().feed(b"ok\n") == [b"ok"]


def test_encode_refuses_what_it_cannot_frame():
    """encode() raises FramingError for oversized frames, embedded delimiters and wrong sizes."""
    with pytest.raises(FramingError):
        LineFramer(max_length=3).encode(b"four")
    with pytest.raises(FramingError):
        LineFramer().encode(b"two\nlines")
    with pytest.raises(FramingError):
        DelimiterFramer(b"|").encode(b"a|b")
    with pytest.raises(FramingError):
        LengthPrefixFramer(1, max_length=1000).encode(b"x" * 256)
    with pytest.raises(FramingError):
        FixedSizeFramer(3).encode(b"ab")
    with pytest.raises(FramingError):
        NetstringFramer(max_length=2).encode(b"abc")


def test_bad_settings_are_value_errors():
    """Invalid framer settings raise ValueError naming the setting."""
    for make in (lambda: LineFramer(max_length=-1), lambda: DelimiterFramer(b""),
                 lambda: LengthPrefixFramer(3), lambda: LengthPrefixFramer(4, "middle"),
                 lambda: FixedSizeFramer(0)):
        with pytest.raises(ValueError):
            make()


def test_framing_error_is_a_value_error():
    """FramingError subclasses ValueError, so generic input validation catches it."""
    assert issubclass(FramingError, ValueError)
