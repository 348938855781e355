"""The HTTP router and the messages a handler sees: pure, no sockets."""

import pytest

from reactor.http import Headers, Request, Response, Router


def handler(request):
    return Response(200, body=request.path)


def other(request):
    return Response(201)


def test_exact_path_finds_its_route_with_no_params():
    """A parameterless path is found with empty params."""
    app = Router()
    app.route("/health")(handler)
    route, params = app.find("GET", "/health")
    assert (route.handler, params) == (handler, {})


def test_parameters_match_one_segment_each():
    """``{id}`` takes one segment, never a slash."""
    app = Router()
    app.route("/items/{id}/parts/{part}")(handler)
    route, params = app.find("GET", "/items/42/parts/x-1")
    assert params == {"id": "42", "part": "x-1"}
    assert app.find("GET", "/items/4/2/parts/x") == (None, None)
    assert app.find("GET", "/items//parts/x") == (None, None)


def test_path_parameter_takes_the_rest():
    """``{name:path}`` ends a pattern and matches slashes too."""
    app = Router()
    app.route("/static/{rest:path}")(handler)
    assert app.find("GET", "/static/a/b/c.txt")[1] == {"rest": "a/b/c.txt"}
    assert app.find("GET", "/static/")[1] == {"rest": ""}
    assert app.find("GET", "/other") == (None, None)


def test_unknown_path_is_404_and_wrong_method_is_405_with_allow():
    """No route: (None, None); a route without the method: (None, Allow value)."""
    app = Router()
    app.route("/items/{id}", methods=["GET", "POST"])(handler)
    app.route("/items/{id}", methods=["DELETE"])(other)
    assert app.find("GET", "/nothing") == (None, None)
    assert app.find("PUT", "/items/1") == (None, "DELETE, GET, HEAD, POST")


def test_head_falls_back_to_get_but_an_explicit_head_route_wins():
    """HEAD uses the GET route unless a route names HEAD."""
    app = Router()
    app.route("/a")(handler)
    app.route("/b", methods=["GET"])(handler)
    app.route("/b", methods=["HEAD"])(other)
    assert app.find("HEAD", "/a")[0].handler is handler
    assert app.find("HEAD", "/b")[0].handler is other


def test_methods_are_case_insensitive_at_registration():
    """``methods=["post"]`` routes POST."""
    app = Router()
    app.route("/x", methods=["post"])(handler)
    assert app.find("POST", "/x")[0].handler is handler


@pytest.mark.parametrize("pattern, methods, message", [
    ("items", ["GET"], "starts with '/'"),
    ("/a/{rest:path}/b", ["GET"], "must end the pattern"),
    ("/a/{x}/{x}", ["GET"], "bad route pattern"),
    ("/a/{1x}", ["GET"], "bad parameter"),
    ("/a/{x", ["GET"], "bad parameter"),
    ("/a", "GET", "not a string"),
    ("/a", [], "no methods"),
])
def test_bad_routes_are_refused_with_the_reason(pattern, methods, message):
    """A malformed pattern or methods value raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=message):
        Router().add_route(pattern, handler, methods)


def test_a_method_routed_twice_is_refused():
    """The same method and pattern twice is a mistake, not an override."""
    app = Router()
    app.route("/x")(handler)
    with pytest.raises(ValueError, match="routed twice"):
        app.route("/x")(other)


def test_routes_lists_each_route_once():
    """``routes()`` gives every route once, exact paths first."""
    app = Router()
    app.route("/p/{id}", methods=["GET", "PUT"])(other)
    app.route("/a", methods=["GET", "POST"])(handler)
    assert [route.pattern for route in app.routes()] == ["/a", "/p/{id}"]


def test_headers_are_case_insensitive_and_keep_order_and_repeats():
    """get/get_all/in ignore case; items keep order and repeats."""
    headers = Headers([("Set-Cookie", "a=1"), ("Content-Type", "text/plain"),
                       ("set-cookie", "b=2")])
    assert headers["content-type"] == "text/plain"
    assert headers.get("SET-COOKIE") == "a=1"
    assert headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert "CONTENT-TYPE" in headers and "x" not in headers
    headers.set("set-cookie", "c=3")
    assert headers.items() == [("Content-Type", "text/plain"), ("set-cookie", "c=3")]
    with pytest.raises(KeyError):
        headers["missing"]


def test_response_str_body_is_utf8_with_a_text_content_type():
    """A str body is encoded as UTF-8 and typed text/plain unless a type is given."""
    response = Response(200, body="héllo")
    assert response.body == "héllo".encode("utf-8")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    typed = Response(200, {"Content-Type": "text/html"}, "<p>")
    assert typed.headers.get_all("content-type") == ["text/html"]


@pytest.mark.parametrize("headers", [
    [("X-Evil", "a\r\nSet-Cookie: x=1")],
    [("Bad Name", "x")],
    [("X", "nul\x00")],
])
def test_response_refuses_fields_that_would_split_the_head(headers):
    """CR, LF or NUL in a value, or a name that is not a token, raise ValueError."""
    with pytest.raises(ValueError, match="bad name or a control character"):
        Response(200, headers)


@pytest.mark.parametrize("status", [99, 600, "200", 200.0])
def test_response_status_must_be_an_int_in_range(status):
    """A status outside 100..599, or not an int, raises ValueError."""
    with pytest.raises(ValueError, match="status"):
        Response(status)


def test_request_made_by_hand_parses_its_query_and_json():
    """query_params and json() work without a connection; respond() says why it cannot."""
    request = Request("POST", "/x?a=1&a=2&b=", "/x", "a=1&a=2&b=", body=b'{"k": [1]}')
    assert request.query_params == {"a": ["1", "2"], "b": [""]}
    assert request.json() == {"k": [1]}
    with pytest.raises(RuntimeError, match="no connection"):
        request.respond(Response(200))


def test_response_json_sets_type_and_body():
    """Response.json encodes the value and types it application/json."""
    response = Response.json({"ok": True}, status=201)
    assert (response.status, response.body) == (201, b'{"ok": true}')
    assert response.headers["content-type"] == "application/json"
