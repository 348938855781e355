"""CommandRouter: names to handlers, Redis's arity rules and error texts, subcommands."""

import pytest

from reactor.dispatch import CommandRouter
from reactor.resp.codec import ReplyError


def make_router():
    router = CommandRouter()
    router.add("get", lambda ctx, argv: ("get", argv), 2)
    router.add("del", lambda ctx, argv: ("del", argv), -2)
    router.add("config get", lambda ctx, argv: ("config get", argv), -3)
    return router


def test_a_command_is_found_in_any_case_and_gets_the_whole_request():
    """GET, get and GeT reach the same handler, with the name as the first word."""
    router = make_router()
    for name in (b"GET", b"get", b"GeT"):
        assert router.dispatch("ctx", [name, b"k"]) == ("get", [name, b"k"])


def test_arity_is_exact_when_positive_and_a_minimum_when_negative():
    """GET takes exactly one key; DEL one or more; the error names the command in lower case."""
    router = make_router()
    assert router.dispatch(None, [b"GET", b"a", b"b"]) == ReplyError(
        "ERR wrong number of arguments for 'get' command")
    assert router.dispatch(None, [b"DEL"]) == ReplyError(
        "ERR wrong number of arguments for 'del' command")
    assert router.dispatch(None, [b"DEL", b"a", b"b", b"c"])[0] == "del"


def test_an_unknown_command_quotes_at_most_128_bytes_of_its_arguments():
    """Redis's text: the name, then each argument quoted, until 128 bytes are quoted."""
    router = make_router()
    assert router.dispatch(None, [b"NOPE"]) == ReplyError(
        "ERR unknown command 'NOPE', with args beginning with: ")
    assert router.dispatch(None, [b"NOPE", b"a", b"b\r\nc"]) == ReplyError(
        "ERR unknown command 'NOPE', with args beginning with: 'a' 'b  c' ")
    text = str(router.dispatch(None, [b"x", b"y" * 1000, b"z"]))
    assert text == "ERR unknown command 'x', with args beginning with: '%s' " % ("y" * 128)


def test_subcommands_dispatch_on_the_second_word_with_redis_texts():
    """CONFIG GET is found; a bare CONFIG or an unknown subcommand gets Redis's words."""
    router = make_router()
    assert router.dispatch(None, [b"config", b"GET", b"save"])[0] == "config get"
    assert router.dispatch(None, [b"CONFIG"]) == ReplyError(
        "ERR wrong number of arguments for 'config' command")
    assert router.dispatch(None, [b"CONFIG", b"Nope"]) == ReplyError(
        "ERR unknown subcommand 'Nope'. Try CONFIG HELP.")
    assert router.dispatch(None, [b"CONFIG", b"GET"]) == ReplyError(
        "ERR wrong number of arguments for 'config|get' command")


def test_registration_refuses_what_could_never_be_called():
    """A zero arity, a name taken twice, three words, or a command turned container are errors."""
    router = make_router()
    with pytest.raises(ValueError, match="arity"):
        router.add("x", lambda ctx, argv: None, 0)
    with pytest.raises(ValueError, match="already registered"):
        router.add("GET", lambda ctx, argv: None, 2)
    with pytest.raises(ValueError, match="one word"):
        router.add("a b c", lambda ctx, argv: None, 2)
    with pytest.raises(ValueError, match="cannot have subcommands"):
        router.add("get sub", lambda ctx, argv: None, 2)
    with pytest.raises(ValueError, match="counts both words"):
        router.add("config set", lambda ctx, argv: None, 1)


def test_the_decorator_registers_and_returns_the_function():
    """@router.command(name, arity) leaves the function usable as it was."""
    router = CommandRouter()

    @router.command("ping", -1)
    def ping(ctx, argv):
        return "PONG"
    assert ping(None, [b"PING"]) == "PONG"
    assert router.dispatch(None, [b"ping"]) == "PONG"
    assert repr(router.commands[b"ping"]) == "<Command ping arity=-1>"
