"""python -m reactor http serving a page to a real headless Chromium.

The page needs a stylesheet, a script and an image from the same server;
the script changes the page, so the DOM Chromium dumps proves the script
was fetched and run (served as JavaScript: with ``nosniff`` a wrong type
would block it), and the access log shows every file the browser asked
for. Chromium comes from Debian's chromium package; without it the test
is skipped and says so, except in CI (CI=true), where .ci/run installs it.
"""

import re
import signal
import subprocess

from tests.support.processes import need_binary, start_cli_on_port

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>reactor</title>
<link rel="stylesheet" href="style.css"></head>
<body><h1 id="title">served by reactor</h1><img src="img/dot.png" alt="dot">
<script src="app.js"></script></body></html>
"""
SCRIPT = b'document.getElementById("title").textContent = "script ran: " + ' \
         b'getComputedStyle(document.body).marginLeft;\n'
STYLE = b"body { margin-left: 17px; }\n"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--virtual-time-budget=5000"]


def test_chromium_loads_a_page_with_its_style_script_and_image(tmp_path):
    """The browser gets the page, runs its script with the stylesheet applied, fetches the image."""
    chromium = need_binary("chromium", "chromium")
    root = tmp_path / "site"
    (root / "img").mkdir(parents=True)
    (root / "index.html").write_bytes(PAGE)
    (root / "app.js").write_bytes(SCRIPT)
    (root / "style.css").write_bytes(STYLE)
    (root / "img" / "dot.png").write_bytes(PNG)
    process, (host, port) = start_cli_on_port("http", "--port", "0", "--root", str(root),
                                              "--access-log", before=1)
    try:
        result = subprocess.run(
            [chromium] + CHROMIUM_FLAGS + ["--user-data-dir=%s" % (tmp_path / "profile"),
                                           "--dump-dom", "http://127.0.0.1:%d/" % port],
            capture_output=True, timeout=60)
    finally:
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=20)
    assert result.returncode == 0, result.stderr[-2000:]
    assert b"script ran: 17px" in result.stdout, result.stdout[-2000:]
    served = set(re.findall(r'"GET (\S+) HTTP/1.1" 200 ', log))
    assert {"/", "/style.css", "/app.js", "/img/dot.png"} <= served, log
