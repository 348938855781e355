"""WebSocket frames (reactor/websocket/frames.py): parsing, limits, refusals, encoding."""

import os
import random
import struct

import pytest

from reactor.errors import FramingError
from reactor.websocket.frames import (OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG,
                                      OP_TEXT, Close, CloseCode, FrameParser, Message, Ping,
                                      Pong, WebSocketError, apply_mask, encode_close,
                                      encode_frame, encode_message, encode_ping, encode_pong,
                                      is_valid_close_code)

KEY = bytes([0x37, 0xFA, 0x21, 0x3D])       # RFC 6455 5.7's masking key
MIB = 1024 * 1024


def frame(opcode, payload=b"", masked=True, fin=True, rsv=0, key=KEY):
    """Build a frame by hand, masked byte by byte: the reference the parser is checked against."""
    length = len(payload)
    if length < 126:
        head = bytes([fin << 7 | rsv << 4 | opcode, masked << 7 | length])
    elif length < 65536:
        head = struct.pack("!BBH", fin << 7 | rsv << 4 | opcode, masked << 7 | 126, length)
    else:
        head = struct.pack("!BBQ", fin << 7 | rsv << 4 | opcode, masked << 7 | 127, length)
    if not masked:
        return head + payload
    return head + key + bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))


def feed_pieces(pieces, masked=True, **options):
    parser = FrameParser(expect_masked=masked, **options)
    events = []
    for piece in pieces:
        events += parser.feed(piece)
    return events, parser


def parse(data, masked=True, **options):
    return feed_pieces([data], masked, **options)[0]


def refusal(data, masked=True, **options):
    """Return the close code a parser refuses ``data`` with."""
    with pytest.raises(WebSocketError) as info:
        parse(data, masked, **options)
    return info.value.code


def stream(masked):
    """A conversation: text, binary in three fragments around a ping, a pong, a close."""
    return (frame(OP_TEXT, "héllo".encode(), masked)
            + frame(OP_BINARY, b"\x00\x01", masked, fin=False)
            + frame(OP_PING, b"are you there", masked)
            + frame(OP_CONTINUATION, b"", masked, fin=False)
            + frame(OP_CONTINUATION, bytes(range(200)), masked)
            + frame(OP_TEXT, b"", masked)
            + frame(OP_PONG, b"", masked)
            + frame(OP_CLOSE, b"\x03\xe8bye", masked))


STREAM_EVENTS = [Message("héllo", True), Ping(b"are you there"),
                 Message(b"\x00\x01" + bytes(range(200)), False), Message("", True), Pong(b""),
                 Close(1000, "bye")]


# -- RFC 6455 section 5.7's examples ----------------------------------------------

def test_rfc_single_frame_text_unmasked_and_masked():
    """RFC 6455 5.7: "Hello" unmasked (client side) and masked (server side) parse as text."""
    unmasked = bytes([0x81, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    masked = bytes([0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert parse(unmasked, masked=False) == [Message("Hello", True)]
    assert parse(masked, masked=True) == [Message("Hello", True)]
    assert frame(OP_TEXT, b"Hello", masked=True) == masked


def test_rfc_fragmented_text_and_control_frames():
    """RFC 6455 5.7: a text message in two fragments, an unmasked Ping, a masked Pong."""
    fragments = bytes([0x01, 0x03, 0x48, 0x65, 0x6C, 0x80, 0x02, 0x6C, 0x6F])
    assert parse(fragments, masked=False) == [Message("Hello", True)]
    ping = bytes([0x89, 0x05, 0x48, 0x65, 0x6C, 0x6C, 0x6F])
    assert parse(ping, masked=False) == [Ping(b"Hello")]
    pong = bytes([0x8A, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58])
    assert parse(pong) == [Pong(b"Hello")]


def test_rfc_16_and_64_bit_lengths():
    """RFC 6455 5.7: 256 bytes take a 16-bit length, 64 KiB a 64-bit one (unmasked)."""
    assert encode_frame(OP_BINARY, bytes(256), mask=False)[:4] == bytes([0x82, 0x7E, 0x01, 0x00])
    assert encode_frame(OP_BINARY, bytes(65536), mask=False)[:10] == bytes(
        [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0])
    assert parse(encode_frame(OP_BINARY, bytes(65536), mask=False), masked=False) == [
        Message(bytes(65536), False)]


def test_encoders_write_the_rfc_bytes():
    """Unmasked encoders give RFC 6455 5.7's bytes; a masked one sets MASK and round-trips."""
    assert encode_message("Hello", mask=False) == bytes([0x81, 0x05]) + b"Hello"
    assert encode_ping(b"Hello", mask=False) == bytes([0x89, 0x05]) + b"Hello"
    assert encode_pong(b"Hello", mask=False) == bytes([0x8A, 0x05]) + b"Hello"
    masked = encode_message("Hello", mask=True)
    assert masked[:2] == bytes([0x81, 0x85]) and masked[6:] != b"Hello"
    assert parse(masked) == [Message("Hello", True)]
    assert len({encode_message(b"x" * 40, mask=True) for _ in range(8)}) > 1   # fresh keys


# -- the same events however the bytes are cut ----------------------------------

@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_every_split_point_gives_the_same_events(masked):
    """A conversation parses the same whole, split at every offset, and byte by byte."""
    data = stream(masked)
    assert parse(data, masked) == STREAM_EVENTS
    for split in range(len(data) + 1):
        events, parser = feed_pieces([data[:split], data[split:]], masked)
        assert events == STREAM_EVENTS, split
        assert parser.buffered == 0
    events, _ = feed_pieces([data[i:i + 1] for i in range(len(data))], masked)
    assert events == STREAM_EVENTS


@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_random_chunks_give_the_same_events(masked):
    """Random frame streams parse to what was built, however they are cut (seeded)."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    for _ in range(200):
        data, expected = b"", []
        for _ in range(rng.randrange(1, 5)):
            size = rng.choice([0, 1, 5, 125, 126, 300, 70000])
            payload = rng.getrandbits(8 * size + 1).to_bytes(size + 1, "little")[:size]
            key = bytes(rng.randrange(256) for _ in range(4))
            data += frame(OP_BINARY, payload, masked, key=key)
            expected.append(Message(payload, False))
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data), rng.randrange(0, 8))))
        pieces = [data[a:b] for a, b in zip([0] + cuts, cuts + [len(data)])]
        assert feed_pieces(pieces, masked)[0] == expected, "seed %d" % seed


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, MIB])
@pytest.mark.parametrize("masked", [True, False], ids=["masked", "unmasked"])
def test_sizes_round_trip_both_ways(size, masked):
    """Payloads at each length-form boundary, to 1 MiB, round-trip from the encoder, whole
    and in 4 KiB pieces (so the mask resumes mid-key)."""
    payload = os.urandom(size)
    data = encode_message(payload, mask=masked)
    assert len(data) == size + (2 if size < 126 else 4 if size < 65536 else 10) + 4 * masked
    assert parse(data, masked) == [Message(payload, False)]
    pieces = [data[i:i + 4093] for i in range(0, len(data), 4093)]
    assert feed_pieces(pieces, masked)[0] == [Message(payload, False)]


def test_apply_mask_matches_the_byte_by_byte_reference():
    """The fast XOR (big ints below 8 KiB, translate above) equals a byte loop at every size."""
    for size in (0, 1, 3, 4, 5, 63, 64, 8191, 8192, 8193, 70001):
        data = os.urandom(size)
        reference = bytes(byte ^ KEY[i % 4] for i, byte in enumerate(data))
        assert apply_mask(data, KEY) == reference, size
        assert apply_mask(bytearray(data), KEY) == reference, size


def test_buffered_is_nonzero_exactly_while_something_is_unfinished():
    """A head alone, a control payload owed, an empty first fragment: all count as pending;
    a finished message leaves 0."""
    parser = FrameParser(expect_masked=True)
    assert parser.feed(frame(OP_PING, b"abc")[:3]) == [] and parser.buffered == 3
    parser.feed(frame(OP_PING, b"abc")[3:6])
    assert parser.buffered == 3                          # the head is in; 3 bytes owed
    parser.feed(frame(OP_PING, b"abc")[6:] + frame(OP_BINARY, b"", fin=False))
    assert parser.buffered == 1                          # an empty fragment began a message
    assert parser.feed(frame(OP_CONTINUATION, b"")) == [Message(b"", False)]
    assert parser.buffered == 0


# -- fragments and interleaved control frames --------------------------------------

def test_a_ping_between_fragments_is_delivered_before_the_message_ends():
    """A ping inside a fragmented message comes out at once; the message when it ends."""
    parser = FrameParser(expect_masked=True)
    assert parser.feed(frame(OP_TEXT, b"first ", fin=False) + frame(OP_PING, b"p")) == [
        Ping(b"p")]
    assert parser.buffered == 6
    assert parser.feed(frame(OP_CONTINUATION, b"second")) == [Message("first second", True)]
    assert parser.buffered == 0


def test_utf8_split_across_fragments_is_accepted():
    """A character cut across fragments (and across feeds inside one) decodes whole."""
    euro = "€".encode()                          # e2 82 ac
    data = (frame(OP_TEXT, b"a" + euro[:1], fin=False)
            + frame(OP_CONTINUATION, euro[1:2], fin=False)
            + frame(OP_CONTINUATION, euro[2:] + b"b"))
    assert parse(data) == [Message("a€b", True)]
    events, _ = feed_pieces([data[i:i + 1] for i in range(len(data))])
    assert events == [Message("a€b", True)]


def test_bad_utf8_is_refused_when_it_arrives():
    """Garbage text is refused in the fragment, even the feed, that brings it, not at the end."""
    parser = FrameParser(expect_masked=True)
    with pytest.raises(WebSocketError) as info:
        parser.feed(frame(OP_TEXT, b"ok \xff", fin=False))
    assert info.value.code == 1007
    whole = frame(OP_TEXT, b"\xc3\x28" + b"x" * 1000)
    parser = FrameParser(expect_masked=True)
    with pytest.raises(WebSocketError) as info:
        parser.feed(whole[:20])                  # the frame is far from over
    assert info.value.code == 1007


def test_a_character_cut_off_by_the_message_end_is_refused():
    """A text message ending in half a character is invalid UTF-8 (1007)."""
    data = frame(OP_TEXT, b"a\xe2\x82", fin=False) + frame(OP_CONTINUATION, b"")
    assert refusal(data) == 1007
    assert refusal(frame(OP_TEXT, b"\xe2\x82")) == 1007


# -- refusals, each with its close code ---------------------------------------------

def long_length_frame(length):
    return struct.pack("!BBQ", 0x82, 0x80 | 127, length) + KEY


@pytest.mark.parametrize("name, data, masked, code", [
    ("unmasked to a server", frame(OP_TEXT, b"x", masked=False), True, 1002),
    ("masked to a client", frame(OP_TEXT, b"x", masked=True), False, 1002),
    ("RSV1 without deflate", frame(OP_TEXT, b"x", rsv=4), True, 1002),
    ("RSV2", frame(OP_TEXT, b"x", rsv=2), True, 1002),
    ("RSV3", frame(OP_BINARY, b"x", rsv=1), True, 1002),
    ("RSV on a ping", frame(OP_PING, b"", rsv=4), True, 1002),
    ("opcode 3", frame(3, b""), True, 1002),
    ("opcode 7", frame(7, b""), True, 1002),
    ("opcode 11", frame(11, b""), True, 1002),
    ("opcode 15", frame(15, b""), True, 1002),
    ("ping of 126 bytes", frame(OP_PING, bytes(126)), True, 1002),
    ("fragmented ping", frame(OP_PING, b"", fin=False), True, 1002),
    ("fragmented close", frame(OP_CLOSE, b"", fin=False), True, 1002),
    ("continuation first", frame(OP_CONTINUATION, b"x"), True, 1002),
    ("text inside text", frame(OP_TEXT, b"a", fin=False) + frame(OP_TEXT, b"b"), True, 1002),
    ("binary inside text", frame(OP_TEXT, b"a", fin=False) + frame(OP_BINARY, b""), True, 1002),
    ("1-byte close", frame(OP_CLOSE, b"\x03"), True, 1002),
    ("close reason not UTF-8", frame(OP_CLOSE, b"\x03\xe8\xff"), True, 1007),
    ("text not UTF-8", frame(OP_TEXT, b"\xed\xa0\x80"), True, 1007),
    ("64-bit length, top bit", long_length_frame(1 << 63), True, 1002),
    ("16-bit length for 125", struct.pack("!BBH", 0x82, 0xFE, 125) + KEY + bytes(125),
     True, 1002),
    ("64-bit length for 65535", long_length_frame(65535), True, 1002),
    ("a frame after close", frame(OP_CLOSE, b"") + frame(OP_PING, b""), True, 1002),
])
def test_violations_are_refused_with_their_close_code(name, data, masked, code):
    """Each broken rule of RFC 6455 is refused with the close code the RFC names."""
    assert refusal(data, masked) == code


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2999, 5000,
                                  65535])
def test_close_codes_a_peer_may_not_send_are_refused(code):
    """Reserved, local-only and unassigned close codes are a protocol error (1002)."""
    assert not is_valid_close_code(code)
    assert refusal(frame(OP_CLOSE, struct.pack("!H", code))) == 1002


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                                  1013, 1014, 3000, 3999, 4000, 4999])
def test_close_codes_a_peer_may_send_are_delivered(code):
    """Defined, IANA-registered and application close codes arrive with their reason."""
    assert parse(frame(OP_CLOSE, struct.pack("!H", code) + "ça".encode())) == [
        Close(code, "ça")]


def test_a_close_without_a_body_has_no_code():
    """An empty Close frame gives Close(None, "") (the peer's status is 1005, local only)."""
    assert parse(frame(OP_CLOSE, b"")) == [Close(None, "")]


def test_head_errors_are_refused_before_the_payload_arrives():
    """A bad head is refused from its first bytes; the payload need not be sent."""
    parser = FrameParser(expect_masked=True)
    with pytest.raises(WebSocketError) as info:
        parser.feed(frame(OP_TEXT, b"x", rsv=2)[:1])
    assert info.value.code == 1002
    parser = FrameParser(expect_masked=True)
    with pytest.raises(WebSocketError) as info:
        parser.feed(long_length_frame(1 << 63)[:10])
    assert info.value.code == 1002


def test_an_error_closes_the_parser_and_keeps_the_events_before_it():
    """Events completed before the bad bytes ride on the error; every later feed raises."""
    parser = FrameParser(expect_masked=True)
    with pytest.raises(WebSocketError) as info:
        parser.feed(frame(OP_PING, b"1") + frame(OP_TEXT, b"a", masked=False))
    assert info.value.events == [Ping(b"1")] and isinstance(info.value, FramingError)
    assert info.value.reason == "framing" and parser.closed
    with pytest.raises(WebSocketError) as info:
        parser.feed(frame(OP_PING, b""))
    assert info.value.code == 1002


# -- the message limit ----------------------------------------------------------------

@pytest.mark.parametrize("size, refused", [(99, False), (100, False), (101, True)])
def test_the_limit_at_minus_one_the_limit_and_plus_one(size, refused):
    """A message of exactly max_message_bytes passes, one and fragments included, one more
    byte is 1009."""
    payload = b"x" * size
    for data in (frame(OP_BINARY, payload),
                 frame(OP_BINARY, payload[:50], fin=False)
                 + frame(OP_CONTINUATION, payload[50:])):
        if refused:
            assert refusal(data, max_message_bytes=100) == 1009
        else:
            assert parse(data, max_message_bytes=100) == [Message(payload, False)]


def test_an_oversized_message_is_refused_on_its_declared_length():
    """The 1009 comes from the head alone: no payload byte is sent or held first."""
    parser = FrameParser(expect_masked=True, max_message_bytes=MIB)
    with pytest.raises(WebSocketError) as info:
        parser.feed(long_length_frame(MIB + 1))
    assert info.value.code == 1009
    parser = FrameParser(expect_masked=True, max_message_bytes=100)
    parser.feed(frame(OP_BINARY, bytes(60), fin=False))
    with pytest.raises(WebSocketError) as info:
        parser.feed(frame(OP_CONTINUATION, bytes(41))[:6])
    assert info.value.code == 1009


def test_control_frames_do_not_count_against_the_limit():
    """Pings between fragments are not part of the message's size."""
    data = (frame(OP_BINARY, bytes(80), fin=False) + frame(OP_PING, bytes(100))
            + frame(OP_CONTINUATION, bytes(20)))
    assert parse(data, max_message_bytes=100) == [Ping(bytes(100)), Message(bytes(100), False)]


def test_limit_must_be_a_positive_int():
    """A limit of 0, a negative one or a float is refused when the parser is made."""
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError):
            FrameParser(expect_masked=True, max_message_bytes=bad)


# -- fuzz ---------------------------------------------------------------------------------

def test_fuzz_garbage_raises_only_websocket_error_however_cut():
    """Random and mutated bytes raise only WebSocketError, with the same verdict however cut."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)

    def outcome(pieces, masked):
        try:
            return ("ok", feed_pieces(pieces, masked, max_message_bytes=300)[0])
        except WebSocketError as exc:
            return ("refused", exc.code)

    for _ in range(1500):
        masked = rng.random() < 0.5
        if rng.random() < 0.3:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60)))
        else:
            data = bytearray(stream(masked))
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        try:
            whole = outcome([data], masked)
            for size in (5, 1):
                cut = outcome([data[i:i + size] for i in range(0, len(data), size)], masked)
                assert cut == whole, "seed %d: %r cut by %d" % (seed, data, size)
        except AssertionError:
            raise
        except Exception as exc:      # the failure message must carry the seed
            pytest.fail("seed %d: %r raised %r" % (seed, data, exc))


# -- encoding -----------------------------------------------------------------------------

def test_encode_close_writes_code_and_reason_and_refuses_bad_ones():
    """encode_close writes code + UTF-8 reason; None an empty body; bad codes and long
    reasons are ValueError."""
    assert encode_close(mask=False) == bytes([0x88, 0x02, 0x03, 0xE8])
    assert encode_close(CloseCode.GOING_AWAY, "bye", mask=False) == b"\x88\x05\x03\xe9bye"
    assert encode_close(None, mask=False) == b"\x88\x00"
    assert parse(encode_close(4000, "é" * 61, mask=True)) == [Close(4000, "é" * 61)]
    for code, reason in ((1005, ""), (1006, ""), (999, ""), (1000, "x" * 124), (None, "x")):
        with pytest.raises(ValueError):
            encode_close(code, reason, mask=False)


def test_encode_frame_writes_broken_frames_but_the_helpers_keep_the_rules():
    """encode_frame writes any 4-bit opcode (so tests can break rules); ping and pong refuse
    more than 125 bytes; an opcode past 4 bits is ValueError."""
    assert refusal(encode_frame(3, b"x", mask=True)) == 1002
    assert refusal(encode_frame(OP_PING, bytes(126), mask=True)) == 1002
    for write in (lambda: encode_frame(16, b"", mask=False),
                  lambda: encode_frame(-1, b"", mask=False),
                  lambda: encode_ping(bytes(126), mask=False),
                  lambda: encode_pong(bytes(126), mask=True)):
        with pytest.raises(ValueError):
            write()
    assert encode_ping(bytes(125), mask=True)[1] == 0x80 | 125


def test_fragments_written_by_encode_frame_parse_as_one_message():
    """encode_frame with fin=False and continuations builds a message the parser joins."""
    data = (encode_frame(OP_TEXT, "ab".encode(), mask=True, fin=False)
            + encode_frame(OP_CONTINUATION, bytearray(b"c"), mask=True, fin=False)
            + encode_frame(OP_CONTINUATION, memoryview(b"d"), mask=True))
    assert parse(data) == [Message("abcd", True)]
