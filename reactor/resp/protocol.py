"""The RESP server protocol: the codec and a command router joined to a transport.

This is the thin layer between the sans-I/O codec (``codec.py``) and an
application's handlers (a :class:`~reactor.dispatch.CommandRouter`). It is a
:class:`~reactor.framed.FramedProtocol` whose frames are commands, so it
inherits the framing layer's protections: at most ``frames_per_pass``
commands a pass, the message-rate gate, the partial-frame deadline and the
input budget::

    data_received(bytes) -> parser.feed -> [argv, argv, ...]       (a pipeline)
      -> frames_received: execute(argv) for each -> [reply, reply, ...]
      -> one write(encode_replies(...))                            (one send)

Answering a pipeline with one write is what makes ``redis-benchmark -P 16``
fast: sixteen commands cost one ``send()``, not sixteen.

Malformed input (``RespProtocolError``) is answered as Redis answers it:
the commands complete before the bad bytes are executed and answered, then
``-ERR Protocol error: ...``, then the connection closes (with the reason
logged); other connections never notice.

A subclass supplies the router (class attribute ``router``) and may
override :meth:`RespServerProtocol.execute` to gate commands (auth, pub/sub
mode, memory), as ``reactor/apps/kv.py`` does.
"""

from typing import Any, List

from ..dispatch import CommandRouter
from ..framed import FramedProtocol
from .codec import (DEFAULT_MAX_ARGS, DEFAULT_MAX_BULK_BYTES, DEFAULT_MAX_INLINE_BYTES,
                    RespParser, RespProtocolError, encode_replies, encode_reply)


class Replies(list):
    """Several replies to one command, sent one after another (``SUBSCRIBE a b``: one per channel)."""


class RespRequestFramer(RespParser):
    """A :class:`RespParser` with the three methods the framing layer calls on a framer."""

    __slots__ = ("_limits",)

    def __init__(self, max_bulk_bytes: int = DEFAULT_MAX_BULK_BYTES,
                 max_args: int = DEFAULT_MAX_ARGS,
                 max_inline_bytes: int = DEFAULT_MAX_INLINE_BYTES) -> None:
        super().__init__(max_bulk_bytes=max_bulk_bytes, max_args=max_args,
                         max_inline_bytes=max_inline_bytes)
        self._limits = (max_bulk_bytes, max_args, max_inline_bytes)

    def clone(self) -> "RespRequestFramer":
        """Return a fresh parser with the same limits (one per connection)."""
        return RespRequestFramer(*self._limits)

    def encode(self, reply: Any) -> bytes:
        """Return one reply on the wire."""
        return encode_reply(reply)

    def encode_many(self, replies: List[Any]) -> bytes:
        """Return several replies as one bytes object."""
        return encode_replies(replies)


class RespServerProtocol(FramedProtocol):
    """Answer each RESP command with its handler's reply; a pipeline with one write.

    Per connection state a handler may use: ``transport``, ``close_after_reply``
    (set it to close once this batch's replies are written, as QUIT does).
    """

    framer = RespRequestFramer()
    #: The commands this protocol answers; set by the application.
    router = CommandRouter()
    close_after_reply = False

    def execute(self, argv: List[bytes]) -> Any:
        """Return the reply to one command (override to gate commands)."""
        return self.router.dispatch(self, argv)

    def frames_received(self, commands: List[List[bytes]]) -> None:
        """Execute a batch of pipelined commands and write every reply at once."""
        # Hot path: once per batch. One list, one encode, one write.
        execute = self.execute
        replies = []
        for argv in commands:
            reply = execute(argv)
            if reply.__class__ is Replies:
                replies.extend(reply)
            else:
                replies.append(reply)
            if self.close_after_reply:
                break
        self.frames_out += len(replies)
        self.before_replies()
        self.transport.write(encode_replies(replies))
        if self.close_after_reply:
            self.transport.close()

    def before_replies(self) -> None:
        """Run once per batch, after its commands and before its replies are written."""

    def framing_error(self, exc: Any) -> None:
        """Answer what came before the bad bytes, then Redis's protocol error; the close follows."""
        if isinstance(exc, RespProtocolError):
            if exc.commands and not self.transport.is_closing():
                self.frames_received(exc.commands)
            if not self.transport.is_closing():
                self.transport.write(exc.reply)
