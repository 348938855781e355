"""WebSocket (RFC 6455) with permessage-deflate (RFC 7692), sans-I/O: bytes in, events out.

==================  =====  =====================================================
module              layer  what it owns
==================  =====  =====================================================
``frames.py``       L0     frames <-> messages: masking, fragments, close codes
``deflate.py``      L0     permessage-deflate: zlib per message, its negotiation
``handshake.py``    L0     the opening handshake: the key, the 101, subprotocols
==================  =====  =====================================================

Nothing here touches a socket (wsproto's design). A server's connection, in
the order it uses them::

    handshake = check_client_request(head.method, head.version, head.headers)
    extensions, deflate = negotiate_server(handshake.extensions)
    headers = server_response_headers(handshake, None, extensions)     # send the 101
    parser = FrameParser(expect_masked=True, deflate=deflate)
    for event in parser.feed(data):          # Message, Ping, Pong, Close
        ...
    transport.write(encode_message("hi", mask=False, deflate=deflate))

A ``WebSocketError`` carries the close code to send before closing
(``encode_close(exc.code, mask=...)``); a ``HandshakeError`` the HTTP status.
"""

from .deflate import PerMessageDeflate, accept_client, client_offer, negotiate_server
from .frames import (DEFAULT_MAX_MESSAGE_BYTES, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING,
                     OP_PONG, OP_TEXT, Close, CloseCode, FrameParser, Message, Ping, Pong,
                     WebSocketError, apply_mask, encode_close, encode_frame, encode_message,
                     encode_ping, encode_pong, is_valid_close_code)
from .handshake import (ClientHandshake, HandshakeError, accept_key, check_client_request,
                        check_server_response, choose_subprotocol, client_request_headers,
                        parse_extensions, server_response_headers)

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES", "OP_BINARY", "OP_CLOSE", "OP_CONTINUATION", "OP_PING",
    "OP_PONG", "OP_TEXT", "Close", "CloseCode", "FrameParser", "Message", "Ping", "Pong",
    "WebSocketError", "apply_mask", "encode_close", "encode_frame", "encode_message",
    "encode_ping", "encode_pong", "is_valid_close_code",
    "PerMessageDeflate", "accept_client", "client_offer", "negotiate_server",
    "ClientHandshake", "HandshakeError", "accept_key", "check_client_request",
    "check_server_response", "choose_subprotocol", "client_request_headers",
    "parse_extensions", "server_response_headers",
]
