"""permessage-deflate (reactor/websocket/deflate.py): RFC 7692's examples, round trips,
window bits, negotiation both ways, and bombs."""

import random
import time
import tracemalloc
import zlib

import pytest

from reactor.websocket.deflate import (PerMessageDeflate, accept_client, client_offer,
                                       negotiate_server)
from reactor.websocket.frames import (OP_CONTINUATION, OP_PING, OP_TEXT, FrameParser, Message,
                                      Ping, WebSocketError, encode_frame, encode_message)
from reactor.websocket.handshake import HandshakeError

HELLO = bytes([0xF2, 0x48, 0xCD, 0xC9, 0xC9, 0x07, 0x00])     # RFC 7692 7.2.3.1
CHROMIUM_OFFER = "permessage-deflate; client_max_window_bits"
MIB = 1024 * 1024


def pair(**parameters):
    """Return (server, client) PerMessageDeflate objects agreeing on ``parameters``."""
    return PerMessageDeflate(True, **parameters), PerMessageDeflate(False, **parameters)


def server_parser(deflate, **options):
    return FrameParser(expect_masked=True, deflate=deflate, **options)


def compressed_frame(payload, opcode=OP_TEXT, mask=True, fin=True):
    return encode_frame(opcode, payload, mask=mask, fin=fin, rsv1=opcode != OP_CONTINUATION)


# -- RFC 7692 section 7.2.3's examples -------------------------------------------------

def test_rfc_hello_compresses_to_the_rfc_bytes():
    """ "Hello" compresses to f2 48 cd c9 c9 07 00, the tail 00 00 ff ff stripped."""
    server, _ = pair()
    assert server.compress(b"Hello") == HELLO
    assert server.decompress(HELLO, 100) == b"Hello"


def test_rfc_single_and_fragmented_compressed_frames():
    """RFC 7692 7.2.3.1: one frame (c1 07 ...) and two fragments (41 03 ... / 80 04 ...)."""
    _, client = pair()
    parser = FrameParser(expect_masked=False, deflate=client)
    assert parser.feed(bytes([0xC1, 0x07]) + HELLO) == [Message("Hello", True)]
    fragments = bytes([0x41, 0x03, 0xF2, 0x48, 0xCD, 0x80, 0x04, 0xC9, 0xC9, 0x07, 0x00])
    assert parser.feed(fragments) == [Message("Hello", True)]


def test_rfc_shared_window_and_no_context_takeover():
    """RFC 7692 7.2.3.2: a second "Hello" over the kept window is f2 00 11 00 00; with
    server_no_context_takeover it is the first bytes again, and both parse."""
    server, client = pair()
    assert [server.compress(b"Hello") for _ in range(2)] == [HELLO, bytes.fromhex("f200110000")]
    parser = FrameParser(expect_masked=False, deflate=client)
    wire = compressed_frame(HELLO, mask=False) + compressed_frame(bytes.fromhex("f200110000"),
                                                                  mask=False)
    assert parser.feed(wire) == [Message("Hello", True)] * 2
    server, _ = pair(server_no_context_takeover=True)
    assert [server.compress(b"Hello") for _ in range(2)] == [HELLO, HELLO]


@pytest.mark.parametrize("payload", [
    "00 05 00 fa ff 48 65 6c 6c 6f 00",                       # 7.2.3.3: a stored block
    "f3 48 cd c9 c9 07 00 00",                                # 7.2.3.4: BFINAL set
    "f2 48 05 00 00 00 ff ff ca c9 c9 07 00",                 # 7.2.3.5: two blocks
])
def test_rfc_other_block_forms_inflate(payload):
    """RFC 7692 7.2.3.3-5: a stored block, a BFINAL block and two blocks all give "Hello",
    and the next message still inflates (a BFINAL stream is renewed)."""
    _, client = pair()
    parser = FrameParser(expect_masked=False, deflate=client)
    wire = compressed_frame(bytes.fromhex(payload), mask=False)
    assert parser.feed(wire + compressed_frame(HELLO, mask=False)) == [
        Message("Hello", True)] * 2


def test_an_empty_message_round_trips():
    """An empty message compresses to at most one byte and inflates to nothing."""
    server, client = pair()
    assert len(server.compress(b"")) <= 1
    parser = FrameParser(expect_masked=False, deflate=client)
    assert parser.feed(encode_message(b"", mask=False, deflate=server)) == [Message(b"", False)]


def test_an_empty_compressed_payload_is_an_empty_message():
    """A compressed frame with no payload at all gives an empty message, and the window
    stays usable for the next one."""
    _, client = pair()
    parser = FrameParser(expect_masked=False, deflate=client)
    wire = compressed_frame(b"", mask=False) + compressed_frame(HELLO, mask=False)
    assert parser.feed(wire) == [Message("", True), Message("Hello", True)]


# -- round trips ----------------------------------------------------------------------------

@pytest.mark.parametrize("parameters", [
    {}, {"server_no_context_takeover": True}, {"client_no_context_takeover": True},
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 8, "client_max_window_bits": 8},
    {"server_max_window_bits": 9, "client_max_window_bits": 12},
    {"server_max_window_bits": 15, "client_max_window_bits": 10},
], ids=lambda parameters: ",".join("%s=%s" % item for item in parameters.items()) or "defaults")
def test_messages_round_trip_both_ways(parameters):
    """Random messages cross both ways, whole and cut into random pieces (seeded)."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    server, client = pair(**parameters)
    to_server = FrameParser(expect_masked=True, deflate=server)
    to_client = FrameParser(expect_masked=False, deflate=client)
    words = [b"websocket", b"deflate", b"window", b"\x00\xff", b"reactor ", b"x" * 300]
    for _ in range(60):
        size = rng.choice([0, 1, 10, 1000, 20000])
        message = b"".join(rng.choice(words) for _ in range(size // 8))
        if rng.random() < 0.3:
            message += rng.getrandbits(8 * 500).to_bytes(500, "little")
        data = message.decode("latin-1") if rng.random() < 0.5 else message
        for sender, parser, mask in ((client, to_server, True), (server, to_client, False)):
            wire = encode_message(data, mask=mask, deflate=sender)
            cuts = sorted(rng.sample(range(len(wire) + 1), min(len(wire), 4)))
            events = []
            for start, stop in zip([0] + cuts, cuts + [len(wire)]):
                events += parser.feed(wire[start:stop])
            assert events == [Message(data, isinstance(data, str))], "seed %d" % seed


@pytest.mark.parametrize("bits", range(8, 16))
def test_the_compressor_keeps_within_its_window(bits):
    """Our compressor's output inflates with a decompressor of exactly 2**bits bytes of window,
    for data that repeats from far back (8 uses Huffman-only coding)."""
    block = random.Random(bits).getrandbits(8 * 3000).to_bytes(3000, "little")
    server = PerMessageDeflate(True, server_max_window_bits=bits)
    compressed = server.compress(block * 20)
    assert zlib.decompressobj(-bits).decompress(compressed + b"\x00\x00\xff\xff") == block * 20
    if bits == 15:
        assert len(compressed) < 4000                # the window saw the repeats


def test_no_context_takeover_lets_each_message_inflate_alone():
    """Without context takeover a message inflates with a fresh window; with it, not alone."""
    kept, _ = pair()
    fresh, _ = pair(server_no_context_takeover=True)
    for server, alone in ((fresh, True), (kept, False)):
        server.compress(b"a repeated sentence, long enough to be matched")
        second = server.compress(b"a repeated sentence, long enough to be matched")
        try:
            inflated = zlib.decompressobj(-15).decompress(second + b"\x00\x00\xff\xff")
        except zlib.error:
            inflated = None
        assert (inflated == b"a repeated sentence, long enough to be matched") is alone


# -- what a compressed message may not do ------------------------------------------------

@pytest.mark.parametrize("size, refused", [(999, False), (1000, False), (1001, True)])
def test_the_limit_counts_inflated_bytes(size, refused):
    """A compressed message inflating to exactly max_message_bytes passes; one byte more 1009."""
    server, client = pair()
    wire = encode_message(b"z" * size, mask=True, deflate=client)
    parser = server_parser(server, max_message_bytes=1000)
    if refused:
        with pytest.raises(WebSocketError) as info:
            parser.feed(wire)
        assert info.value.code == 1009
    else:
        assert parser.feed(wire) == [Message(b"z" * size, False)]


def bomb(zero_bytes):
    """Return ``zero_bytes`` of zeros compressed (raw DEFLATE, tail stripped), built in MiBs."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MIB)
    parts = [compressor.compress(chunk) for _ in range(zero_bytes // MIB)]
    return b"".join(parts) + compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]


def test_a_decompression_bomb_is_refused_quickly_without_inflating_it():
    """100 MB of zeros in ~100 KB is refused with 1009 at the 1 MiB limit: fast, and with
    far less than 100 MB allocated."""
    payload = bomb(100 * 1000 * 1000)
    assert len(payload) < 200 * 1024
    server, _ = pair()
    parser = server_parser(server, max_message_bytes=MIB)
    wire = compressed_frame(payload)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(WebSocketError) as info:
            parser.feed(wire)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert info.value.code == 1009
    assert elapsed < 1.0, elapsed
    assert peak < 8 * MIB, peak


def test_a_bomb_in_fragments_is_refused_with_1009():
    """The limit holds across fragments: inflated bytes add up from frame to frame."""
    payload = bomb(4 * MIB)
    server, _ = pair()
    parser = server_parser(server, max_message_bytes=MIB)
    third = len(payload) // 3
    wire = (compressed_frame(payload[:third], fin=False)
            + compressed_frame(payload[third:2 * third], OP_CONTINUATION, fin=False)
            + compressed_frame(payload[2 * third:], OP_CONTINUATION))
    with pytest.raises(WebSocketError) as info:
        parser.feed(wire)
    assert info.value.code == 1009


def test_bad_deflate_data_and_bad_text_are_1007():
    """Bytes that are not DEFLATE, or inflate to text that is not UTF-8, are 1007."""
    server, client = pair()
    for payload in (b"\xff\xff\xff\xff", client.compress(b"ok \xff\xfe")):
        parser = server_parser(PerMessageDeflate(True))
        with pytest.raises(WebSocketError) as info:
            parser.feed(compressed_frame(payload))
        assert info.value.code == 1007


def test_rsv1_is_allowed_only_on_a_first_frame_with_deflate():
    """With deflate on, RSV1 on a continuation or a ping is still 1002; without deflate, RSV1
    on a first frame is 1002 too."""
    server, _ = pair()
    on_continuation = compressed_frame(b"\x00", fin=False) + encode_frame(
        OP_CONTINUATION, b"", mask=True, rsv1=True)
    on_ping = bytes([0xC9, 0x80]) + b"1234"                 # FIN, RSV1, ping; masked, empty
    for deflate, wire in ((server, on_continuation), (server, on_ping),
                          (None, compressed_frame(HELLO))):
        with pytest.raises(WebSocketError) as info:
            server_parser(deflate).feed(wire)
        assert info.value.code == 1002


def test_a_ping_inside_a_compressed_message_is_not_compressed():
    """Control frames between compressed fragments pass through as they are."""
    server, client = pair()
    payload = client.compress(b"fragmented and compressed")
    wire = (compressed_frame(payload[:5], fin=False) + encode_frame(OP_PING, b"p", mask=True)
            + compressed_frame(payload[5:], OP_CONTINUATION))
    assert server_parser(server).feed(wire) == [Ping(b"p"),
                                                Message("fragmented and compressed", True)]


# -- negotiation ---------------------------------------------------------------------------

def test_chromium_offer_is_accepted_with_defaults():
    """Chromium's offer gets a bare "permessage-deflate" back and 15-bit windows."""
    header, deflate = negotiate_server(CHROMIUM_OFFER)
    assert header == "permessage-deflate"
    assert (deflate.server_max_window_bits, deflate.client_max_window_bits) == (15, 15)
    assert client_offer() == CHROMIUM_OFFER


@pytest.mark.parametrize("offer, wishes, response", [
    ("permessage-deflate", {}, "permessage-deflate"),
    ("permessage-deflate; server_no_context_takeover", {},
     "permessage-deflate; server_no_context_takeover"),
    ("permessage-deflate; client_no_context_takeover", {},
     "permessage-deflate; client_no_context_takeover"),
    ("permessage-deflate", {"client_no_context_takeover": True},
     "permessage-deflate; client_no_context_takeover"),
    ("permessage-deflate; server_max_window_bits=10", {},
     "permessage-deflate; server_max_window_bits=10"),
    ("permessage-deflate", {"server_max_window_bits": 12},
     "permessage-deflate; server_max_window_bits=12"),
    ("permessage-deflate; client_max_window_bits", {"client_max_window_bits": 9},
     "permessage-deflate; client_max_window_bits=9"),
    ("permessage-deflate; client_max_window_bits=11", {},
     "permessage-deflate; client_max_window_bits=11"),
    ("permessage-deflate", {"client_max_window_bits": 9}, "permessage-deflate"),
    ('permessage-deflate; server_max_window_bits="10"', {},
     "permessage-deflate; server_max_window_bits=10"),
    ("permessage-deflate; server_max_window_bits=16, permessage-deflate", {},
     "permessage-deflate"),
    ("x-webkit-deflate-frame, permessage-deflate; foo=1, PERMESSAGE-DEFLATE ; "
     "client_max_window_bits = 10", {}, "permessage-deflate; client_max_window_bits=10"),
])
def test_server_negotiation(offer, wishes, response):
    """The first acceptable offer wins; the server asks only for what RFC 7692 lets it."""
    header, deflate = negotiate_server(offer, **wishes)
    assert header == response
    assert deflate.is_server


@pytest.mark.parametrize("offer", [
    None, "", "x-webkit-deflate-frame", "permessage-deflate; unknown",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=08",
    "permessage-deflate; server_no_context_takeover=1", "permessage-deflate;;",
    'permessage-deflate; client_max_window_bits="1 0"', "permessage-deflate; =",
])
def test_offers_the_server_cannot_honour_are_declined(offer):
    """Unknown, repeated, valueless, out-of-range or malformed parameters decline the offer."""
    assert negotiate_server(offer) == (None, None)


def test_client_and_server_agree_end_to_end():
    """client_offer -> negotiate_server -> accept_client gives two ends that understand each
    other, with the agreed parameters on both."""
    offer = client_offer(client_no_context_takeover=True, server_max_window_bits=10)
    header, server = negotiate_server(offer, client_max_window_bits=9)
    client = accept_client(header, offer)
    assert header == ("permessage-deflate; client_no_context_takeover; "
                      "server_max_window_bits=10; client_max_window_bits=9")
    assert repr(client) == "PerMessageDeflate(client, %s)" % header
    for _ in range(3):
        assert server_parser(server).feed(
            encode_message("über", mask=True, deflate=client)) == [Message("über", True)]
        assert FrameParser(False, deflate=client).feed(
            encode_message(b"bytes", mask=False, deflate=server)) == [Message(b"bytes", False)]


@pytest.mark.parametrize("offer, answer, accepted", [
    (None, "permessage-deflate", True),
    (None, "permessage-deflate; client_max_window_bits=10", True),
    (None, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", True),
    (None, "permessage-deflate; server_max_window_bits=9", True),
    ("permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_max_window_bits=11", False),
    ("permessage-deflate", "permessage-deflate; client_max_window_bits=10", False),
    ("permessage-deflate; client_max_window_bits=10",
     "permessage-deflate; client_max_window_bits=12", False),
    (None, "permessage-deflate; client_max_window_bits", False),
    (None, "permessage-deflate; unknown", False),
    (None, "permessage-deflate, permessage-deflate", False),
    (None, "x-webkit-deflate-frame", False),
    (None, "permessage-deflate; server_max_window_bits=16", False),
    (None, "permessage-deflate;;", False),
    ("permessage-deflate; server_no_context_takeover", "permessage-deflate", False),
    ("permessage-deflate; server_max_window_bits=10", "permessage-deflate", False),
])
def test_client_checks_the_server_answer(offer, answer, accepted):
    """The client refuses parameters it did not offer, values above its own, and bad syntax."""
    if accepted:
        assert not accept_client(answer, offer).is_server
    else:
        with pytest.raises(HandshakeError):
            accept_client(answer, offer)


def test_no_answer_means_no_compression():
    """A response without the header (the server declined) gives None."""
    assert accept_client(None) is None and accept_client("") is None


def test_window_bits_out_of_range_are_refused():
    """PerMessageDeflate itself refuses window bits outside 8-15."""
    for bits in (7, 16, 15.0):
        with pytest.raises(ValueError):
            PerMessageDeflate(True, server_max_window_bits=bits)
