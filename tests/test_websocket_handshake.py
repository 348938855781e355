"""The WebSocket opening handshake (reactor/websocket/handshake.py), both sides."""

import base64

import pytest

from reactor.errors import FramingError
from reactor.http.messages import Headers
from reactor.http.parser import RequestParser
from reactor.websocket.deflate import accept_client, client_offer, negotiate_server
from reactor.websocket.handshake import (ClientHandshake, HandshakeError, accept_key,
                                         check_client_request, check_server_response,
                                         choose_subprotocol, client_request_headers,
                                         parse_extensions, server_response_headers)

RFC_KEY, RFC_ACCEPT = "dGhlIHNhbXBsZSBub25jZQ==", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
RFC_REQUEST = (b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
               b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
               b"Sec-WebSocket-Version: 13\r\n\r\n")


def request_fields(**changes):
    """The RFC 6455 1.2 request's fields as (lowercased name, value); None drops one."""
    fields = {"host": "server.example.com", "upgrade": "websocket", "connection": "Upgrade",
              "sec-websocket-key": RFC_KEY, "sec-websocket-version": "13"}
    fields.update(changes)
    return [(name, value) for name, value in fields.items() if value is not None]


def refusal(method="GET", version="1.1", **changes):
    with pytest.raises(HandshakeError) as info:
        check_client_request(method, version, request_fields(**changes))
    return info.value


def response_fields(key=RFC_KEY, **extra):
    return [("upgrade", "websocket"), ("connection", "Upgrade"),
            ("sec-websocket-accept", accept_key(key))] + list(extra.items())


# -- the server side ------------------------------------------------------------------

def test_rfc_accept_key():
    """RFC 6455 1.3: "dGhlIHNhbXBsZSBub25jZQ==" is answered "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="."""
    assert accept_key(RFC_KEY) == RFC_ACCEPT


def test_the_rfc_request_parsed_by_the_http_parser_is_accepted():
    """RFC 6455 1.2's request, through RequestParser and Headers, gives its key and
    subprotocols, and a 101 with the RFC's accept value."""
    head = RequestParser().feed(RFC_REQUEST)[0]
    handshake = check_client_request(head.method, head.version, Headers.from_parser(head.headers))
    assert (handshake.key, handshake.subprotocols, handshake.extensions) == (
        RFC_KEY, ["chat", "superchat"], None)
    assert server_response_headers(handshake, "chat") == [
        ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", RFC_ACCEPT), ("Sec-WebSocket-Protocol", "chat")]


def test_tokens_are_case_insensitive_lists_and_extensions_are_joined():
    """Upgrade and Connection are token lists in any case; repeated extension fields join."""
    fields = request_fields(upgrade="h2c, WebSocket", connection="keep-alive, UPGRADE")
    fields += [("sec-websocket-extensions", "permessage-deflate; client_max_window_bits"),
               ("sec-websocket-extensions", "x-other"),
               ("sec-websocket-protocol", "a,b"), ("sec-websocket-protocol", " c ")]
    handshake = check_client_request("GET", "HTTP/1.1", fields)
    assert handshake.extensions == "permessage-deflate; client_max_window_bits, x-other"
    assert handshake.subprotocols == ["a", "b", "c"]
    assert "ClientHandshake(" in repr(handshake)


@pytest.mark.parametrize("method, version, changes", [
    ("POST", "1.1", {}),
    ("GET", "1.0", {}),
    ("GET", "2.0", {}),
    ("GET", "1.1", {"upgrade": None}),
    ("GET", "1.1", {"upgrade": "h2c"}),
    ("GET", "1.1", {"connection": None}),
    ("GET", "1.1", {"connection": "keep-alive"}),
    ("GET", "1.1", {"sec-websocket-key": None}),
    ("GET", "1.1", {"sec-websocket-key": "not base64!"}),
    ("GET", "1.1", {"sec-websocket-key": base64.b64encode(bytes(15)).decode()}),
    ("GET", "1.1", {"sec-websocket-key": base64.b64encode(bytes(17)).decode()}),
    ("GET", "1.1", {"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ"}),
    ("GET", "1.1", {"sec-websocket-version": None}),
])
def test_malformed_requests_are_400(method, version, changes):
    """A wrong method or HTTP version, missing tokens, or a bad or missing key is 400."""
    error = refusal(method, version, **changes)
    assert (error.status, error.phrase) == (400, "Bad Request")
    assert isinstance(error, FramingError) and error.reason == "framing"


def test_a_repeated_key_is_400():
    """Two Sec-WebSocket-Key fields are refused, even if both are well formed."""
    fields = request_fields() + [("sec-websocket-key", RFC_KEY)]
    with pytest.raises(HandshakeError) as info:
        check_client_request("GET", "1.1", fields)
    assert info.value.status == 400


@pytest.mark.parametrize("version", ["8", "14", "13, 8", "x"])
def test_another_websocket_version_is_426_naming_13(version):
    """A version other than 13 gets 426 with Sec-WebSocket-Version: 13 (RFC 6455 4.4)."""
    error = refusal(**{"sec-websocket-version": version})
    assert (error.status, error.headers) == (426, [("Sec-WebSocket-Version", "13")])


def test_response_headers_carry_only_what_was_offered():
    """An extensions value is passed on; a subprotocol the client did not offer is ValueError."""
    handshake = ClientHandshake(RFC_KEY, ["chat"], "permessage-deflate")
    assert server_response_headers(handshake, extensions="permessage-deflate")[-1] == (
        "Sec-WebSocket-Extensions", "permessage-deflate")
    with pytest.raises(ValueError):
        server_response_headers(handshake, "superchat")


def test_choose_subprotocol_takes_the_server_order():
    """The server's first supported protocol that the client offered wins; none gives None."""
    assert choose_subprotocol(["a", "b", "c"], ["c", "b"]) == "c"
    assert choose_subprotocol(["a"], ["b"]) is None
    assert choose_subprotocol([], ["b"]) is None


# -- the client side ------------------------------------------------------------------

def test_client_request_has_a_fresh_16_byte_key():
    """Each request has a new key, base64 of 16 bytes, and the fields a server checks."""
    key, fields = client_request_headers("example.com:8080", "/chat?room=1", ["chat", "v2"],
                                         client_offer())
    other, _ = client_request_headers("example.com", "/")
    assert key != other and len(base64.b64decode(key)) == 16
    assert fields == [("Host", "example.com:8080"), ("Upgrade", "websocket"),
                      ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                      ("Sec-WebSocket-Version", "13"), ("Sec-WebSocket-Protocol", "chat, v2"),
                      ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
    for path, protocols in (("chat", ()), ("/a b", ()), ("/", ["a b"])):
        with pytest.raises(ValueError):
            client_request_headers("example.com", path, protocols)


def test_both_halves_agree_end_to_end():
    """Client request -> server check -> 101 -> client check, with a subprotocol and deflate."""
    offer = client_offer()
    key, fields = client_request_headers("example.com", "/", ["v1", "v2"], offer)
    handshake = check_client_request("GET", "1.1", [(n.lower(), v) for n, v in fields])
    extensions, _ = negotiate_server(handshake.extensions)
    protocol = choose_subprotocol(handshake.subprotocols, ["v2", "v1"])
    answer = server_response_headers(handshake, protocol, extensions)
    agreed = check_server_response(101, [(n.lower(), v) for n, v in answer], key, ["v1", "v2"],
                                   offered_extensions=offer)
    assert agreed == ("v2", "permessage-deflate")
    assert accept_client(agreed[1], offer) is not None


def test_a_plain_answer_gives_no_subprotocol_and_no_extensions():
    """A 101 with only the required fields (any case) gives (None, None)."""
    fields = [("Upgrade", "WebSocket"), ("Connection", "upgrade"),
              ("Sec-WebSocket-Accept", RFC_ACCEPT)]
    assert check_server_response(101, fields, RFC_KEY) == (None, None)


@pytest.mark.parametrize("status, fields, protocols, offered", [
    (200, response_fields(), (), None),
    (101, response_fields()[1:], (), None),
    (101, response_fields()[:1] + response_fields()[2:], (), None),
    (101, response_fields(key="AAAAAAAAAAAAAAAAAAAAAA=="), (), None),
    (101, response_fields()[:2], (), None),
    (101, response_fields() + [("sec-websocket-accept", RFC_ACCEPT)], (), None),
    (101, response_fields(**{"sec-websocket-protocol": "chat"}), (), None),
    (101, response_fields(**{"sec-websocket-protocol": "a, b"}), ("a", "b"), None),
    (101, response_fields(**{"sec-websocket-extensions": "permessage-deflate"}), (), None),
    (101, response_fields(**{"sec-websocket-extensions": "x-other"}), (), client_offer()),
    (101, response_fields(**{"sec-websocket-extensions": "permessage-deflate;;"}), (),
     client_offer()),
])
def test_bad_answers_are_refused(status, fields, protocols, offered):
    """A non-101, missing tokens, a wrong or repeated accept, an unoffered or doubled
    subprotocol, or an unoffered extension is a HandshakeError carrying the server's status."""
    with pytest.raises(HandshakeError) as info:
        check_server_response(status, fields, RFC_KEY, protocols, offered_extensions=offered)
    assert info.value.status == status


# -- the extensions grammar (RFC 6455 9.1) ------------------------------------------------

def test_parse_extensions_reads_params_quotes_and_empty_elements():
    """Names and parameters are lowercased, quoted values unquoted, empty list elements skipped."""
    assert parse_extensions(' , Foo ; A=1;b ;c="x\\y" , bar,') == [
        ("foo", [("a", "1"), ("b", None), ("c", "xy")]), ("bar", [])]
    assert parse_extensions("") == []


@pytest.mark.parametrize("value", ["foo bar", "foo;", "foo; a=", 'foo; a="b c"', "=", "foo; a=b c",
                                   'foo; a="unterminated'])
def test_parse_extensions_refuses_bad_syntax(value):
    """Missing commas, dangling semicolons or equals, and non-token quoted values are ValueError."""
    with pytest.raises(ValueError):
        parse_extensions(value)
