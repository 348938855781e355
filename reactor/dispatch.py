"""Command dispatch: from a parsed request to the function that answers it.

A request/response server does three things with every request: parse it,
find the code that handles it, format that code's answer. The codec does
the first and last (``reactor.resp.codec``); this module does the middle,
and nothing else, so the same router serves RESP, a line protocol or any
other "NAME arg arg ..." protocol::

    [b"SET", b"k", b"v"]  ->  router.dispatch(ctx, argv)
                               name "set" -> Command(handler, arity=-3)
                               arity ok   -> handler(ctx, argv) -> reply value
                               unknown    -> ReplyError("ERR unknown command 'x', ...")
                               bad arity  -> ReplyError("ERR wrong number of arguments ...")

A handler is a plain function ``handler(ctx, argv) -> reply``: ``argv`` is
the whole request (name first, as Redis passes it), ``ctx`` whatever the
protocol hands in (its connection state). It returns a reply value, not
bytes: the codec formats it. Errors a client can cause are reply values
too (:class:`~reactor.resp.codec.ReplyError`), so a wrong command costs
that one reply and the connection stays usable.

Arity follows Redis: a positive arity is the exact number of words,
name included (``GET key``: 2); a negative one is a minimum (``DEL key
[key ...]``: -2). A command may have subcommands (``CONFIG GET``): register
``"config get"`` and the router dispatches on the second word, with
Redis's texts for an unknown subcommand or a wrong arity.

Discussion: the error texts are Redis 7's, byte for byte, because clients
and their users match on them (``redis-cli`` prints them as they come).
Unknown-command errors quote at most 128 bytes of arguments, as Redis
does, so a megabyte of garbage costs a short reply.
"""

from typing import Any, Callable, Dict, Iterable, List, Optional

from .resp.codec import ReplyError

#: A handler: ``handler(ctx, argv) -> reply value``.
Handler = Callable[[Any, List[bytes]], Any]
#: Redis quotes this many bytes of a bad request's name and arguments.
QUOTED_BYTES = 128


class Command:
    """One registered command: its handler, its arity and its flags."""

    __slots__ = ("name", "handler", "arity", "flags", "subcommands")

    def __init__(self, name: str, handler: Optional[Handler], arity: int,
                 flags: Iterable[str] = ()) -> None:
        self.name = name                      # lower case; "config|get" for a subcommand
        self.handler = handler
        self.arity = arity
        self.flags = frozenset(flags)
        self.subcommands: Optional[Dict[bytes, "Command"]] = None

    def arity_ok(self, count: int) -> bool:
        """Tell whether ``count`` words (name included) suit this command's arity."""
        arity = self.arity
        return count == arity if arity > 0 else count >= -arity

    def __repr__(self) -> str:
        return "<Command %s arity=%d%s>" % (
            self.name, self.arity, " " + ",".join(sorted(self.flags)) if self.flags else "")


class CommandRouter:
    """Map command names (case-insensitive) to handlers; answer what Redis answers for the rest."""

    def __init__(self) -> None:
        self.commands: Dict[bytes, Command] = {}

    def command(self, name: str, arity: int, flags: Iterable[str] = ()) -> Callable[[Handler], Handler]:
        """Register the decorated function for ``name`` (``"get"``, or ``"config get"``)."""
        def register(handler: Handler) -> Handler:
            self.add(name, handler, arity, flags)
            return handler
        return register

    def add(self, name: str, handler: Handler, arity: int, flags: Iterable[str] = ()) -> Command:
        """Register ``handler`` for ``name``; ValueError for a zero arity or a name taken twice."""
        if not isinstance(arity, int) or arity == 0:
            raise ValueError("arity must be a non-zero int (n: exactly n words, -n: at least n), "
                             "got %r" % (arity,))
        words = name.lower().split()
        if not 1 <= len(words) <= 2:
            raise ValueError("a command name is one word or 'command subcommand', got %r" % name)
        table = self.commands
        key = words[0].encode()
        if len(words) == 2:
            parent = table.get(key)
            if parent is None:
                parent = table[key] = Command(words[0], None, -2)
            if parent.subcommands is None:
                if parent.handler is not None:
                    raise ValueError("%r is registered as a command; it cannot have subcommands"
                                     % words[0])
                parent.subcommands = {}
            table, key = parent.subcommands, words[1].encode()
            name = "%s|%s" % (words[0], words[1])
            if arity > 0 and arity < 2 or arity < 0 and arity > -2:
                raise ValueError("a subcommand's arity counts both words: at least 2")
        else:
            name = words[0]
        if key in table:
            raise ValueError("%r is already registered" % name)
        command = table[key] = table[key.upper()] = Command(name, handler, arity, flags)
        return command

    def lookup(self, argv: List[bytes]) -> Any:
        """Return the :class:`Command` for ``argv``, or the ReplyError a client gets instead."""
        # Hot path: once per request. The common case is one dict lookup on
        # the name as sent: each name is registered in lower and upper case,
        # as clients send them; Mixed case costs a lower() and a second lookup.
        name = argv[0]
        command = self.commands.get(name)
        if command is None:
            command = self.commands.get(name.lower())
            if command is None:
                return unknown_command(argv)
        if command.subcommands is not None:
            if len(argv) < 2:
                return wrong_arity(command.name)
            sub = command.subcommands.get(argv[1].lower())
            if sub is None:
                return ReplyError("ERR unknown subcommand '%s'. Try %s HELP."
                                  % (quote(argv[1], QUOTED_BYTES), command.name.upper()))
            command = sub
        if not command.arity_ok(len(argv)):
            return wrong_arity(command.name)
        return command

    def dispatch(self, ctx: Any, argv: List[bytes]) -> Any:
        """Run the handler ``argv`` names and return its reply (or the error reply)."""
        command = self.lookup(argv)
        if command.__class__ is not Command:
            return command
        return command.handler(ctx, argv)


def unknown_command(argv: List[bytes]) -> ReplyError:
    """Return Redis's reply to a command it does not know (at most 128 bytes quoted)."""
    quoted = ""
    for arg in argv[1:]:
        if len(quoted) >= QUOTED_BYTES:
            break
        quoted += "'%s' " % quote(arg, QUOTED_BYTES - len(quoted))
    return ReplyError("ERR unknown command '%s', with args beginning with: %s"
                      % (quote(argv[0], QUOTED_BYTES), quoted))


def wrong_arity(name: str) -> ReplyError:
    """Return Redis's reply to a known command with the wrong number of arguments."""
    return ReplyError("ERR wrong number of arguments for '%s' command" % name)


def quote(word: bytes, limit: int) -> str:
    """Return at most ``limit`` bytes of ``word`` as text fit for an error line."""
    text = bytes(word[:limit]).decode("utf-8", "replace")
    return text.replace("\r", " ").replace("\n", " ")
