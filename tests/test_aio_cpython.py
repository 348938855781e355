"""CPython's own asyncio test mixins, run against reactor.aio (the way uvloop proves itself).

Each class below is one of CPython's loop-agnostic mixins from
``Lib/test/test_asyncio`` with ``create_event_loop`` returning a
``reactor.aio`` loop. They ship with the interpreter in the ``test``
package; where that package is missing (some distributions split it out)
the whole module is skipped, saying so. Tests we choose not to pass are
listed in ``NOT_COPIED`` with the reason, and skipped with it.
"""

import asyncio
import importlib
import os
import shutil
import tempfile
import sys
import unittest

import pytest

try:
    test_events = importlib.import_module("test.test_asyncio.test_events")
    test_sock_lowlevel = importlib.import_module("test.test_asyncio.test_sock_lowlevel")
    test_utils = importlib.import_module("test.test_asyncio.utils")
except ImportError as exc:  # pragma: no cover - depends on the interpreter's packaging
    pytest.skip("this interpreter does not ship CPython's test package (test.test_asyncio): %s"
                % exc, allow_module_level=True)

import reactor.aio

_start_dir = os.getcwd()


def setup_module(module):
    """CPython's suites write scratch files (support.TESTFN) in the working directory: use a temp one."""
    module._scratch = tempfile.mkdtemp(prefix="reactor-aio-cpython-")
    os.chdir(module._scratch)


def teardown_module(module):
    os.chdir(_start_dir)
    shutil.rmtree(module._scratch, ignore_errors=True)

#: test name -> why reactor.aio does not copy that semantic of asyncio's loop.
NOT_COPIED = {
}


def _not_copied(cls):
    """Skip, with its reason, every test of ``cls`` named in NOT_COPIED."""
    for name, reason in NOT_COPIED.items():
        if hasattr(cls, name):
            setattr(cls, name, unittest.skip(reason)(getattr(cls, name)))
    return cls


class _ReactorLoop:
    def create_event_loop(self):
        return reactor.aio.new_event_loop()


@_not_copied
class TestEventLoop(_ReactorLoop, test_events.UnixEventLoopTestsMixin, test_utils.TestCase):
    """test_events.EventLoopTestsMixin (with its Unix additions) on reactor.aio."""


@_not_copied
class TestSubprocess(_ReactorLoop, test_events.SubprocessTestsMixin, test_utils.TestCase):
    """test_events.SubprocessTestsMixin on reactor.aio."""

    def setUp(self):
        super().setUp()
        self.loop = self.create_event_loop()
        self.set_event_loop(self.loop)
        if sys.version_info < (3, 12):       # 3.12 picks a pidfd or thread watcher itself
            watcher = asyncio.ThreadedChildWatcher()
            watcher.attach_loop(self.loop)
            asyncio.set_child_watcher(watcher)

    def tearDown(self):
        if sys.version_info < (3, 12):
            asyncio.set_child_watcher(None)
        super().tearDown()


@_not_copied
class TestSockets(_ReactorLoop, test_sock_lowlevel.BaseSockTestsMixin, test_utils.TestCase):
    """test_sock_lowlevel.BaseSockTestsMixin on reactor.aio."""


# -- the stream, server, sendfile and TLS suites that take a loop ----------------------------

def _optional(name):
    """Import test.test_asyncio.NAME, or None on a Python that does not have that suite."""
    try:
        return importlib.import_module("test.test_asyncio." + name)
    except ImportError:
        return None


test_sendfile = _optional("test_sendfile")
test_server = _optional("test_server")
test_buffered_proto = _optional("test_buffered_proto")
test_sslproto = _optional("test_sslproto")
test_streams = _optional("test_streams")
test_ssl = _optional("test_ssl")


class _ReactorPolicy:
    """For suites that call asyncio.new_event_loop() themselves: make it ours meanwhile."""

    def setUp(self):
        asyncio.set_event_loop_policy(reactor.aio.EventLoopPolicy())
        self.addCleanup(asyncio.set_event_loop_policy, None)
        super().setUp()


class _ReactorNewLoop:
    def new_loop(self):
        return reactor.aio.new_event_loop()


if test_sendfile is not None:
    @_not_copied
    class TestSendfile(_ReactorLoop, test_sendfile.SendfileTestsBase, test_utils.TestCase):
        """test_sendfile's SendfileMixin and SockSendfileMixin on reactor.aio."""

if test_server is not None:
    @_not_copied
    class TestStartServer(_ReactorNewLoop, test_server.SelectorStartServerTests):
        """test_server's start_server tests on reactor.aio."""

if test_buffered_proto is not None:
    @_not_copied
    class TestBufferedProtocol(_ReactorNewLoop, test_buffered_proto.BufferedProtocolSelectorTests):
        """test_buffered_proto on reactor.aio."""

if test_sslproto is not None:
    @_not_copied
    class TestStartTLS(_ReactorNewLoop, test_sslproto.SelectorStartTLSTests):
        """test_sslproto's start_tls and TLS-over-our-transport tests on reactor.aio."""

if test_streams is not None:
    @_not_copied
    class TestStreams(_ReactorPolicy, test_streams.StreamTests):
        """test_streams (StreamReader/Writer, start_server, open_connection) on reactor.aio."""

if test_ssl is not None:
    @_not_copied
    class TestSSL(_ReactorPolicy, test_ssl.TestSSL):
        """test_ssl (asyncio's TLS stress tests, 3.11+) on reactor.aio."""
