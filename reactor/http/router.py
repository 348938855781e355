"""The HTTP router: a request's method and path -> its handler and path parameters.

::

    app = Router()

    @app.route("/items/{id}", methods=["GET", "POST"])
    def item(request):
        return Response(200, body="item %s" % request.params["id"])

A pattern is a path whose segments may be ``{name}`` (one segment, no
``/``) or, last, ``{name:path}`` (the rest of the path, slashes and all:
a static-file mount). ``find`` answers one of three ways::

    (route, params)          a route matches the path and allows the method
    (None, None)             no route matches the path        -> 404
    (None, "GET, HEAD")      routes match, not this method    -> 405 + Allow

HEAD is served by a GET route when no route names HEAD (the server then
sends the head without the body, RFC 9110 9.3.2).

Discussion: lookup cost. Paths without parameters (``/``, ``/health``)
are one dict lookup, which is what a benchmark's hello route and most health
checks hit. Patterns with parameters are tried in the order they were added,
one compiled regex each: linear in the number of such routes, which is fine
for the tens of routes a socket server has (a radix tree would be the next
step, as in Go's httprouter, at the cost of a page of code).
"""

import re
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

Handler = Callable[[Any], Any]

_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z_0-9]*)(:path)?\}")


class Route:
    """One handler and how it wants its requests: the methods, the body buffered or streamed."""

    __slots__ = ("pattern", "handler", "methods", "stream_body", "kind", "options")

    def __init__(self, pattern: str, handler: Handler, methods: Iterable[str],
                 stream_body: bool = False, kind: str = "http",
                 options: Optional[Dict[str, Any]] = None) -> None:
        self.pattern, self.handler = pattern, handler
        self.methods = frozenset(methods)
        self.stream_body, self.kind = stream_body, kind
        self.options: Dict[str, Any] = options or {}

    def __repr__(self) -> str:
        return "<Route %s %s>" % ("|".join(sorted(self.methods)), self.pattern)


class Router:
    """Map method and path to a :class:`Route`; see the module docstring."""

    def __init__(self) -> None:
        self._exact: Dict[str, Dict[str, Route]] = {}          # path -> method -> route
        self._patterns: List[Tuple[Any, Dict[str, Route]]] = []  # (regex, method -> route)
        self._regexes: Dict[str, Dict[str, Route]] = {}        # pattern text -> its methods

    def route(self, pattern: str, methods: Iterable[str] = ("GET",), *,
              stream_body: bool = False) -> Callable[[Handler], Handler]:
        """Return a decorator that adds its function as the handler of ``pattern``.

        ``stream_body=True`` calls the handler as soon as the head has
        arrived, and the handler takes the body with ``request.read_body``.
        Raises ValueError for a malformed pattern or a method/pattern pair
        that is already routed.
        """
        def add(handler: Handler) -> Handler:
            self.add_route(pattern, handler, methods, stream_body=stream_body)
            return handler
        return add

    def websocket(self, pattern: str, *, subprotocols: Iterable[str] = (),
                  max_message_bytes: Optional[int] = None,
                  compression: bool = True) -> Callable[[Handler], Handler]:
        """Return a decorator that makes ``pattern`` a WebSocket endpoint.

        The decorated function (or a ``WebSocketProtocol`` class) is called
        with the upgrade ``Request`` and returns the connection's protocol,
        or None to refuse with 403. ``subprotocols`` are offered in the
        server's order of preference; ``compression`` allows
        permessage-deflate when the client offers it (browsers do).
        """
        def add(factory: Handler) -> Handler:
            self.add_route(pattern, factory, ["GET"], kind="websocket", options=dict(
                subprotocols=tuple(subprotocols), max_message_bytes=max_message_bytes,
                compression=compression))
            return factory
        return add

    def add_route(self, pattern: str, handler: Handler, methods: Iterable[str] = ("GET",), *,
                  stream_body: bool = False, kind: str = "http",
                  options: Optional[Dict[str, Any]] = None) -> Route:
        """Add ``handler`` for ``pattern`` and ``methods``; return its Route (see ``route``)."""
        if isinstance(methods, str):
            raise ValueError("methods must be a list of names, like [%r], not a string"
                             % methods)
        methods = [method.upper() for method in methods]
        if not methods:
            raise ValueError("route %r has no methods" % pattern)
        route = Route(pattern, handler, methods, stream_body, kind, options)
        if not pattern.startswith("/"):
            raise ValueError("a route pattern starts with '/', got %r" % pattern)
        if _PARAMETER.search(pattern) is None and "{" not in pattern:
            table = self._exact.setdefault(pattern, {})
        else:
            table = self._regexes.get(pattern)
            if table is None:
                table = self._regexes[pattern] = {}
                self._patterns.append((_compile(pattern), table))
        for method in methods:
            if method in table:
                raise ValueError("%s %s is routed twice" % (method, pattern))
            table[method] = route
        return route

    def find(self, method: str, path: str) -> Tuple[Optional[Route], Any]:
        """Return ``(route, params)``, ``(None, None)`` for 404 or ``(None, allow)`` for 405."""
        # Hot path: once per request; a parameterless path is one dict lookup.
        table = self._exact.get(path)
        params: Dict[str, str] = {}
        if table is None:
            for regex, candidates in self._patterns:
                match = regex.fullmatch(path)
                if match is not None:
                    table, params = candidates, match.groupdict()
                    break
            else:
                return None, None
        route = table.get(method)
        if route is None and method == "HEAD":
            route = table.get("GET")
        if route is None:
            return None, allowed_methods(table)
        return route, params

    def routes(self) -> List[Route]:
        """Return every route, exact paths first, each once."""
        seen: List[Route] = []
        for table in list(self._exact.values()) + [table for _, table in self._patterns]:
            for route in table.values():
                if route not in seen:
                    seen.append(route)
        return seen


def allowed_methods(table: Dict[str, Route]) -> str:
    """Return the Allow header's value for the methods of one path (HEAD with GET)."""
    methods = set(table)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _compile(pattern: str) -> Any:
    """Turn ``/items/{id}/{rest:path}`` into a regex with named groups."""
    parts, position = [], 0
    for match in _PARAMETER.finditer(pattern):
        literal = pattern[position:match.start()]
        if "{" in literal or "}" in literal:
            raise ValueError("bad parameter in route pattern %r (use {name} or {name:path})"
                             % pattern)
        parts.append(re.escape(literal))
        if match.group(2):
            if match.end() != len(pattern):
                raise ValueError("{%s:path} must end the pattern %r" % (match.group(1), pattern))
            parts.append("(?P<%s>.*)" % match.group(1))
        else:
            parts.append("(?P<%s>[^/]+)" % match.group(1))
        position = match.end()
    tail = pattern[position:]
    if "{" in tail or "}" in tail:
        raise ValueError("bad parameter in route pattern %r (use {name} or {name:path})"
                         % pattern)
    parts.append(re.escape(tail))
    try:
        return re.compile("".join(parts))
    except re.error as exc:                       # a name used twice
        raise ValueError("bad route pattern %r: %s" % (pattern, exc)) from None
