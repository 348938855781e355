"""The chat page in a real headless Chromium, driven over the DevTools Protocol by our own client.

Chromium loads ``http://127.0.0.1:W/`` from ``python -m reactor chat
--web-port W``; a TCP member talks with the browser member both ways; the
page throws no JavaScript error and logs no console error; a screenshot is
saved in the test's temp dir. The DevTools Protocol is JSON over a
WebSocket, so the test drives Chromium with ``connect_websocket``, a
second test of the client. Chromium comes from Debian's chromium package;
outside CI its absence skips the test with the reason (in CI, .ci/run
installs it and its absence fails).
"""

import base64
import json
import re
import socket
import subprocess
import time

import pytest

import reactor
from reactor.websocket.client import connect_websocket
from reactor.websocket.protocol import WebSocketProtocol
from tests.support.loops import run_until
from tests.support.processes import need_binary, start_cli_on_port, stop_processes

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--remote-debugging-port=0"]


class DevTools(WebSocketProtocol):
    """A DevTools Protocol session: numbered calls and their results, events in order."""

    ping_interval = None
    max_message_bytes = 64 * 1024 * 1024          # screenshots are large

    def __init__(self):
        self.next_id, self.results, self.events = 0, {}, []

    def message_received(self, data, is_text):
        message = json.loads(data)
        if "id" in message:
            self.results[message["id"]] = message
        else:
            self.events.append(message)

    def call(self, loop, method, session=None, **params):
        """Send one command and run the loop until its answer; return its result."""
        self.next_id += 1
        number = self.next_id
        message = {"id": number, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.send(json.dumps(message))
        run_until(loop, lambda: number in self.results, timeout=20)
        answer = self.results.pop(number)
        assert "error" not in answer, answer
        return answer["result"]


def start_chromium(chromium, profile):
    """Start Chromium with a DevTools port; return the process and its browser WebSocket URL."""
    process = subprocess.Popen([chromium] + CHROMIUM_FLAGS + ["--user-data-dir=%s" % profile,
                                                              "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        match = re.search(r"DevTools listening on (ws://\S+)", line)
        if match:
            return process, match.group(1)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise AssertionError("Chromium gave no DevTools URL")


def page_text(devtools, loop, session, expression):
    return devtools.call(loop, "Runtime.evaluate", session, expression=expression,
                         returnByValue=True)["result"].get("value")


def wait_for_page(devtools, loop, session, text, timeout=10.0):
    """Wait until the page's log shows ``text``; return the log."""
    deadline = time.monotonic() + timeout
    while True:
        log = page_text(devtools, loop, session, "document.getElementById('log').innerText")
        if log and text in log:
            return log
        assert time.monotonic() < deadline, "page never showed %r; it shows %r" % (text, log)
        loop.run_once(0.05)


def test_a_browser_member_and_an_nc_member_chat_in_chromium(tmp_path):
    """Chromium joins as carol, nc as dave; lines cross both ways; no JS errors; a screenshot."""
    chromium = need_binary("chromium", "chromium")
    chat, (host, port) = start_cli_on_port("chat", "--port", "0", "--web-port", "0")
    web = int(re.search(r":(\d+) \(http\)", chat.stderr.readline()).group(1))
    browser, url = start_chromium(chromium, tmp_path / "profile")
    loop = reactor.Reactor()
    devtools, failures = DevTools(), []
    nc = None
    try:
        connect_websocket(loop, url, lambda: devtools, compression=False,
                          on_error=failures.append)
        run_until(loop, lambda: failures or getattr(devtools, "transport", None), timeout=20)
        assert not failures, failures
        target = devtools.call(loop, "Target.createTarget", url="about:blank")["targetId"]
        session = devtools.call(loop, "Target.attachToTarget", targetId=target,
                                flatten=True)["sessionId"]
        devtools.call(loop, "Runtime.enable", session)
        devtools.call(loop, "Log.enable", session)
        devtools.call(loop, "Page.enable", session)
        devtools.call(loop, "Page.navigate", session, url="http://127.0.0.1:%d/" % web)
        wait_for_page(devtools, loop, session, "welcome to reactor chat; enter a nick")
        page_text(devtools, loop, session, "document.getElementById('line').value = 'carol';"
                  "document.getElementById('form').requestSubmit(); true")
        wait_for_page(devtools, loop, session, "* you are carol, in #lobby")
        nc = socket.create_connection(("127.0.0.1", port), timeout=10)
        nc.sendall(b"dave\n")
        wait_for_page(devtools, loop, session, "* dave joined #lobby")
        nc.sendall(b"hello carol, from nc\n")
        wait_for_page(devtools, loop, session, "dave: hello carol, from nc")
        page_text(devtools, loop, session, "document.getElementById('line').value = "
                  "'hi dave, from Chromium'; document.getElementById('form').requestSubmit(); true")
        heard = b""
        while b"carol: hi dave, from Chromium\n" not in heard:
            chunk = nc.recv(65536)
            assert chunk, heard
            heard += chunk
        who = page_text(devtools, loop, session, "document.getElementById('who').innerText")
        assert "carol" in who and "dave" in who
        shot = devtools.call(loop, "Page.captureScreenshot", session, format="png")["data"]
        (tmp_path / "chat.png").write_bytes(base64.b64decode(shot))
        assert (tmp_path / "chat.png").read_bytes().startswith(b"\x89PNG")
        errors = [event for event in devtools.events
                  if event["method"] == "Runtime.exceptionThrown"
                  or (event["method"] == "Log.entryAdded"
                      and event["params"]["entry"]["level"] == "error")
                  or (event["method"] == "Runtime.consoleAPICalled"
                      and event["params"]["type"] == "error")]
        assert errors == []
    finally:
        if nc is not None:
            nc.close()
        if getattr(devtools, "transport", None) is not None:
            devtools.transport.abort()
        loop.run_once(0)
        loop.close()
        browser.kill()
        browser.communicate(timeout=20)
        stop_processes([chat])
