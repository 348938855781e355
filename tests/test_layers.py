"""The package's shape: layer rules, stdlib-only imports, and the Python 3.8 floor."""

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "reactor"

#: The layer table of DESIGN.md; a module may import only from its own layer or below.
LAYERS = {
    "errors": 0, "clock": 0, "buffers": 0, "framing": 0, "policy": 0,
    "ratelimit": 0, "access": 0, "auth": 0, "monitor": 0,
    "timers": 1, "wheel": 1, "protocols": 1, "framed": 1,
    "loop": 2,
    "streams": 3, "tcp": 3, "unix": 3, "udp": 3, "datagrams": 3,
    "tls": 4, "guard": 4, "client_auth": 4,
    "server": 5, "client": 5, "network": 5,
    "cli": 6, "__main__": 6, "apps": 6, "__init__": 6,
}


def package_imports(path):
    """Yield (line, module) for every import of a reactor module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level > 0:
                if node.module:
                    yield node.lineno, node.module.split(".")[0]
                else:
                    for alias in node.names:
                        yield node.lineno, alias.name
            elif node.module and node.module.split(".")[0] == "reactor":
                parts = node.module.split(".")
                yield node.lineno, parts[1] if len(parts) > 1 else "__init__"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "reactor":
                    yield node.lineno, parts[1] if len(parts) > 1 else "__init__"


def module_name(path):
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def test_every_module_has_a_layer():
    """Each module in reactor/ appears in the layer table (add new ones deliberately)."""
    missing = sorted({module_name(p) for p in PACKAGE.rglob("*.py")} - set(LAYERS))
    assert not missing, "add these modules to LAYERS in %s: %s" % (__file__, missing)


def test_no_module_imports_upward():
    """No module imports from a higher layer (errors excepted, which everyone may use)."""
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = LAYERS.get(module_name(path), 99)
        for line, imported in package_imports(path):
            if imported in LAYERS and LAYERS[imported] > own:
                upward.append("%s:%d imports %s (layer %d > %d)"
                              % (path.name, line, imported, LAYERS[imported], own))
    assert not upward, "\n".join(upward)


@pytest.mark.skipif(sys.version_info < (3, 10), reason="sys.stdlib_module_names needs 3.10+")
def test_package_imports_only_the_standard_library():
    """reactor/ imports nothing outside the standard library (the vendoring promise)."""
    checker = PACKAGE.parent / ".ci" / "check_stdlib.py"
    result = subprocess.run([sys.executable, str(checker), str(PACKAGE)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
