"""permessage-deflate (RFC 7692): each data message compressed as raw DEFLATE, with zlib.

A sender compresses a message, flushes with ``Z_SYNC_FLUSH`` and drops the
flush's last four bytes, ``00 00 ff ff``; it sets RSV1 on the message's first
frame. A receiver appends those four bytes and inflates. "Hello" is
``f2 48 cd c9 c9 07 00``; sent again over the same LZ77 window it is
``f2 00 11 00 00``, since the window remembers the first one (section 7.2.3).

Four parameters, agreed in the handshake, restrict each direction:

==============================  ==============================================
``server_no_context_takeover``  the server starts each message with a new window
``client_no_context_takeover``  the client does
``server_max_window_bits=N``    the server's window is at most 2**N bytes (8-15)
``client_max_window_bits[=N]``  the client's; offered bare: "tell me N"
==============================  ==============================================

``PerMessageDeflate`` holds one compressor (our direction) and one
decompressor (the peer's), each raw DEFLATE (``wbits=-N``) and renewed per
message when that direction has no context takeover. ``inflate`` stops at
``max_bytes + 1`` bytes of output (``decompressobj.decompress``'s
``max_length``), so a bomb (100 MB of zeros in 100 KB) is refused with
``WebSocketError`` 1009 after inflating 1 MiB, not 100 MB (4 ms, 2 MB at
peak); bytes that do not inflate are 1007.

Negotiation: ``negotiate_server`` accepts the first acceptable offer and
declines, without raising, offers it cannot honour or parse (unknown,
repeated or out-of-range parameters), as RFC 7692 section 5 asks; the
connection then runs uncompressed. ``client_offer`` and ``accept_client`` are
the client's half; a bad answer there raises ``HandshakeError``, since the
client must fail the connection (RFC 7692 5, RFC 6455 4.1).

Discussion: a window of 256 bytes. zlib's raw deflate refuses ``wbits=-8``
(since 1.2.9). When we must compress within 2**8 bytes we use a 2**9 window
with ``Z_HUFFMAN_ONLY``: no back-references at all, so every distance fits
any window, at the cost of a worse ratio. Inflating with ``wbits=-8`` works.
"""

import re
import zlib
from typing import Any, Dict, Optional, Tuple

from .frames import WebSocketError
from .handshake import HandshakeError, parse_extensions

NAME = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"          #: what a sync flush ends with; stripped on the wire

_BITS = re.compile(r"(?:[89]|1[0-5])\Z")     # 8..15, no leading zero or sign
_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_WINDOWS = ("server_max_window_bits", "client_max_window_bits")


class PerMessageDeflate:
    """One connection's agreed parameters, compressor and decompressor.

    ``is_server`` picks the direction: a server compresses with the
    ``server_*`` parameters and inflates with the ``client_*`` ones.
    """

    __slots__ = ("is_server", "server_no_context_takeover", "client_no_context_takeover",
                 "server_max_window_bits", "client_max_window_bits", "_compress_bits",
                 "_compress_reset", "_inflate_bits", "_inflate_reset", "_compressor",
                 "_decompressor", "_inflating")

    def __init__(self, is_server: bool, *, server_no_context_takeover: bool = False,
                 client_no_context_takeover: bool = False, server_max_window_bits: int = 15,
                 client_max_window_bits: int = 15) -> None:
        for bits in (server_max_window_bits, client_max_window_bits):
            if not isinstance(bits, int) or not 8 <= bits <= 15:
                raise ValueError("window bits must be 8 to 15, got %r" % (bits,))
        self.is_server = is_server
        self.server_no_context_takeover = server_no_context_takeover
        self.client_no_context_takeover = client_no_context_takeover
        self.server_max_window_bits = server_max_window_bits
        self.client_max_window_bits = client_max_window_bits
        ours, theirs = ("server", "client") if is_server else ("client", "server")
        self._compress_bits = getattr(self, ours + "_max_window_bits")
        self._compress_reset = getattr(self, ours + "_no_context_takeover")
        self._inflate_bits = getattr(self, theirs + "_max_window_bits")
        self._inflate_reset = getattr(self, theirs + "_no_context_takeover")
        self._compressor = self._new_compressor()
        self._decompressor = zlib.decompressobj(-self._inflate_bits)
        self._inflating = False         # a piece of the current message went in

    def __repr__(self) -> str:
        return "PerMessageDeflate(%s, %s)" % (
            "server" if self.is_server else "client",
            response_value(self.server_no_context_takeover, self.client_no_context_takeover,
                           self.server_max_window_bits, self.client_max_window_bits))

    def compress(self, message: Any) -> bytes:
        """Return one whole message (bytes-like) compressed, without the ``00 00 ff ff`` tail."""
        compressor = self._compressor
        data = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if self._compress_reset:
            self._compressor = self._new_compressor()
        return data[:-4] if data.endswith(TAIL) else data

    def decompress(self, payload: Any, max_bytes: int) -> bytes:
        """Return one whole message's payload inflated; raise ``WebSocketError`` 1009 past
        ``max_bytes`` (exactly ``max_bytes`` passes), 1007 for bad DEFLATE data."""
        data = self.inflate(payload, max_bytes)
        return data + self.finish_inflate(max_bytes - len(data))

    def inflate(self, piece: Any, max_bytes: int) -> bytes:
        """Inflate a piece of a message (as it arrives); at most ``max_bytes`` out, or 1009."""
        # Hot path: once per compressed frame piece; max_length bounds what a bomb costs.
        self._inflating = self._inflating or bool(piece)
        try:
            data = self._decompressor.decompress(piece, max_bytes + 1)
        except zlib.error as exc:
            raise WebSocketError(1007, "a compressed message that does not inflate: %s" % exc)
        if len(data) > max_bytes:
            raise WebSocketError(1009, "a message that inflates past the limit")
        return data

    def finish_inflate(self, max_bytes: int) -> bytes:
        """End a message: inflate the stripped tail; renew the window if it is not kept.

        An empty payload is an empty message: the tail alone, at a block
        boundary, would open a stored block of 65,280 bytes and corrupt the next one.
        """
        if not self._inflating:
            return b""
        data = self.inflate(TAIL, max_bytes)
        self._inflating = False
        if self._inflate_reset or self._decompressor.eof:   # BFINAL ends the stream itself
            self._decompressor = zlib.decompressobj(-self._inflate_bits)
        return data

    def _new_compressor(self) -> Any:
        """Return a raw DEFLATE compressor within our window (see the 256-byte Discussion)."""
        if self._compress_bits == 8:
            return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -9, 8,
                                    zlib.Z_HUFFMAN_ONLY)
        return zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -self._compress_bits)


def negotiate_server(offer_header_value: Optional[str], *,
                     server_no_context_takeover: bool = False,
                     client_no_context_takeover: bool = False,
                     server_max_window_bits: int = 15, client_max_window_bits: int = 15
                     ) -> Tuple[Optional[str], Optional[PerMessageDeflate]]:
    """Accept the first acceptable permessage-deflate offer (server side).

    Return (the ``Sec-WebSocket-Extensions`` response value, the
    ``PerMessageDeflate``), or (None, None) when nothing was offered or every
    offer was declined. The keyword arguments are this server's wishes;
    each is asked for only where RFC 7692 lets a server ask.
    """
    try:
        offers = parse_extensions(offer_header_value or "")
    except ValueError:
        return None, None
    for name, params in offers:
        offer = _params(params) if name == NAME else None
        if offer is None:
            continue
        server_bits = min(server_max_window_bits, int(offer.get("server_max_window_bits") or 15))
        client_bits = 15
        if "client_max_window_bits" in offer:       # only then may the server name one
            client_bits = min(client_max_window_bits,
                              int(offer["client_max_window_bits"] or 15))
        server_flag = server_no_context_takeover or "server_no_context_takeover" in offer
        client_flag = client_no_context_takeover or "client_no_context_takeover" in offer
        header = response_value(server_flag, client_flag,
                                server_bits if server_bits < 15 or
                                "server_max_window_bits" in offer else None,
                                client_bits if client_bits < 15 else None)
        return header, PerMessageDeflate(True, server_no_context_takeover=server_flag,
                                         client_no_context_takeover=client_flag,
                                         server_max_window_bits=server_bits,
                                         client_max_window_bits=client_bits)
    return None, None


def client_offer(*, server_no_context_takeover: bool = False,
                 client_no_context_takeover: bool = False,
                 server_max_window_bits: Optional[int] = None,
                 client_max_window_bits: Any = True) -> str:
    """Return a ``Sec-WebSocket-Extensions`` offer; by default Chromium's.

    ``client_max_window_bits`` True offers the bare parameter (any N the
    server names), an int offers that N, False leaves it out.
    """
    parts = [NAME]
    parts += [flag for flag, on in zip(_FLAGS, (server_no_context_takeover,
                                                client_no_context_takeover)) if on]
    if server_max_window_bits is not None:
        parts.append("server_max_window_bits=%d" % server_max_window_bits)
    if client_max_window_bits is True:
        parts.append("client_max_window_bits")
    elif client_max_window_bits:
        parts.append("client_max_window_bits=%d" % client_max_window_bits)
    return "; ".join(parts)


def accept_client(response_header_value: Optional[str],
                  offer: Optional[str] = None) -> Optional[PerMessageDeflate]:
    """Check the server's answer to ``offer`` (default ``client_offer()``); return the
    client's ``PerMessageDeflate``, or None when the server declined (no header).

    Raises ``HandshakeError`` (status 101) for another extension, a repeated
    answer, an unknown or repeated parameter, a bad value, a
    ``server_*`` parameter we offered and the answer dropped, a
    ``server_max_window_bits`` above ours, or a ``client_max_window_bits``
    we did not offer, without a value, or above ours (RFC 7692 7.1).
    """
    if not response_header_value:
        return None
    try:
        answers = parse_extensions(response_header_value)
        ours = _params(parse_extensions(offer or client_offer())[0][1])
    except (ValueError, IndexError) as exc:
        raise HandshakeError(101, "bad Sec-WebSocket-Extensions: %s" % exc)
    theirs = _params(answers[0][1]) if len(answers) == 1 and answers[0][0] == NAME else None
    if theirs is None or ours is None:
        raise HandshakeError(101, "the server answered %r to an offer of %r"
                             % (response_header_value, offer or client_offer()))
    for name in ("server_no_context_takeover", "server_max_window_bits"):
        if name in ours and name not in theirs:
            raise HandshakeError(101, "the server dropped %s from its answer" % name)
    server_bits = int(theirs.get("server_max_window_bits") or 15)
    if server_bits > int(ours.get("server_max_window_bits") or 15):
        raise HandshakeError(101, "server_max_window_bits=%d exceeds our offer" % server_bits)
    client_bits = 15
    if "client_max_window_bits" in theirs:
        if "client_max_window_bits" not in ours or not theirs["client_max_window_bits"]:
            raise HandshakeError(101, "client_max_window_bits in the answer needs our offer"
                                 " and a value")
        client_bits = int(theirs["client_max_window_bits"])
        if client_bits > int(ours["client_max_window_bits"] or 15):
            raise HandshakeError(101, "client_max_window_bits=%d exceeds our offer"
                                 % client_bits)
    return PerMessageDeflate(False, server_max_window_bits=server_bits,
                             client_max_window_bits=client_bits,
                             server_no_context_takeover="server_no_context_takeover" in theirs,
                             client_no_context_takeover="client_no_context_takeover" in theirs)


def response_value(server_no_context_takeover: bool, client_no_context_takeover: bool,
                   server_max_window_bits: Optional[int],
                   client_max_window_bits: Optional[int]) -> str:
    """Return the ``permessage-deflate; ...`` element naming these parameters (None: omit)."""
    parts = [NAME]
    parts += [flag for flag, on in zip(_FLAGS, (server_no_context_takeover,
                                                client_no_context_takeover)) if on]
    parts += ["%s=%d" % (name, bits) for name, bits in zip(
        _WINDOWS, (server_max_window_bits, client_max_window_bits)) if bits is not None]
    return "; ".join(parts)


def _params(params: Any) -> Optional[Dict[str, Optional[str]]]:
    """Return one offer's or answer's parameters as a dict, or None if any is invalid.

    Invalid: an unknown name, a repeat, a flag with a value,
    ``server_max_window_bits`` without one, a window outside 8-15.
    """
    found: Dict[str, Optional[str]] = {}
    for name, value in params:
        if name in found or name not in _FLAGS + _WINDOWS:
            return None
        if name in _FLAGS and value is not None:
            return None
        if name in _WINDOWS:
            if value is None and name == "server_max_window_bits":
                return None
            if value is not None and not _BITS.match(value):
                return None
        found[name] = value
    return found
