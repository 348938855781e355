"""The package's shape: layer rules, the optional wing, stdlib-only imports, module sizes."""

import ast
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "reactor"

#: The layer table (docs/ARCHITECTURE.md shows the same; a test below checks
#: that they agree). A module may import only from its own layer or below.
LAYERS = {
    "errors": 0, "clock": 0, "buffers": 0, "policy": 0, "addresses": 0, "tls_contexts": 0,
    "framing": 0, "framing.base": 0, "framing.delimited": 0, "framing.counted": 0,
    "resp": 0, "resp.codec": 0,
    "http": 0, "http.parser": 0, "http.response_parser": 0, "http.messages": 0,
    "http.router": 0, "http.options": 0, "http.static": 0, "http.head": 0,
    "websocket": 0, "websocket.frames": 0, "websocket.deflate": 0, "websocket.handshake": 0,
    "protect.ratelimit": 0, "protect.auth": 0, "protect.abuselog": 0,
    "timers": 1, "wheel": 1, "protocols": 1, "framed": 1, "dispatch": 1, "resp.protocol": 1,
    "http.bodies": 1, "http.server": 1, "http.deadlines": 1,
    "websocket.protocol": 1, "websocket.server": 1,
    "loop": 2, "poller": 2, "wakeup": 2, "watchers": 2, "debug": 2, "forks": 2,
    "transports": 3, "streams": 3, "slow_consumers": 3, "datagrams": 3, "sockets": 3, "accept": 3,
    "reflection": 3,
    "protect.shaper": 3,
    "tls": 4, "protect.guard": 4, "protect.client_auth": 4, "protect.admission": 4,
    "protect": 4, "protect.datagram_guard": 4,
    "server": 5, "client": 5, "network": 5, "workers": 5, "resp.client": 5, "http.client": 5, "http.pool": 5, "websocket.client": 5,
    "cli": 6, "__main__": 6, "__init__": 6,
    "apps": 6, "apps.echo": 6, "apps.chat": 6, "apps.chat_text": 6, "apps.serving": 6,
    "apps.kv": 6, "apps.kv_commands": 6, "apps.kv_session": 6, "apps.kv_store": 6,
    "apps.kv_aof": 6, "apps.http": 6, "apps.chat_web": 6, "apps.chat_redis": 6,
    "apps.redis_url": 6, "apps.lesson": 6, "lessons": 6,
    "lessons.emfile_spin": 6, "lessons.partial_send": 6, "lessons.half_close": 6,
    "lessons.tls_close": 6, "lessons.timer_drift": 6, "lessons.slow_callback": 6,
    "lessons.lost_wakeup": 6, "lessons.fd_reuse": 6, "lessons.greedy_reader": 6,
    "lessons.unbounded_buffer": 6, "lessons.blocking_dns": 6,
    "trace": 2, "testing": 5, "apps.trace_report": 6,
    "aio": 5, "aio.loop": 5, "aio.sockets": 5, "aio.transports": 5, "aio.unix": 5,
}

#: The longest a module may grow (STYLE: one concept per file, a few hundred
#: lines; docstrings are a third of most modules, and count).
MAX_MODULE_LINES = 460


def module_name(path):
    """Return the dotted name of a module under reactor/ (``protect.guard``, ``__init__``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def package_imports(path):
    """Yield (line, module) for every import of a reactor module in ``path``, dotted."""
    here = list(path.relative_to(PACKAGE).parent.parts)

    def resolve(base, names):
        for name in names:
            candidate = ".".join(base + [name])
            yield candidate if candidate in LAYERS else (".".join(base) or "__init__")

    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level > 0:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else list(here)
            elif node.module and node.module.split(".")[0] == "reactor":
                base = []
            else:
                continue
            module = (node.module or "").split(".")
            if node.level == 0:
                module = module[1:]
            base = base + [part for part in module if part]
            for name in resolve(base, [alias.name for alias in node.names]):
                yield node.lineno, name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "reactor":
                    yield node.lineno, ".".join(parts[1:]) or "__init__"


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    """Each module in reactor/ appears in the layer table (add new ones deliberately)."""
    missing = sorted({module_name(p) for p in modules()} - set(LAYERS))
    assert not missing, "add these modules to LAYERS in %s: %s" % (__file__, missing)
    stale = sorted(set(LAYERS) - {module_name(p) for p in modules()})
    assert not stale, "LAYERS names modules that do not exist: %s" % stale


def test_no_module_imports_upward():
    """No module imports from a higher layer (errors excepted, which everyone may use)."""
    upward = []
    for path in modules():
        own = LAYERS[module_name(path)]
        for line, imported in package_imports(path):
            assert imported in LAYERS, "%s:%d imports unknown %s" % (path, line, imported)
            if LAYERS[imported] > own:
                upward.append("%s:%d imports %s (layer %d > %d)"
                              % (path.relative_to(PACKAGE), line, imported, LAYERS[imported], own))
    assert not upward, "\n".join(upward)


def test_the_import_checker_sees_an_upward_edge(tmp_path):
    """The checker resolves relative and dotted imports (so the rule above can fail)."""
    fake = PACKAGE / "protect" / "guard.py"
    names = {name for _, name in package_imports(fake)}
    assert {"errors", "framed", "policy", "protocols", "protect.shaper"} <= names
    assert {name for _, name in package_imports(PACKAGE / "server.py")} >= {"protect", "tls"}


def test_architecture_doc_shows_the_same_layers():
    """docs/ARCHITECTURE.md's layer table lists exactly the modules of LAYERS, at the same layer."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    documented = {}
    for match in re.finditer(r"^\| L(\d) \| ([^|]+)\|", text, re.MULTILINE):
        for name in re.findall(r"`([\w.]+)`", match.group(2)):
            documented[name] = int(match.group(1))
    assert documented == LAYERS


def test_modules_stay_small():
    """No module passes MAX_MODULE_LINES lines: a longer one hides a second concept."""
    long = ["%s: %d lines" % (path.relative_to(PACKAGE), count) for path in modules()
            for count in [len(path.read_text(encoding="utf-8").splitlines())]
            if count > MAX_MODULE_LINES]
    assert not long, long


def test_core_serves_without_the_protect_and_apps_wings(tmp_path):
    """A copy of reactor/ without protect/ and apps/ imports, serves plain TCP and refuses
    protections with ProtectionsUnavailableError."""
    import shutil
    vendor = tmp_path / "vendor"
    shutil.copytree(str(PACKAGE), str(vendor / "reactor"),
                    ignore=shutil.ignore_patterns("__pycache__", "protect", "apps"))
    script = """
import sys
sys.path.insert(0, sys.argv[1])
import reactor
assert not hasattr(reactor, "protect")
loop = reactor.Reactor()

class Echo(reactor.Protocol):
    def data_received(self, data):
        self.transport.write(data)

server = loop.listen_tcp(Echo, "127.0.0.1", 0)
got = []

class Client(reactor.Protocol):
    def connection_made(self, transport):
        super().connection_made(transport)
        transport.write(b"core only")
    def data_received(self, data):
        got.append(data)
        loop.stop()

loop.connect_tcp(Client, "127.0.0.1", server.addresses[0][1])
loop.call_later(5, loop.stop)
loop.run(stop_on_signals=False)
assert b"".join(got) == b"core only", got
try:
    loop.listen_tcp(Echo, "127.0.0.1", 0, limits=reactor.Limits(max_per_ip=2))
except reactor.ProtectionsUnavailableError as exc:
    print("refused:", exc)
loop.close()
"""
    result = subprocess.run([sys.executable, "-I", "-c", script, str(vendor)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "refused: max_per_ip need reactor/protect/" in result.stdout


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names needs 3.10+")
def test_package_imports_only_the_standard_library():
    """reactor/ imports nothing outside the standard library (the vendoring promise)."""
    checker = ROOT / ".ci" / "check_stdlib.py"
    result = subprocess.run([sys.executable, str(checker), str(PACKAGE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
