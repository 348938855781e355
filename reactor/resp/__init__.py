"""RESP, the Redis protocol, built the way framing is: codec, protocol, client.

===================  =====  ==================================================
module               layer  what it owns
===================  =====  ==================================================
``codec.py``         L0     bytes <-> commands and reply values (sans-I/O)
``protocol.py``      L1     a server connection: parse, dispatch, one write
``client.py``        L5     ``connect_resp``: pipelined commands, pub/sub
===================  =====  ==================================================

The codec's names are importable from here (``reactor.resp.RespParser``);
the protocol and the client from their modules
(``from reactor.resp.client import connect_resp``), so that importing the
codec never pulls in the loop. ``python -m reactor kv`` (``apps/kv.py``)
is the server built on them.
"""

from .codec import (NIL_ARRAY, OK, PONG, ReplyError, RespParser, RespProtocolError,
                    RespReplyParser, Status, encode_command, encode_replies, encode_reply)
