"""StaticFiles (reactor/http/static.py): files under a root, validators, ranges, and no way out."""

import os
from urllib.parse import unquote

import pytest

from reactor.http.messages import FileBody, Request
from reactor.http import static
from reactor.http.static import StaticFiles

SECRET = b"TOP-SECRET-OUTSIDE-ROOT"
HELLO = b"hello, world\n"
MTIME_NS = 1700000000123456789          # Tue, 14 Nov 2023 22:13:20 GMT
LAST_MODIFIED = "Tue, 14 Nov 2023 22:13:20 GMT"
MIB = 1024 * 1024


@pytest.fixture
def site(tmp_path):
    """A root ``site/`` with a secret beside it and a ``site-evil/`` that shares its prefix."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "site-evil").mkdir()
    (tmp_path / "site-evil" / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    root.mkdir()
    files = {
        "index.html": b"<h1>home</h1>\n", "hello.txt": HELLO, "style.css": b"p {}\n",
        "logo.png": b"\x89PNG", "noext": b"?", "archive.tar.gz": b"\x1f\x8b", "empty.txt": b"",
        "with space.txt": b"spaced\n", "caf\u00e9 \u2615.txt": b"unicode\n", ".env": SECRET,
        "docs/index.html": b"<h1>docs</h1>\n", "nodir/file.txt": b"x", ".git/config": SECRET,
        "big.bin": bytes(range(256)) * (MIB // 256),
    }
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        os.utime(str(path), ns=(MTIME_NS, MTIME_NS))
    os.symlink(str(tmp_path / "secret.txt"), str(root / "link-out"))
    os.symlink(str(tmp_path), str(root / "dir-out"))
    os.symlink("../site-evil/secret.txt", str(root / "evil-link"))
    os.symlink("../site-evil", str(root / "evil-dir"))
    os.symlink("hello.txt", str(root / "link-in"))
    if hasattr(os, "mkfifo"):
        os.mkfifo(str(root / "fifo"))
    return StaticFiles(root)


def call(handler, raw_path, headers=None, method="GET", query=""):
    target = raw_path + ("?" + query if query else "")
    request = Request(method, target, unquote(raw_path, errors="replace"), query, headers,
                      raw_path=raw_path)
    return handler(request)


def body_of(response):
    """Return the bytes a response would send, reading (and closing) a FileBody."""
    body = response.body
    if isinstance(body, FileBody):
        try:
            body.file.seek(body.offset)
            return body.file.read(body.length)
        finally:
            body.file.close()
    return body


def fields(response):
    return dict(response.headers.items())


# -- no byte from outside root --------------------------------------------------

ATTACKS = [
    ("/../secret.txt", 400), ("/%2e%2e/secret.txt", 400), ("/%2E%2e/secret.txt", 400),
    ("/%2E%2e%2fsecret.txt", 400), ("/..%2fsecret.txt", 400), ("/..%2Fsecret.txt", 400),
    ("/..\\secret.txt", 400), ("/%5c..%5csecret.txt", 400), ("/..%5Csecret.txt", 400),
    ("/a/../../secret.txt", 400), ("/docs/../../secret.txt", 400), ("/./../secret.txt", 400),
    ("/.%2e/secret.txt", 400), ("/%2e./secret.txt", 400), ("/docs/.%2e/.%2e/secret.txt", 400),
    ("/..", 400), ("/../site-evil/secret.txt", 400), ("/%2e%2e%2fsite-evil%2fsecret.txt", 400),
    ("//secret.txt", 400), ("///secret.txt", 400), ("//etc/passwd", 400),
    ("/%2fetc%2fpasswd", 400), ("/%00", 400), ("/index.html%00.txt", 400),
    ("/hello.txt%00", 400), ("/%0d%0aSet-Cookie:x", 400), ("/%c0%ae%c0%ae/secret.txt", 400),
    ("/%c0%ae%c0%ae%c0%afsecret.txt", 400), ("/%e0%80%ae%e0%80%ae/secret.txt", 400),
    ("/%", 400), ("/%2", 400), ("/%zz/secret.txt", 400), ("secret.txt", 400),
    ("../secret.txt", 400), ("/caf\u00e9.txt", 400), ("/file:///etc/passwd", 400),
    ("/etc/passwd", 404), ("/%252e%252e/secret.txt", 404), ("/..;/secret.txt", 404),
    ("/a\x00b", 400), ("/with space.txt", 400), ("/%2e%2e%00/secret.txt", 400),
    ("/link-out", 404), ("/dir-out/secret.txt", 404), ("/dir-out/site-evil/secret.txt", 404),
    ("/evil-link", 404), ("/evil-dir/secret.txt", 404), ("/.env", 404), ("/%2eenv", 404),
    ("/.git/config", 404), ("/%2Egit/config", 404), ("/secret.txt", 404),
]


@pytest.mark.parametrize("raw_path, status", ATTACKS, ids=[a for a, _ in ATTACKS])
def test_an_attack_path_is_refused_without_a_byte_of_the_secret(site, raw_path, status):
    """Traversal, encoded separators, NULs, bad UTF-8 and escaping symlinks get 400 or 404."""
    response = call(site, raw_path)
    body = body_of(response)
    assert (response.status, SECRET in body) == (status, False)
    assert not isinstance(response.body, FileBody)


def test_the_attack_table_is_large():
    """The table above keeps at least 20 attacks, of both refusal kinds."""
    assert len(ATTACKS) >= 20 and {status for _, status in ATTACKS} == {400, 404}


def test_a_symlink_whose_target_shares_the_roots_prefix_is_outside(site):
    """``site-evil`` starts with ``site``: containment compares against ``root + os.sep``."""
    assert os.path.realpath(os.path.join(site.root, "evil-link")).startswith(site.root)
    assert call(site, "/evil-link").status == 404


def test_a_symlink_that_stays_inside_root_is_served(site):
    """A link to a file under root is just another name for it."""
    assert body_of(call(site, "/link-in")) == HELLO


def test_a_refusal_is_a_small_text_response(site):
    """A 400 or 404 names its status in text/plain and never carries a file."""
    for raw_path, expected in (("/%2e%2e/x", b"400 Bad Request\n"), ("/nope", b"404 Not Found\n")):
        response = call(site, raw_path)
        assert (fields(response), response.body) == (
            {"Content-Type": "text/plain; charset=utf-8"}, expected)


def test_a_fifo_is_refused_without_blocking(site):
    """A FIFO under root is not a regular file: 404, and nobody waits for a writer."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    assert call(site, "/fifo").status == 404


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root reads any file")
def test_an_unreadable_file_is_403(site):
    """A file the process may not read is forbidden, not missing."""
    path = os.path.join(site.root, "hello.txt")
    os.chmod(path, 0)
    try:
        assert call(site, "/hello.txt").status == 403
    finally:
        os.chmod(path, 0o644)


def test_a_root_that_is_not_a_directory_is_refused(tmp_path):
    """StaticFiles needs a directory to serve."""
    with pytest.raises(ValueError):
        StaticFiles(tmp_path / "missing")


# -- what maps to what ----------------------------------------------------------

def test_the_root_and_a_directory_with_a_slash_map_to_their_index(site):
    """``/`` serves index.html, ``/docs/`` serves docs/index.html."""
    assert body_of(call(site, "/")) == b"<h1>home</h1>\n"
    assert body_of(call(site, "/docs/")) == b"<h1>docs</h1>\n"


def test_a_directory_without_its_slash_redirects_to_it(site):
    """``/docs`` gets a 301 to ``/docs/``, keeping the query; no file is served."""
    response = call(site, "/docs", query="a=1")
    assert (response.status, fields(response)["Location"]) == (301, "/docs/?a=1")


def test_a_directory_without_an_index_is_404_and_never_listed(site):
    """No index means 404, whatever the directory holds."""
    response = call(site, "/nodir/")
    assert (response.status, b"file.txt" in body_of(response)) == (404, False)


def test_a_file_path_with_a_trailing_slash_is_404(site):
    """``hello.txt/`` names a directory that does not exist."""
    assert call(site, "/hello.txt/").status == 404


def test_percent_encoded_spaces_and_unicode_names_are_served(site):
    """Names are decoded per segment as UTF-8."""
    assert body_of(call(site, "/with%20space.txt")) == b"spaced\n"
    assert body_of(call(site, "/caf%C3%A9%20%E2%98%95.txt")) == b"unicode\n"


@pytest.mark.parametrize("raw_path, content_type", [
    ("/hello.txt", "text/plain; charset=utf-8"), ("/", "text/html; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"), ("/logo.png", "image/png"),
    ("/noext", "application/octet-stream"), ("/archive.tar.gz", "application/octet-stream"),
])
def test_content_type_comes_from_the_extension(site, raw_path, content_type):
    """mimetypes' built-in table; text gets a charset; a compressed file is opaque bytes."""
    response = call(site, raw_path)
    body_of(response)
    assert fields(response)["Content-Type"] == content_type


# -- the 200 and its validators -----------------------------------------------

def test_a_get_has_every_header_and_its_bytes(site):
    """Validators, type, length, ranges and nosniff; a small file's body is its bytes."""
    response = call(site, "/hello.txt")
    etag = '"%x-%x"' % (len(HELLO), MTIME_NS)
    assert response.status == 200
    assert response.headers.items() == [
        ("ETag", etag), ("Last-Modified", LAST_MODIFIED),
        ("Content-Type", "text/plain; charset=utf-8"), ("Accept-Ranges", "bytes"),
        ("X-Content-Type-Options", "nosniff"), ("Content-Length", str(len(HELLO)))]
    assert response.body == HELLO


def test_head_has_the_get_headers_an_empty_body_and_no_open_file(site):
    """HEAD answers with GET's fields, an explicit Content-Length and ``b""``."""
    get, head = call(site, "/hello.txt"), call(site, "/hello.txt", method="HEAD")
    body_of(get)
    assert (head.status, head.headers.items(), head.body) == (200, get.headers.items(), b"")


def test_the_etag_changes_with_size_and_with_mtime(site):
    """A rewrite of the same length with a new mtime, or a new length, is a new version."""
    path = os.path.join(site.root, "hello.txt")
    tags = [fields(call(site, "/hello.txt", method="HEAD"))["ETag"]]
    os.utime(path, ns=(MTIME_NS, MTIME_NS + 1))
    tags.append(fields(call(site, "/hello.txt", method="HEAD"))["ETag"])
    with open(path, "ab") as file:
        file.write(b"!")
    os.utime(path, ns=(MTIME_NS, MTIME_NS + 1))
    tags.append(fields(call(site, "/hello.txt", method="HEAD"))["ETag"])
    assert len(set(tags)) == 3


def test_an_empty_file_is_200_with_an_empty_body(site):
    """Zero bytes: Content-Length 0 and ``b""`` (no zero-length sendfile)."""
    response = call(site, "/empty.txt")
    assert (response.status, fields(response)["Content-Length"], response.body) == (200, "0", b"")


def test_a_mebibyte_file_is_a_file_body_not_bytes_in_memory(site):
    """1 MiB goes out as FileBody(file, 0, 1048576), never read by the handler."""
    response = call(site, "/big.bin")
    body = response.body
    assert (type(body), body.offset, body.length, fields(response)["Content-Length"]) == (
        FileBody, 0, MIB, str(MIB))
    assert body.file.tell() == 0
    assert body_of(response) == bytes(range(256)) * (MIB // 256)


# -- conditional requests -----------------------------------------------------

ETAG = '"%x-%x"' % (len(HELLO), MTIME_NS)


@pytest.mark.parametrize("headers", [
    {"If-None-Match": ETAG}, {"If-None-Match": "W/" + ETAG}, {"If-None-Match": "*"},
    {"If-None-Match": '"other", ' + ETAG}, [("If-None-Match", '"a"'), ("If-None-Match", ETAG)],
    {"If-Modified-Since": LAST_MODIFIED}, {"If-Modified-Since": "Wed, 15 Nov 2023 00:00:00 GMT"},
    {"If-Modified-Since": "Tuesday, 14-Nov-23 22:13:20 GMT"},
    {"If-Modified-Since": "Tue Nov 14 22:13:20 2023"},
])
def test_a_matching_conditional_gives_304_with_validators_and_no_body(site, headers):
    """If-None-Match (weak, lists, ``*``) or If-Modified-Since in any HTTP-date form."""
    for method in ("GET", "HEAD"):
        response = call(site, "/hello.txt", headers, method=method)
        assert (response.status, response.headers.items(), response.body) == (
            304, [("ETag", ETAG), ("Last-Modified", LAST_MODIFIED)], b"")


@pytest.mark.parametrize("headers", [
    {"If-None-Match": '"other"'}, {"If-None-Match": '"other"', "If-Modified-Since": LAST_MODIFIED},
    {"If-None-Match": ""}, {"If-Modified-Since": "Tue, 14 Nov 2023 22:13:19 GMT"},
    {"If-Modified-Since": "yesterday"}, {"If-Modified-Since": ""},
])
def test_a_failing_or_unparseable_conditional_gives_the_file(site, headers):
    """Another tag, an older date, an If-None-Match that overrides a date, or garbage: 200."""
    response = call(site, "/hello.txt", headers)
    assert (response.status, body_of(response)) == (200, HELLO)


# -- ranges ---------------------------------------------------------------------

@pytest.mark.parametrize("range_value, first, last", [
    ("bytes=0-4", 0, 4), ("bytes=7-", 7, 12), ("bytes=-3", 10, 12), ("bytes=12-12", 12, 12),
    ("bytes=5-999999", 5, 12), ("bytes=-999", 0, 12), ("BYTES=0-0", 0, 0),
    ("bytes= 1-2 ", 1, 2), ("bytes=0-" + "9" * 5000, 0, 12),
])
def test_a_single_range_gives_206_with_its_span(site, range_value, first, last):
    """``a-b``, ``a-`` and ``-n``, clipped to the file, answer with Content-Range."""
    response = call(site, "/hello.txt", {"Range": range_value})
    assert (response.status, fields(response)["Content-Range"],
            fields(response)["Content-Length"], response.body.length) == (
        206, "bytes %d-%d/13" % (first, last), str(last - first + 1), last - first + 1)
    assert body_of(response) == HELLO[first:last + 1]


def test_a_range_inside_a_mebibyte_reads_only_its_span(site):
    """The FileBody's offset and length are the range; the bytes are the file's."""
    response = call(site, "/big.bin", {"Range": "bytes=1000-1999"})
    assert (response.status, response.body.offset, response.body.length) == (206, 1000, 1000)
    assert body_of(response) == (bytes(range(256)) * 8)[1000:2000]


@pytest.mark.parametrize("path, range_value", [
    ("/hello.txt", "bytes=13-"), ("/hello.txt", "bytes=100-200"), ("/hello.txt", "bytes=-0"),
    ("/empty.txt", "bytes=0-"),
])
def test_an_unsatisfiable_range_gives_416_with_the_size(site, path, range_value):
    """First byte past the end, or an empty suffix: 416 and ``bytes */SIZE``."""
    response = call(site, path, {"Range": range_value})
    size = os.path.getsize(os.path.join(site.root, path[1:]))
    assert (response.status, fields(response)["Content-Range"]) == (416, "bytes */%d" % size)


@pytest.mark.parametrize("range_value", [
    "bytes=0-1,3-4", "bytes=0-1, 5-", "bytes=0-1,", "bytes=5-2", "bytes=-", "bytes=abc",
    "items=0-1", "bytes 0-1", "bytes=\u0661-", "",
])
def test_several_ranges_or_a_malformed_range_give_the_whole_file(site, range_value):
    """RFC 9110 lets a server ignore Range; we do rather than write multipart."""
    response = call(site, "/hello.txt", {"Range": range_value})
    assert (response.status, "Content-Range" in fields(response), body_of(response)) == (
        200, False, HELLO)


def test_a_suffix_range_of_an_empty_file_gives_the_empty_file(site):
    """No Content-Range can describe zero bytes of zero, so the Range is ignored."""
    response = call(site, "/empty.txt", {"Range": "bytes=-5"})
    assert (response.status, response.body) == (200, b"")


def test_head_ignores_range(site):
    """Range applies to GET only; HEAD gets the 200's fields."""
    response = call(site, "/hello.txt", {"Range": "bytes=0-1"}, method="HEAD")
    assert (response.status, fields(response)["Content-Length"], response.body) == (
        200, "13", b"")


@pytest.mark.parametrize("if_range, status", [
    (ETAG, 206), (LAST_MODIFIED, 206), ('"other"', 200), ("W/" + ETAG, 200),
    ("Tue, 14 Nov 2023 22:13:21 GMT", 200),
])
def test_if_range_lets_the_range_through_only_for_this_version(site, if_range, status):
    """The strong ETag or the exact Last-Modified keeps the range; anything else sends it all."""
    response = call(site, "/hello.txt", {"Range": "bytes=0-4", "If-Range": if_range})
    expected = HELLO[:5] if status == 206 else HELLO
    assert (response.status, body_of(response)) == (status, expected)


def test_a_not_modified_answer_wins_over_range(site):
    """A matching If-None-Match with a Range is still 304."""
    response = call(site, "/hello.txt", {"If-None-Match": ETAG, "Range": "bytes=0-1"})
    assert (response.status, response.body) == (304, b"")


# -- small files kept between requests ------------------------------------------

def test_a_kept_small_file_is_served_again_until_it_changes(site):
    """A second GET reuses the kept answer; an edit (new size or mtime) is seen at once."""
    first, again = call(site, "/hello.txt"), call(site, "/hello.txt")
    assert again is first
    path = os.path.join(site.root, "hello.txt")
    with open(path, "wb") as file:
        file.write(b"Changed!")
    changed = call(site, "/hello.txt")
    assert changed.body == b"Changed!" and fields(changed)["Content-Length"] == "8"
    assert call(site, "/hello.txt", method="HEAD").headers.get("Content-Length") == "8"


def test_a_kept_file_swapped_for_a_symlink_out_of_root_is_refused(site):
    """Replacing a kept file by a symlink to the secret outside gives 404, not the secret."""
    assert call(site, "/hello.txt").body == HELLO
    path = os.path.join(site.root, "hello.txt")
    os.remove(path)
    os.symlink(os.path.join(os.path.dirname(site.root), "secret.txt"), path)
    answer = call(site, "/hello.txt")
    assert answer.status == 404 and SECRET not in body_of(answer)


def test_conditionals_and_ranges_bypass_the_kept_answer(site):
    """A kept file still answers 304 and 206 when the request asks for them."""
    etag = fields(call(site, "/hello.txt"))["ETag"]
    assert call(site, "/hello.txt", {"If-None-Match": etag}).status == 304
    ranged = call(site, "/hello.txt", {"Range": "bytes=0-4"})
    assert (ranged.status, body_of(ranged)) == (206, HELLO[:5])


def test_the_kept_answers_are_bounded(site, monkeypatch):
    """Past CACHE_ENTRIES the oldest kept answer is dropped (and served afresh later)."""
    monkeypatch.setattr(static, "CACHE_ENTRIES", 2)
    first = call(site, "/hello.txt")
    call(site, "/style.css")
    call(site, "/index.html")
    assert call(site, "/hello.txt") is not first
    assert call(site, "/index.html") is call(site, "/index.html")
