"""What an HTTP handler sees and returns: ``Headers``, ``Request``, ``Response``.

These are plain data, with no socket in sight, so a handler can be tested
by calling it with a ``Request`` made by hand. The connection that carries
them is ``server.py``'s; a request only keeps a reference back to it for
the three things a handler may ask of the connection later::

    request.respond(response)            answer later (a deferred reply)
    request.read_body(on_data, on_end)   take a streamed body as it arrives
    request.start_response(status, ...)  push a response body as it is made

A ``Response`` body is one of: ``bytes`` (or ``str``, sent as UTF-8), an
iterable of ``bytes`` chunks (pulled only as fast as the socket drains:
backpressure for free), or a :class:`FileBody` (sent with ``os.sendfile``
where the platform has it).

Discussion: header storage. ``Headers`` keeps the fields as a list of
``(name, value)`` pairs and searches it, instead of building a dict per
request. A request has a handful of fields and a handler asks for one or two,
so the scan is cheaper than the dict it would replace, and the list is the
very one the parser made (no copy). Names from the parser are already lower
case; names a handler sets keep their case on the wire.
"""

import json
import re
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union
from urllib.parse import parse_qs, urlsplit

from .parser import HTTPError

_TOKEN_ONLY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")      # RFC 9110 5.6.2
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")              # CTLs but HTAB

HeadersLike = Union["Headers", Dict[str, str], Iterable[Tuple[str, str]], None]


class Headers:
    """A case-insensitive multi-map of header fields that keeps their order and repeats.

    ``headers["content-type"]`` and ``get()`` return the first value;
    ``get_all()`` every value of a name; iterating gives ``(name, value)``
    pairs in order.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: HeadersLike = None) -> None:
        if fields is None:
            self._fields: List[Tuple[str, str]] = []
        elif isinstance(fields, Headers):
            self._fields = list(fields._fields)
        elif isinstance(fields, dict):
            self._fields = list(fields.items())
        else:
            self._fields = [(name, value) for name, value in fields]

    @classmethod
    def from_parser(cls, fields: List[Tuple[str, str]]) -> "Headers":
        """Wrap the parser's list of ``(lowercased name, value)`` without copying it."""
        headers = cls.__new__(cls)
        headers._fields = fields
        return headers

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Return the first value of ``name`` (any case), or ``default``."""
        name = name.lower()
        for field, value in self._fields:
            if field == name or field.lower() == name:
                return value
        return default

    def get_all(self, name: str) -> List[str]:
        """Return every value of ``name``, in order (``[]`` if absent)."""
        name = name.lower()
        return [value for field, value in self._fields if field.lower() == name]

    def add(self, name: str, value: str) -> None:
        """Append a field, keeping any earlier ones of the same name (``Set-Cookie``)."""
        self._fields.append((name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of ``name`` with one, at the end."""
        self.remove(name)
        self._fields.append((name, value))

    def remove(self, name: str) -> None:
        """Drop every field of ``name``; no error if there is none."""
        name = name.lower()
        self._fields = [field for field in self._fields if field[0].lower() != name]

    def items(self) -> List[Tuple[str, str]]:
        """Return the ``(name, value)`` pairs, in order."""
        return list(self._fields)

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(n.lower(), v) for n, v in self._fields] == \
            [(n.lower(), v) for n, v in other._fields]

    def __repr__(self) -> str:
        return "Headers(%r)" % (self._fields,)


class FileBody:
    """A response body read from an open file: ``length`` bytes from ``offset``.

    The server owns ``file`` once the response is returned and closes it when
    the body is sent or the connection ends.
    """

    __slots__ = ("file", "offset", "length")

    def __init__(self, file: Any, offset: int, length: int) -> None:
        self.file, self.offset, self.length = file, offset, length


class Response:
    """A status, header fields and a body: what a handler returns.

    ``body`` is ``bytes``, ``str`` (UTF-8; Content-Type defaults to
    ``text/plain; charset=utf-8``), an iterable of ``bytes`` chunks (sent
    chunked, pulled as the socket drains), or a :class:`FileBody`. The server
    adds Date, Server, Content-Length and Connection. Raises ValueError for a
    status outside 100..599 or a field that would break the head (a name
    that is not a token, a CR or LF in a value): a handler's mistake must not
    become a response-splitting hole.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int = 200, headers: HeadersLike = None, body: Any = b"", *,
                 content_type: Optional[str] = None) -> None:
        if type(status) is not int or not 100 <= status <= 599:
            raise ValueError("status must be an int in 100..599, got %r" % (status,))
        self.status = status
        self.headers = headers if type(headers) is Headers else Headers(headers)
        for name, value in self.headers:
            if type(name) is not str or type(value) is not str:
                raise TypeError("header %r: %r: names and values must be str (join several "
                                "values with ', ', or add the field once per value)"
                                % (name, value))
            if _TOKEN_ONLY.fullmatch(name) is None or _CONTROL.search(value):
                raise ValueError("header %r: %r has a bad name or a control character in its "
                                 "value" % (name, value))
        if type(body) is str:
            body = body.encode("utf-8")
            if content_type is None and "content-type" not in self.headers:
                content_type = "text/plain; charset=utf-8"
        elif body is None:
            body = b""
        if content_type is not None:
            if _CONTROL.search(content_type):
                raise ValueError("control character in content_type %r" % content_type)
            self.headers.set("Content-Type", content_type)
        self.body = body

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: HeadersLike = None) -> "Response":
        """Return ``value`` as an ``application/json`` response."""
        return cls(status, headers, json.dumps(value).encode("utf-8"),
                   content_type="application/json")

    def __repr__(self) -> str:
        kind = type(self.body).__name__
        return "<Response %d %s>" % (self.status, kind)


class Request:
    """One request as a handler sees it.

    ``method``, ``target`` (as sent), ``path`` (percent-decoded), ``raw_path``
    (as sent), ``query`` (the raw string after ``?``), ``version``
    (``HTTP/1.1``), ``headers`` (:class:`Headers`), ``body`` (``bytes``; empty
    for a route that streams its body), ``client`` (the peer's address),
    ``params`` (path parameters of the route, as ``str``).
    """

    __slots__ = ("method", "target", "path", "raw_path", "query", "version", "headers",
                 "body", "client", "params", "_connection")

    def __init__(self, method: str, target: str, path: str, query: str = "",
                 headers: HeadersLike = None, body: bytes = b"", client: Any = None,
                 version: str = "HTTP/1.1", raw_path: Optional[str] = None,
                 params: Optional[Dict[str, str]] = None, connection: Any = None) -> None:
        self.method, self.target, self.path, self.query = method, target, path, query
        self.headers = headers if type(headers) is Headers else Headers(headers)
        self.body, self.client, self.version = body, client, version
        self.raw_path = path if raw_path is None else raw_path
        self.params: Dict[str, str] = {} if params is None else params
        self._connection = connection

    @property
    def query_params(self) -> Dict[str, List[str]]:
        """Return the query string parsed: name -> every value given, in order."""
        return parse_qs(self.query, keep_blank_values=True)

    def text(self, encoding: str = "utf-8") -> str:
        """Return the body decoded (``UnicodeDecodeError`` if it is not ``encoding``)."""
        return self.body.decode(encoding)

    def json(self) -> Any:
        """Return the body parsed as JSON; a body that is not JSON raises HTTPError 400.

        Uncaught in a handler, that error answers 400 with its message.
        """
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, "the body is not JSON (%s)" % exc) from None

    # -- asking the connection (a Request made by hand has none) -------------------

    def respond(self, response: Response) -> None:
        """Answer now, for a handler that returned None to answer later."""
        self._require_connection().respond(self, response)

    def read_body(self, on_data: Callable[[bytes], Any], on_end: Callable[[], Any]) -> None:
        """Receive a streamed body: ``on_data(chunk)`` per piece, then ``on_end()``.

        Only for routes declared with ``stream_body=True``. Pieces already
        received are handed over at once. ``pause_body()`` stops reading
        from the socket (TCP then slows the client down) until ``resume_body()``.
        """
        self._require_connection().read_body(self, on_data, on_end)

    def pause_body(self) -> None:
        """Stop reading the body from the socket until ``resume_body()``."""
        self._require_connection().pause_body()

    def resume_body(self) -> None:
        """Read the body again after ``pause_body()``."""
        self._require_connection().resume_body()

    def start_response(self, status: int = 200, headers: HeadersLike = None) -> Any:
        """Send the head now and return a writer to push the body in chunks.

        The writer has ``write(data)``, ``end()``, ``is_paused()`` and
        ``on_resume`` (called when the socket drains after a pause): a live
        stream writes while it is not paused.
        """
        return self._require_connection().start_response(self, Response(status, headers))

    def _require_connection(self) -> Any:
        if self._connection is None:
            raise RuntimeError("this Request has no connection (made by hand)")
        return self._connection

    def __repr__(self) -> str:
        return "<Request %s %s>" % (self.method, self.target)


def as_response(result: Any) -> Optional[Response]:
    """Return what a handler returned as a Response: str and bytes as a 200, dict and list as
    JSON; None for anything else (the server answers 500 and logs it)."""
    if isinstance(result, (bytes, str)):
        return Response(200, None, result)
    if isinstance(result, (dict, list)):
        return Response.json(result)
    return None


def origin_path(target: str) -> Optional[str]:
    """Return the path of an absolute-form target (``http://host/p``, RFC 9112 3.2.2) or of
    ``*``; None for anything else (a bad target)."""
    if target == "*":
        return "*"
    if not target.startswith(("http://", "https://")):
        return None
    return urlsplit(target).path or "/"
