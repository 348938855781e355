"""A RESP2 (Redis protocol) client: pipelined commands, replies matched in order, pub/sub.

``command()`` writes at once, without waiting for earlier replies, and
returns a :class:`Reply` that completes later. Redis answers a connection's
commands one at a time, in arrival order, and TCP keeps both directions in
order, so the N-th reply on the wire answers the N-th command written. That
is the whole matching rule: a FIFO of the replies owed, no ids on the wire::

    command(GET a)  -> write -+                     +- reply 1 -> popleft -> Reply(GET a)
    command(GET b)  -> write -+-> Redis, in order --+- reply 2 -> popleft -> Reply(GET b)
    command(INCR n) -> write -+                     +- reply 3 -> popleft -> Reply(INCR n)
             _pending = deque([Reply(GET a), Reply(GET b), Reply(INCR n)])   head: next

Commands enter ``_queued`` (at most :data:`MAX_QUEUED_COMMANDS`) and leave
it in one write as soon as a connection is ready and not paused: at once,
usually. An error reply (``-ERR ...``) is an answer: the Reply's *value*, a
``ReplyError``. The Reply's *error* is set only when no answer will come:
the connection was lost after the command was written (it may or may not
have run), the client was closed, or it is not connected and will not retry.

Pub/sub changes what arrives. A subscribed connection also receives
messages nobody asked for, ``[b"message", channel, payload]`` and
``[b"pmessage", pattern, channel, payload]``: they go to ``on_message`` and
leave the FIFO alone. ``SUBSCRIBE a b`` is answered by one confirmation per
channel (``[b"subscribe", b"a", 1]``, ``[..., b"b", 2]``); its Reply completes
with the *last*. Redis then accepts only (P)SUBSCRIBE, (P)UNSUBSCRIBE, PING
and QUIT, so while subscribed ``command()`` raises ``ValueError`` for the
rest, as redis-py does (publish from a second client). Discussion: RESP3
marks pushes, RESP2 does not: an array starting ``b"message"`` is taken for
a push only while the last confirmation's count says we are subscribed.

``reconnect=True`` retries a failed connect, a lost connection or a malformed
reply after 0.1 s, 0.2 s, 0.4 s ... up to ``reconnect_max_delay`` (``call_later``;
nothing sleeps), then AUTHs, SELECTs and re-subscribes before the queue goes
out. A refused AUTH or SELECT closes the client instead: it would fail again.
"""

import enum
import logging
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

from ..addresses import check_port, connect_host, format_address
from ..errors import ReactorError
from ..protocols import Protocol
from .codec import ReplyError, RespProtocolError, RespReplyParser, encode_command

logger = logging.getLogger("reactor")

#: Commands that may wait for a connection (or for the transport to drain);
#: past this, ``command()`` fails the new ones at once.
MAX_QUEUED_COMMANDS = 10000
#: The most elements one reply array may announce (the parser's ``max_args``).
MAX_REPLY_ELEMENTS = 16 * 1024 * 1024

_PUBSUB_COMMANDS = frozenset((b"SUBSCRIBE", b"PSUBSCRIBE", b"UNSUBSCRIBE", b"PUNSUBSCRIBE"))
_ALLOWED_WHILE_SUBSCRIBED = frozenset((b"PING", b"QUIT"))
_CONFIRMATIONS = frozenset((b"subscribe", b"psubscribe", b"unsubscribe", b"punsubscribe"))
_PUSHES = frozenset((b"message", b"pmessage"))

ReplyCallback = Callable[[Any, Optional[BaseException]], None]


class RespConnectionError(ReactorError, ConnectionError):
    """No reply will come: the connection was lost or closed, or the queue is full."""


class Reply:
    """The answer to one command, once it comes: poll ``done`` or add a callback.

    ``value``: ``bytes``, ``int``, ``None``, ``list``, ``Status``, ``ReplyError``;
    ``error`` instead when no answer will come. A callback added when done runs at once.
    """

    __slots__ = ("done", "value", "error", "_callbacks", "_expect")

    def __init__(self, expect: int = 0) -> None:
        self.done, self.value, self.error = False, None, None
        self._callbacks: Optional[List[Callable[["Reply"], None]]] = None
        self._expect = expect           # pub/sub confirmations owed (0: a plain reply)

    def add_done_callback(self, fn: Callable[["Reply"], None]) -> None:
        """Call ``fn(reply)`` when the reply completes (now, if it has)."""
        if self.done:
            fn(self)
        else:
            self._callbacks = (self._callbacks or []) + [fn]

    def _complete(self, value: Any, error: Optional[BaseException] = None) -> None:
        self.done, self.value, self.error = True, value, error
        callbacks, self._callbacks = self._callbacks, None
        for fn in callbacks or ():
            fn(self)

    def __repr__(self) -> str:
        return "<Reply %s>" % ("error %r" % self.error if self.error is not None else
                               "value %r" % (self.value,) if self.done else "pending")


def connect_resp(loop: Any, host: str, port: int, *, password: Any = None, username: Any = None,
                 db: int = 0, timeout: Optional[float] = None, ssl: Any = None,
                 server_hostname: Optional[str] = None, reconnect: bool = False,
                 reconnect_initial_delay: float = 0.1, reconnect_max_delay: float = 5.0,
                 on_connect: Optional[Callable[["RespClient"], None]] = None,
                 on_error: Optional[Callable[[BaseException], None]] = None,
                 max_reply_bytes: int = 512 * 1024 * 1024) -> "RespClient":
    """Connect without blocking (``loop.connect_tcp`` underneath); return the client at once.

    Commands given before the connection is up are queued and sent, pipelined,
    once it is (after AUTH and SELECT if asked). ``on_connect(client)`` runs
    after each (re)connect; ``on_error(exc)`` (else the log) gets each failed
    connect (``ConnectRefusedError`` ...), lost connection (``RespConnectionError``,
    ``RespProtocolError``) and refused AUTH / SELECT (its ``ReplyError``; the
    client closes). Neither runs inside this call.
    """
    host = connect_host(host, "connect_resp")
    check_port(port, "connect_resp", allow_zero=False)
    if (username is not None and password is None) or not isinstance(db, int) or db < 0 \
            or not 0 < reconnect_initial_delay <= reconnect_max_delay:
        raise ValueError("connect_resp: need a password with a username, an int db >= 0 "
                         "and 0 < reconnect_initial_delay <= reconnect_max_delay")
    handshake = ([] if password is None else
                 [(b"AUTH", password) if username is None else (b"AUTH", username, password)])
    handshake += [(b"SELECT", db)] if db else []
    client = RespClient(loop, host, port, handshake,
                        dict(timeout=timeout, ssl=ssl, server_hostname=server_hostname),
                        (reconnect_initial_delay, reconnect_max_delay) if reconnect else None,
                        on_connect, on_error, max_reply_bytes)
    client._retry_timer = loop.call_soon(client._connect)
    return client


class _State(enum.Enum):
    CONNECTING = "connecting"   # a connect attempt is under way
    HANDSHAKE = "handshake"     # connected; the AUTH / SELECT replies are awaited
    READY = "ready"             # commands go straight to the socket
    WAITING = "waiting"         # lost; a reconnect is scheduled
    CLOSED = "closed"           # close() was called, or failed for good


class RespClient:
    """Commands and pub/sub over one connection to a RESP2 server; see the module docstring.

    Callbacks run on the loop thread and may call the client. Two run inside
    your call: a command failing at once (closed, queue full) completes its
    Reply in ``command()``; ``close()`` fails what is owed. An exception from a
    callback run for a reply ends the connection (the framework's failure policy).
    """

    __slots__ = ("_loop", "_host", "_port", "_where", "_handshake", "_connect_options", "_delays",
                 "_delay", "_on_connect", "_on_error", "_max_reply_bytes", "_state", "_connector",
                 "_connection", "_retry_timer", "_final_error", "_pending", "_queued",
                 "_writing_paused", "_channels", "_patterns", "_subscription_count",
                 "_resubscribe")

    def __init__(self, loop: Any, host: str, port: int, handshake: List[Tuple[Any, ...]],
                 connect_options: Dict[str, Any], delays: Optional[Tuple[float, float]],
                 on_connect: Any, on_error: Any, max_reply_bytes: int) -> None:
        """Take :func:`connect_resp`'s checked arguments; call that instead."""
        self._loop, self._host, self._port = loop, host, port
        self._where = format_address((host, port))
        self._handshake, self._connect_options = handshake, connect_options
        self._delays = delays                                  # None: no reconnect
        self._delay = delays[0] if delays else 0.0
        self._on_connect, self._on_error = on_connect, on_error
        self._max_reply_bytes = max_reply_bytes
        self._state = _State.CONNECTING
        self._connector = self._connection = self._retry_timer = self._final_error = None
        self._pending: Deque[Reply] = deque()                  # written; replies owed, in order
        self._queued: Deque[Tuple[bytes, Reply]] = deque()     # not written yet
        self._writing_paused = False
        self._channels: Dict[bytes, Callable[..., None]] = {}  # what the user subscribed to
        self._patterns: Dict[bytes, Callable[..., None]] = {}
        self._subscription_count = 0                           # > 0: pushes may arrive
        self._resubscribe = False                              # set by a lost connection

    @property
    def connected(self) -> bool:
        """Tell whether commands go straight to a connection (AUTH and SELECT done)."""
        return self._state is _State.READY

    @property
    def pending(self) -> int:
        """Return how many replies are awaited (AUTH and SELECT's too): written or queued."""
        return len(self._pending) + len(self._queued)

    def command(self, *args: Any, callback: Optional[ReplyCallback] = None) -> Reply:
        """Send one command now (pipelined); ``callback(value, error)`` runs when it completes.

        ``args``: bytes, str, int, float. ``ValueError`` for an empty command, for
        (P)(UN)SUBSCRIBE (call those methods) and, while subscribed, all but PING and QUIT.
        """
        return self._submit([self._encode(args)], callback)[0]

    def pipeline(self, commands: Sequence[Sequence[Any]],
                 callback: Optional[ReplyCallback] = None) -> List[Reply]:
        """Send ``commands`` with one write; return their Replies, in order.

        ``callback`` runs for each, as for ``command()``; on ``ValueError`` none is sent.
        """
        payloads = [self._encode(args) for args in commands]
        return self._submit(payloads, callback) if payloads else []

    def subscribe(self, *channels: Any, on_message: Callable[[bytes, bytes], None]) -> Reply:
        """Subscribe; ``on_message(channel, payload)`` runs per message once the Reply is done."""
        return self._pubsub(b"SUBSCRIBE", self._channels, channels, on_message)

    def psubscribe(self, *patterns: Any,
                   on_message: Callable[[bytes, bytes, bytes], None]) -> Reply:
        """Like ``subscribe``, for glob ``patterns``: ``on_message(pattern, channel, payload)``."""
        return self._pubsub(b"PSUBSCRIBE", self._patterns, patterns, on_message)

    def unsubscribe(self, *channels: Any) -> Reply:
        """Stop delivery from ``channels`` (all, if none is named) now; tell the server."""
        return self._pubsub(b"UNSUBSCRIBE", self._channels, channels, None)

    def punsubscribe(self, *patterns: Any) -> Reply:
        """Stop delivery from ``patterns`` (all, if none is named) now; tell the server."""
        return self._pubsub(b"PUNSUBSCRIBE", self._patterns, patterns, None)

    def close(self) -> None:
        """Close and stop retrying; what is owed, and later commands, fail. Idempotent."""
        if self._state is not _State.CLOSED:
            self._shut(RespConnectionError("client for %s closed" % self._where))

    # -- sending ---------------------------------------------------------------------

    def _encode(self, args: Sequence[Any]) -> bytes:
        if not args or not isinstance(args[0], (bytes, str)):
            raise ValueError("a command starts with its name (bytes or str), not %.40r" % (args,))
        name = (args[0].encode("utf-8") if isinstance(args[0], str) else args[0]).upper()
        if name in _PUBSUB_COMMANDS:
            raise ValueError("%s: call the client's method of that name" % name.decode())
        if (self._channels or self._patterns) and name not in _ALLOWED_WHILE_SUBSCRIBED:
            raise ValueError("%s: a subscribed connection takes only (P)(UN)SUBSCRIBE, PING "
                             "and QUIT; use a second client" % name.decode("latin-1"))
        return encode_command(*args)

    def _pubsub(self, name: bytes, handlers: Dict[bytes, Callable[..., None]],
                names: Sequence[Any], on_message: Optional[Callable[..., None]]) -> Reply:
        keys = [bytes(item) if isinstance(item, (bytes, bytearray)) else str(item).encode("utf-8")
                for item in names]
        if name in (b"SUBSCRIBE", b"PSUBSCRIBE"):
            if not keys or not callable(on_message):
                raise ValueError("%s needs names and a callable on_message" % name.decode())
            handlers.update(dict.fromkeys(keys, on_message))
        else:
            # "All" is sent as the names we hold, since Redis confirms each name
            # given, while a bare UNSUBSCRIBE is confirmed once per channel the
            # server holds. A name leaves ``handlers`` only when unsubscribed by name.
            keys = keys or list(handlers)
            for key in keys:
                handlers.pop(key, None)
        # Given no name (none subscribed), Redis still confirms once, with a nil name.
        return self._submit([encode_command(name, *keys)], None, max(len(keys), 1))[0]

    def _submit(self, payloads: List[bytes], callback: Optional[ReplyCallback],
                expect: int = 0) -> List[Reply]:
        """Write now if a connection is ready and drained; else queue (bounded); else fail."""
        replies = [Reply(expect) for _ in payloads]
        if callback is not None:
            for reply in replies:
                reply.add_done_callback(lambda done: callback(done.value, done.error))
        if self._state is _State.CLOSED:
            error = RespConnectionError("not connected: %s" % self._final_error)
        elif len(self._queued) + len(replies) > MAX_QUEUED_COMMANDS:
            error = RespConnectionError("%d commands already wait for %s (%s; limit %d)" % (
                len(self._queued), self._where, self._state.value, MAX_QUEUED_COMMANDS))
        else:
            self._queued.extend(zip(payloads, replies))
            self._flush()
            return replies
        _fail(replies, error)
        return replies

    def _flush(self) -> None:
        """Write the whole queue with one write, if a connection is ready and drained."""
        if self._state is not _State.READY or self._writing_paused or not self._queued:
            return
        entries = list(self._queued)
        self._queued.clear()
        self._pending.extend(reply for _, reply in entries)
        self._connection.transport.write(b"".join(payload for payload, _ in entries))

    # -- the connection's life ----------------------------------------------------------

    def _connect(self) -> None:
        self._retry_timer, self._state = None, _State.CONNECTING
        connector = self._loop.connect_tcp(lambda: _RespConnection(self), self._host, self._port,
                                           on_error=self._lost, **self._connect_options)
        if self._state is _State.CONNECTING:           # not already failed or connected
            self._connector = connector

    def _connection_made(self, connection: "_RespConnection") -> None:
        if self._state is not _State.CONNECTING:       # closed while TLS shook hands
            connection.transport.close()
            return
        self._connection, self._connector = connection, None
        self._state, self._writing_paused, self._subscription_count = _State.HANDSHAKE, False, 0
        if not self._handshake:
            self._ready()
            return
        for _ in self._handshake:
            self._pending.append(Reply())
            self._pending[-1].add_done_callback(self._handshake_answered)
        connection.transport.write(b"".join(encode_command(*args) for args in self._handshake))

    def _handshake_answered(self, reply: Reply) -> None:
        if reply.error is not None or self._state is not _State.HANDSHAKE:
            return                                     # lost meanwhile: _lost handles it
        if isinstance(reply.value, ReplyError):        # a wrong password is not retried
            self._shut(reply.value)
            self._report(reply.value)
            return
        if not self._pending:                          # the last: user commands are queued
            self._ready()

    def _ready(self) -> None:
        """Send what waited, in the user's order; after a reconnect, re-subscribe first."""
        self._state = _State.READY
        self._delay = self._delays[0] if self._delays else 0.0
        resubscribe, self._resubscribe = self._resubscribe, False
        if resubscribe:
            self._queued.extendleft((encode_command(name, *handlers), Reply(len(handlers)))
                                    for name, handlers in ((b"PSUBSCRIBE", self._patterns),
                                                           (b"SUBSCRIBE", self._channels))
                                    if handlers)
        self._flush()
        if self._on_connect is not None and self._state is _State.READY:
            self._on_connect(self)

    def _lost(self, exc: BaseException) -> None:
        """End this connection or attempt: fail what was written; retry, or close for good."""
        if self._state is _State.CLOSED:               # a TLS handshake failing after close()
            return
        if self._delays is None:
            self._shut(exc)
            self._report(exc)
            return
        self._connection, self._connector, self._state = None, None, _State.WAITING
        self._resubscribe = True
        self._retry_timer = self._loop.call_later(self._delay, self._connect)
        logger.info("redis %s: %s; retrying in %.3g s", self._where, exc, self._delay)
        self._delay = min(self._delay * 2, self._delays[1])
        owed, self._pending = self._pending, deque()   # queued commands wait for the retry
        _fail(owed, exc)
        self._report(exc)

    def _shut(self, exc: BaseException) -> None:
        """Close for good, the single fatal path: everything owed or queued fails with ``exc``."""
        connection, connector, timer = self._connection, self._connector, self._retry_timer
        self._state, self._final_error = _State.CLOSED, exc
        self._connection = self._connector = self._retry_timer = None
        for attempt in (timer, connector):
            if attempt is not None:
                attempt.cancel()
        if connection is not None:
            connection.transport.close()
        owed = list(self._pending) + [reply for _, reply in self._queued]
        self._pending, self._queued = deque(), deque()
        _fail(owed, exc)

    def _report(self, exc: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(exc)
        else:
            logger.warning("redis %s: %s", self._where, exc)

    # -- what the connection tells us ------------------------------------------------------

    def _replies_received(self, connection: "_RespConnection", values: List[Any]) -> None:
        # Hot path: once per chunk read. A plain reply costs an identity test,
        # an int test, a popleft and its Reply's callbacks; nothing is allocated.
        for value in values:
            if self._connection is not connection:      # a callback closed or broke it
                return
            if self._subscription_count and type(value) is list and value and value[0] in _PUSHES:
                self._message_received(value)
                continue
            if not self._pending:
                self._broken(connection, RespProtocolError(
                    "a reply came with no command waiting for it: %.80r" % (value,)))
                return
            reply = self._pending[0]
            if reply._expect and type(value) is list and len(value) == 3 \
                    and value[0] in _CONFIRMATIONS:     # one per name the command named
                self._subscription_count = value[2]     # the server's count, after this one
                reply._expect -= 1
                if reply._expect:
                    continue
            self._pending.popleft()
            reply._complete(value)

    def _message_received(self, push: List[Any]) -> None:
        # No handler: unsubscribe() ran, and the server has not confirmed it yet.
        handler = (self._channels if push[0] == b"message" else self._patterns).get(push[1])
        if handler is not None:
            handler(*push[1:])

    def _broken(self, connection: "_RespConnection", exc: BaseException) -> None:
        """The server broke RESP: abort this connection only, with the reason logged."""
        if self._connection is not connection:
            return
        logger.warning("closing the connection to %s: the server broke RESP: %s",
                       self._where, exc)
        connection.transport.abort()
        self._lost(exc)

    def _connection_lost(self, connection: Any, exc: Optional[BaseException]) -> None:
        if self._connection is not connection:
            return
        error = RespConnectionError("connection to %s lost: %s"
                                    % (self._where, exc or "closed by the server"))
        error.__cause__ = exc
        self._lost(error)

    def _writing_paused_changed(self, paused: bool) -> None:
        self._writing_paused = paused
        self._flush()


class _RespConnection(Protocol):
    """The protocol of one connection: parse the replies, hand them to the client."""

    __slots__ = ("_client", "_parser")

    def __init__(self, client: RespClient) -> None:
        self._client = client
        self._parser = RespReplyParser(max_bulk_bytes=client._max_reply_bytes,
                                       max_args=MAX_REPLY_ELEMENTS)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self._client._connection_made(self)

    def data_received(self, data: bytes) -> None:
        # Hot path: one feed and one call per chunk read.
        try:
            values = self._parser.feed(data)
        except RespProtocolError as exc:
            self._client._replies_received(self, exc.commands)   # whole before the bad bytes
            self._client._broken(self, exc)
            return
        if values:
            self._client._replies_received(self, values)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._client._connection_lost(self, exc)

    def pause_writing(self) -> None:
        self._client._writing_paused_changed(True)

    def resume_writing(self) -> None:
        self._client._writing_paused_changed(False)


def _fail(replies: List[Reply], exc: BaseException) -> None:
    for reply in replies:
        if not reply.done:
            reply._complete(None, exc)
