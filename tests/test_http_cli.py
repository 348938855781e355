"""python -m reactor http as users run it: curl against a real site in a temp dir.

curl comes from Debian's curl package; without it these tests are skipped
and say so, except in CI (CI=true), where .ci/run installs it and its
absence fails the test. Raw sockets cover what curl will not send.
"""

import hashlib
import os
import signal
import socket
import subprocess

import pytest

from tests.support.certs import CA, cert
from tests.support.processes import need_binary, run_cli, start_cli_on_port, stop_processes

SECRET = b"the secret outside the root\n"


@pytest.fixture
def site(tmp_path):
    """A root with pages, a big file and a subfolder; a secret file just outside it."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(b"<h1>home</h1>\n")
    (root / "hello.txt").write_bytes(b"Hello, world!")
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<p>docs</p>\n")
    (root / "big.bin").write_bytes(os.urandom(8 * 1024 * 1024 + 17))
    return root


@pytest.fixture
def serve():
    """Start ``python -m reactor http ARGS``; return its port; stop it at the end."""
    processes = []

    def start(*args):
        process, (host, port) = start_cli_on_port("http", "--port", "0", *args, before=1)
        processes.append(process)
        return port
    yield start
    stop_processes(processes)


def curl(*args, check=True):
    """Run curl quietly; return the CompletedProcess (stdout as bytes)."""
    result = subprocess.run([need_binary("curl", "curl"), "-sS", "--max-time", "20"] + list(args),
                            capture_output=True, timeout=30)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def headers_of(output):
    """Parse ``curl -i``/``-I`` output: (status, {lower name: value}) of the last head."""
    head = output.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), {name.lower(): value for name, value in fields.items()}


def raw_exchange(port, request):
    """Send raw bytes, read until the server closes; return everything it sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk


def test_curl_gets_files_the_index_and_headers(site, serve):
    """GET serves bytes with type, length, ETag and Last-Modified; / and /docs/ give index.html."""
    port = serve("--root", str(site))
    base = "http://127.0.0.1:%d" % port
    assert curl(base + "/hello.txt").stdout == b"Hello, world!"
    assert curl(base + "/").stdout == b"<h1>home</h1>\n"
    assert curl(base + "/docs/").stdout == b"<p>docs</p>\n"
    status, fields = headers_of(curl("-i", base + "/hello.txt").stdout)
    assert status == 200
    assert fields["content-type"].startswith("text/plain")
    assert fields["content-length"] == "13"
    assert fields["server"] == "reactor" and fields["date"].endswith(" GMT")
    assert "etag" in fields and "last-modified" in fields


def test_curl_head_ranges_and_conditionals(site, serve):
    """HEAD has no body; a range gives 206, an unsatisfiable one 416; a matching ETag 304."""
    port = serve("--root", str(site))
    url = "http://127.0.0.1:%d/hello.txt" % port
    head = curl("-I", url).stdout
    status, fields = headers_of(head)
    assert (status, fields["content-length"]) == (200, "13")
    assert head.endswith(b"\r\n\r\n")
    ranged = curl("-i", "-r", "7-11", url).stdout
    assert headers_of(ranged)[0] == 206 and ranged.endswith(b"world")
    assert headers_of(ranged)[1]["content-range"] == "bytes 7-11/13"
    assert curl("-r", "-6", url).stdout == b"world!"
    refused = curl("-i", "-r", "100-200", url).stdout
    assert headers_of(refused)[0] == 416
    assert headers_of(refused)[1]["content-range"] == "bytes */13"
    etag = fields["etag"]
    assert headers_of(curl("-i", "-H", "If-None-Match: " + etag, url).stdout)[0] == 304
    since = fields["last-modified"]
    assert headers_of(curl("-i", "-H", "If-Modified-Since: " + since, url).stdout)[0] == 304


def test_big_file_arrives_whole_and_keep_alive_reuses_the_connection(site, serve):
    """8 MiB arrive byte for byte; two URLs in one curl run share one connection."""
    port = serve("--root", str(site))
    base = "http://127.0.0.1:%d" % port
    body = curl(base + "/big.bin").stdout
    assert hashlib.sha256(body).digest() == hashlib.sha256((site / "big.bin").read_bytes()).digest()
    verbose = curl("-v", base + "/hello.txt", base + "/index.html").stderr
    assert b"Re-using existing connection" in verbose or b"Reusing existing" in verbose


@pytest.mark.parametrize("path", [
    "/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2E%2E%2Fsecret.txt",
    "/docs/../../secret.txt", "/..\\secret.txt", "/%5c..%5csecret.txt", "/hello.txt%00",
    "//../secret.txt",
])
def test_no_traversal_reaches_the_secret_outside_the_root(site, serve, path):
    """Every traversal attempt gets 400, 403 or 404 and never the secret's bytes."""
    port = serve("--root", str(site))
    answer = raw_exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                          % path.encode())
    assert SECRET not in answer
    assert answer.split(b" ")[1] in (b"400", b"403", b"404"), answer[:100]


def test_bad_requests_get_their_status_and_a_close_and_the_server_lives(site, serve):
    """Smuggling and limit cases are answered and closed; the next client is served."""
    port = serve("--root", str(site))
    cases = [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked"
         b"\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", b"400"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 101 + b"\r\n", b"431"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", b"501"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", b"413"),
        (b"DELETE /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
    ]
    for request, status in cases:
        answer = raw_exchange(port, request)
        assert answer.split(b" ")[1] == status, (request[:60], answer[:200])
        if status != b"405":
            assert b"\r\nConnection: close\r\n" in answer
    assert curl("http://127.0.0.1:%d/hello.txt" % port).stdout == b"Hello, world!"


def test_https_with_the_tls_flags(site, serve):
    """--tls-cert/--tls-key serve HTTPS that curl verifies against the test CA."""
    certfile, keyfile = cert("server")
    port = serve("--root", str(site), "--tls-cert", certfile, "--tls-key", keyfile)
    result = curl("--cacert", CA, "--resolve", "localhost:%d:127.0.0.1" % port,
                  "https://localhost:%d/hello.txt" % port)
    assert result.stdout == b"Hello, world!"
    big = curl("--cacert", CA, "--resolve", "localhost:%d:127.0.0.1" % port,
               "https://localhost:%d/big.bin" % port).stdout
    assert len(big) == 8 * 1024 * 1024 + 17


def test_bearer_token_file_requires_authorization(site, serve, tmp_path):
    """--auth-token-file answers 401 without the token and serves with it."""
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nsesame\n")
    process_port = serve("--root", str(site), "--auth-token-file", str(tokens))
    url = "http://127.0.0.1:%d/hello.txt" % process_port
    denied = curl("-i", url).stdout
    assert headers_of(denied)[0] == 401
    assert headers_of(denied)[1]["www-authenticate"].startswith("Bearer")
    assert headers_of(denied)[1]["connection"] == "close"          # a guess costs a connection
    assert curl("-H", "Authorization: Bearer sesame", url).stdout == b"Hello, world!"


def test_access_log_lines_in_common_log_format(site):
    """Each request is one 'reactor.access' line: host - - [date] "request" status bytes."""
    process, (host, port) = start_cli_on_port("http", "--port", "0", "--root", str(site),
                                              "--access-log", before=1)
    try:
        curl("http://127.0.0.1:%d/hello.txt" % port)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0
    lines = [line for line in err.splitlines() if "reactor.access" in line]
    assert len(lines) == 1
    assert '127.0.0.1 - - [' in lines[0] and '] "GET /hello.txt HTTP/1.1" 200 13' in lines[0]


@pytest.mark.parametrize("args, message", [
    (["--root", "/no/such/dir"], "--root /no/such/dir is not a directory"),
    (["--max-body", "0"], "--max-body must be"),
    (["--header-timeout", "-1"], "--header-timeout must be"),
    (["--psk-file", "x"], "use --auth-token-file, not --psk-file"),
])
def test_bad_options_say_which_and_why(args, message):
    """A bad option is one line naming it, exit status 1, nothing listening."""
    result = run_cli("http", "--port", "0", *args)
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
