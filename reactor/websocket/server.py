"""The server's half of the upgrade: an HTTP GET on a WebSocket route becomes a WebSocket.

A route added with ``Router.websocket(pattern)`` holds the application's
``WebSocketProtocol`` subclass (made with no arguments; the request is then
its ``request``), or a function that makes one from the request. The HTTP
connection (``http/server.py``) calls ``upgrade`` when such a request has
arrived whole::

    check the handshake (handshake.py)      -> 400, or 426 with Sec-WebSocket-Version
    negotiate permessage-deflate (deflate.py) and a subprotocol
    factory(request) -> the protocol        -> None refuses with 403
    write "101 Switching Protocols"         the Accept key, the agreed extras
    connection.hand_over(protocol)          no more HTTP on this connection

A refused handshake is an HTTP answer with its status and a close; the
connection never becomes a WebSocket. A plain GET on a WebSocket route (no
Upgrade field) gets 426 Upgrade Required, as RFC 6455 4.2.2 suggests.
"""

from typing import Any

from ..http.messages import Response
from .deflate import negotiate_server
from .handshake import (HandshakeError, check_client_request, choose_subprotocol,
                        server_response_headers)
from .protocol import ConnectionFrameParser, WebSocketProtocol


def upgrade(connection: Any, request: Any, route: Any) -> None:
    """Answer ``request`` on WebSocket ``route`` with 101 and hand ``connection`` over, or refuse."""
    options = route.options
    try:
        handshake = check_client_request(request.method, request.version, request.headers)
    except HandshakeError as exc:
        status = 426 if "upgrade" not in request.headers else exc.status
        fields = list(exc.headers) or ([("Upgrade", "websocket")] if status == 426 else [])
        connection.refuse(request, Response(status, fields + [("Connection", "close")],
                                            "%d: %s\n" % (status, exc)))
        return
    extensions, deflate = (negotiate_server(handshake.extensions)
                           if options.get("compression", True) else (None, None))
    subprotocol = choose_subprotocol(handshake.subprotocols, options.get("subprotocols", ()))
    factory = route.handler
    is_class = isinstance(factory, type) and issubclass(factory, WebSocketProtocol)
    protocol = factory() if is_class else factory(request)
    if protocol is None:
        connection.refuse(request, Response(403, [("Connection", "close")], "403 Forbidden\n"))
        return
    protocol.request, protocol.subprotocol, protocol.deflate = request, subprotocol, deflate
    protocol.framer = ConnectionFrameParser(
        True, options.get("max_message_bytes") or protocol.max_message_bytes, deflate)
    fields = server_response_headers(handshake, subprotocol, extensions)
    connection.switch(protocol, b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
        b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in fields) + b"\r\n")
