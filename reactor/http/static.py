"""Serving files from one directory: a handler that never hands out a byte from outside it.

``StaticFiles(root)`` is a plain handler, ``static(request) -> Response``,
with no socket in sight: a router calls it for GET and HEAD, a test calls it
with a ``Request`` made by hand. The body of a 200 or 206 is a ``FileBody``
over the open file, which the server sends with ``os.sendfile`` and closes.

The main idea: the request path is *checked, not cleaned*. We split
``request.raw_path`` (still percent-encoded) on the slashes the client sent,
then decode each segment and refuse any that could mean something to the
filesystem. Cleaning (collapsing ``..``, merging ``//``, decoding ``%2f``)
is how traversal bugs are born: every normaliser disagrees with another.
What survives is joined under root, resolved with ``os.path.realpath``
(every symlink followed), and must lie inside ``realpath(root) + os.sep``;
the separator keeps ``/srv/site-evil`` from passing as inside ``/srv/site``.
Either check alone stops a traversal spelled in the path; only the second
stops a symlink.

400: the path is malformed or only an attack would spell it so; 404: well
formed, but nothing is served there (and we do not say why)::

    raw path not starting with "/", or not visible ASCII       400
    "%" not followed by two hex digits                         400
    a segment that is not UTF-8 (overlong %c0%ae included)     400
    a segment "", "." or ".." ("//x", "%2e%2E", any case)      400
    a decoded "/", backslash, NUL or other control character   400
    a segment starting with "." (dotfiles: .git, .env)         404
    resolves outside root (a symlink pointing out)             404
    missing, not a regular file, a directory with no index     404
    exists but the process may not read it                     403
    a directory without its trailing slash                     301 to "dir/"

Discussion: a directory without its slash. Serving the index at ``/docs``
would resolve the page's relative links against ``/``; like nginx we
redirect to ``/docs/``. (Refusing empty segments means the Location can
never be ``//evil.example``.) There is never a directory listing.

Discussion: HEAD gets GET's header fields, an explicit ``Content-Length``
(the server keeps it) and an empty body; no file is opened. A GET of an
empty file gets ``b""`` rather than a zero-length ``FileBody``.

Validators: a strong ``ETag`` ``"<size hex>-<mtime_ns hex>"`` and
``Last-Modified``. ``If-None-Match`` (``*`` or a list, weak comparison)
alone decides a 304 when present; otherwise a parseable
``If-Modified-Since`` does. ``Range`` (GET only) serves one span; several
spans or a malformed field get the whole file with 200, as RFC 9110 14.2
allows, so there are no multipart bodies. ``If-Range`` (the strong ETag or
the exact Last-Modified) must match for ``Range`` to apply.

Small files are kept: a GET of a file up to ``SMALL_FILE_BYTES`` is read
once and its whole 200 answer kept, keyed by the raw path, at most
``CACHE_ENTRIES`` of them. Each later plain GET or HEAD (no conditional or
Range field) costs one ``os.stat`` of the resolved path: the answer is
reused only while device, inode, size and mtime are unchanged, so an edited
file, or a path swapped for a symlink to some other file, is served afresh
through every check above (nginx's ``open_file_cache`` is the model).
Larger files always go out with ``sendfile``.

Limits, honestly: a file swapped for a symlink between the check and the
open is caught (``O_NOFOLLOW`` on the resolved path); a *directory* swapped
in that window is not (that needs an ``openat`` walk per segment, and write
access inside root to exploit). Text types get ``charset=utf-8``: we assume
the files are UTF-8.
"""

import calendar
import email.utils
import mimetypes
import os
import re
import stat
from http import HTTPStatus
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote_to_bytes

from .messages import FileBody, Headers, Request, Response

_VISIBLE_ASCII = re.compile(r"[!-~]*")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_FORBIDDEN_CHARACTER = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")
_RANGE = re.compile(r"bytes=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.IGNORECASE)
_ENTITY_TAG = re.compile(r'(?:W/)?("[^"]*")')
_MAX_RANGE_DIGITS = 18          # 10**18 bytes is past any file; longer numbers saturate
SMALL_FILE_BYTES = 64 * 1024    #: files up to this size are read once and their answer kept
CACHE_ENTRIES = 256             #: kept answers (at most 16 MiB of small files)
_FRESH_ONLY = frozenset(("range", "if-range", "if-none-match", "if-modified-since"))

# A fresh MimeTypes starts from Python's built-in map, not the host's
# /etc/mime.types (older Pythons fold those in), so answers vary less by machine.
_MIME_TYPES = mimetypes.MimeTypes()
_UTF8_TYPES = ("application/javascript", "application/json")

# Opening a FIFO for reading blocks until a writer comes; O_NONBLOCK makes the
# open return at once, so a file swapped for a FIFO cannot hang the loop.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)


class StaticFiles:
    """A handler serving the files under ``root`` for GET and HEAD.

    ``index`` is the file a directory path (ending in ``/``) maps to. Raises
    ValueError if ``root`` is not a directory. Each call returns a
    :class:`Response`; refusals are small ``text/plain`` responses, never
    exceptions. The module docstring has the table of what is refused.
    """

    __slots__ = ("root", "index", "_root_prefix", "_kept")

    def __init__(self, root: Any, *, index: str = "index.html") -> None:
        real_root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(real_root):
            raise ValueError("static root %r is not a directory" % (root,))
        self.root, self.index = real_root, index
        # "/srv/site" + sep, so "/srv/site-evil/x" does not count as inside;
        # a root of "/" already ends in the separator.
        self._root_prefix = real_root if real_root.endswith(os.sep) else real_root + os.sep
        # raw path -> (resolved path, (dev, ino, size, mtime_ns), GET answer, HEAD answer)
        self._kept: Dict[str, Tuple[str, Tuple[int, ...], Response, Response]] = {}

    def __call__(self, request: Request) -> Response:
        """Return the file ``request.raw_path`` names, a 304/206/416, or a refusal."""
        # Hot path: a kept small file costs one stat and a scan of the field names.
        kept = self._kept.get(request.raw_path)
        if kept is not None and not any(name.lower() in _FRESH_ONLY for name, _ in request.headers):
            try:
                info = os.stat(kept[0])
            except OSError:
                info = None
            if info is not None and _identity(info) == kept[1]:
                return kept[2] if request.method == "GET" else kept[3]
            del self._kept[request.raw_path]
        try:
            return self._serve(request)
        except _Answer as answer:
            body = "%d %s\n" % (answer.status, HTTPStatus(answer.status).phrase)
            return Response(answer.status, answer.headers, body)

    def _serve(self, request: Request) -> Response:
        segments, wants_directory = _split_raw_path(request.raw_path)
        path = self._resolve(segments)
        info = _stat(path)
        if stat.S_ISDIR(info.st_mode):
            if not wants_directory:
                query = "?" + request.query if request.query else ""
                raise _Answer(301, [("Location", request.raw_path + "/" + query)])
            path = self._resolve(segments + [self.index])
            info = _stat(path)
        elif wants_directory:
            raise _Answer(404)                  # "file.txt/" names no directory
        if not stat.S_ISREG(info.st_mode):
            raise _Answer(404)
        if request.method == "HEAD":
            return _respond(request.headers, path, info, None)
        file = _open_regular(path)
        try:
            info = os.fstat(file.fileno())
            response = _respond(request.headers, path, info, file)
            if response.status == 200 and 0 < info.st_size <= SMALL_FILE_BYTES:
                response = self._keep(request.raw_path, path, info, response)
        except BaseException:
            file.close()
            raise
        if type(response.body) is not FileBody:
            file.close()                        # 304, empty or kept: the server will not close it
        return response

    def _keep(self, raw_path: str, path: str, info: os.stat_result,
              response: Response) -> Response:
        """Read a small file's bytes and keep its answers (GET and HEAD); return GET's."""
        body = response.body
        content = os.pread(body.file.fileno(), body.length, 0)
        if len(content) != body.length:
            return response                     # changing under us: send it the slow way
        fields = response.headers.items()
        answer = Response(200, fields, content)
        if len(self._kept) >= CACHE_ENTRIES:
            del self._kept[next(iter(self._kept))]        # the oldest
        self._kept[raw_path] = (path, _identity(info), answer, Response(200, fields, b""))
        return answer

    def _resolve(self, segments: List[str]) -> str:
        """Return the real path of ``segments`` under root, or refuse with 404 if it escapes."""
        real = os.path.realpath(os.path.join(self.root, *segments))
        if real != self.root and not real.startswith(self._root_prefix):
            raise _Answer(404)
        return real


# -- private helpers ------------------------------------------------------------

class _Answer(Exception):
    """A short answer instead of the file (a refusal, a redirect), caught in ``__call__``."""

    def __init__(self, status: int, headers: Optional[List[Tuple[str, str]]] = None) -> None:
        super().__init__(status)
        self.status, self.headers = status, headers


def _split_raw_path(raw_path: str) -> Tuple[List[str], bool]:
    """Return the decoded segments and whether the path ended in ``/``, or refuse."""
    if not raw_path.startswith("/") or _VISIBLE_ASCII.fullmatch(raw_path) is None or \
            _BAD_PERCENT.search(raw_path):
        raise _Answer(400)
    parts = raw_path[1:].split("/")
    wants_directory = parts[-1] == ""
    if wants_directory:
        parts.pop()                             # "/" itself gives no segments
    segments = []
    for part in parts:
        try:
            name = unquote_to_bytes(part).decode("utf-8")
        except UnicodeDecodeError:
            raise _Answer(400) from None
        if name in ("", ".", "..") or _FORBIDDEN_CHARACTER.search(name):
            raise _Answer(400)
        if name.startswith("."):
            raise _Answer(404)
        segments.append(name)
    return segments, wants_directory


def _identity(info: os.stat_result) -> Tuple[int, ...]:
    """Return what tells one version of one file from another: device, inode, size, mtime."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except PermissionError:
        raise _Answer(403) from None
    except (OSError, ValueError):
        raise _Answer(404) from None


def _open_regular(path: str) -> Any:
    """Open ``path`` read-only as a binary file; refuse unless it is still a regular file."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except PermissionError:
        raise _Answer(403) from None
    except OSError:
        raise _Answer(404) from None            # gone, or swapped for a symlink (ELOOP)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _Answer(404)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _respond(headers: Headers, path: str, info: os.stat_result, file: Any) -> Response:
    """Return the 304, 416, 206 or 200 for a regular file; ``file`` is None for HEAD."""
    size = info.st_size
    etag = '"%x-%x"' % (size, info.st_mtime_ns)
    last_modified = email.utils.formatdate(info.st_mtime, usegmt=True)
    fields = [("ETag", etag), ("Last-Modified", last_modified)]
    if _is_not_modified(headers, etag, info.st_mtime):
        return Response(304, fields)
    fields += [("Content-Type", _content_type(path)), ("Accept-Ranges", "bytes"),
               ("X-Content-Type-Options", "nosniff")]
    status, start, length = 200, 0, size
    range_value = headers.get("Range")
    if file is not None and range_value is not None and \
            _if_range_holds(headers.get("If-Range"), etag, last_modified):
        span = _parse_range(range_value, size)
        if span is not None:
            status, start, length = 206, span[0], span[1] - span[0] + 1
            fields.append(("Content-Range", "bytes %d-%d/%d" % (span[0], span[1], size)))
    fields.append(("Content-Length", str(length)))
    body = FileBody(file, start, length) if file is not None and length else b""
    return Response(status, fields, body)


def _is_not_modified(headers: Headers, etag: str, mtime_seconds: float) -> bool:
    """Apply If-None-Match, else If-Modified-Since (RFC 9110 13.2.2 order)."""
    if_none_match = headers.get_all("If-None-Match")
    if if_none_match:
        joined = ",".join(if_none_match)
        if joined.strip() == "*":
            return True
        return etag in _ENTITY_TAG.findall(joined)   # weak comparison: W/ is ignored
    since_seconds = _parse_http_date(headers.get("If-Modified-Since"))
    return since_seconds is not None and int(mtime_seconds) <= since_seconds


def _if_range_holds(value: Optional[str], etag: str, last_modified: str) -> bool:
    """Return True if Range may apply: no If-Range, or it names this exact version."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return value == etag                    # strong comparison
    return not value.startswith("W/") and value == last_modified


def _parse_range(value: str, size: int) -> Optional[Tuple[int, int]]:
    """Return the one ``(first, last)`` byte span, None to ignore Range, or refuse with 416."""
    match = _RANGE.fullmatch(value)
    if match is None:
        return None                             # several ranges, another unit, or garbage
    first_digits, last_digits = match.groups()
    if not first_digits and not last_digits:
        return None
    unsatisfiable = _Answer(416, [("Content-Range", "bytes */%d" % size)])
    if not first_digits:                        # "-n": the last n bytes
        suffix = _number(last_digits)
        if suffix == 0:
            raise unsatisfiable
        if size == 0:
            return None                         # no Content-Range can say "0 bytes of 0"
        return max(0, size - suffix), size - 1
    first = _number(first_digits)
    last = _number(last_digits) if last_digits else size - 1
    if last_digits and last < first:
        return None                             # invalid, so ignored (RFC 9110 14.1.1)
    if first >= size:
        raise unsatisfiable
    return first, min(last, size - 1)


def _number(digits: str) -> int:
    # int() of thousands of digits raises on 3.11+; no file needs more than 18.
    return int(digits) if len(digits) <= _MAX_RANGE_DIGITS else 10 ** _MAX_RANGE_DIGITS


def _parse_http_date(text: Optional[str]) -> Optional[int]:
    """Return an HTTP-date as Unix seconds, or None if it is absent or does not parse."""
    try:
        parts = email.utils.parsedate_tz(text) if text else None
        if parts is None:
            return None
        return calendar.timegm(parts[:6] + (0, 0, 0)) - (parts[9] or 0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _content_type(path: str) -> str:
    mime_type, encoding = _MIME_TYPES.guess_type(path, strict=False)
    if mime_type is None or encoding is not None:
        return "application/octet-stream"       # ".tar.gz" is gzip bytes, not a tar
    if mime_type.startswith("text/") or mime_type in _UTF8_TYPES:
        return mime_type + "; charset=utf-8"
    return mime_type
