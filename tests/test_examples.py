"""examples/ runs, and docs/LEARN.md points only at code and tests that exist.

Every program in ``examples/`` has a ``--selftest`` mode that starts its
server and client in one process, checks the result and exits 0; each is
run here as a reader would run it (``python3 examples/NAME.py``), from the
repository root, with nothing on ``PYTHONPATH``. docs/LEARN.md cites code as
``file.py:Qualified.name`` (relative to ``reactor/``) and tests as
``tests/file.py::test_name``; every citation is resolved here, so a rename
that leaves the learning path pointing nowhere fails the suite.
"""

import ast
import functools
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
LEARN = os.path.join(ROOT, "docs", "LEARN.md")
TIMEOUT_SECONDS = 20
MAX_EXAMPLE_LINES = 80
NAMES = sorted(name[:-3] for name in os.listdir(EXAMPLES)
               if name.endswith(".py") and not name.startswith("_"))


def read(path):
    with open(path, encoding="utf-8") as source:
        return source.read()


def test_the_ten_examples_are_there():
    """The examples of the learning path, from an echo server to a rate-limited API, exist."""
    assert set(NAMES) >= {"echo_server", "heartbeat", "chat", "proxy", "udp_ping", "tls_client",
                          "http_hello", "websocket_broadcast", "kv_expiry", "rate_limited_api"}


@pytest.mark.parametrize("name", NAMES)
def test_example_is_short_and_explains_itself_before_its_usage(name):
    """Each example is at most 80 lines, docstring included, and says what it teaches first."""
    source = read(os.path.join(EXAMPLES, name + ".py"))
    assert len(source.splitlines()) <= MAX_EXAMPLE_LINES, name
    docstring = ast.get_docstring(ast.parse(source)).splitlines()
    usage = next(number for number, line in enumerate(docstring)
                 if "python3 examples/%s.py" % name in line)
    assert len([line for line in docstring[:usage] if line.strip()]) >= 3, name


@pytest.mark.parametrize("name", NAMES)
def test_example_says_what_it_teaches_and_how_to_run_it(name):
    """Each example opens with a docstring: what it teaches, how to run it and self-test it."""
    path = os.path.join(EXAMPLES, name + ".py")
    docstring = ast.get_docstring(ast.parse(read(path)))
    assert docstring and docstring.splitlines()[0].endswith(".")
    assert "Teaches" in docstring, name
    assert "python3 examples/%s.py" % name in docstring
    assert "--selftest" in docstring


@pytest.mark.parametrize("name", NAMES)
def test_example_selftest_passes(name):
    """``python3 examples/NAME.py --selftest`` exits 0 and says ``selftest ok``."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("REACTOR_DEBUG", None)
    result = subprocess.run([sys.executable, os.path.join("examples", name + ".py"), "--selftest"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            timeout=TIMEOUT_SECONDS, universal_newlines=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "selftest ok" in result.stdout, result.stdout + result.stderr


# -- docs/LEARN.md ----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def definitions(path):
    """Return the dotted names defined in a module: classes, functions, methods, globals."""
    names = set()

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(prefix + node.name)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, prefix + node.name + ".")
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(prefix + t.id for t in targets if isinstance(t, ast.Name))
    visit(ast.parse(read(path)).body, "")
    return names


def test_learn_cites_only_code_that_exists():
    """Every ``file.py:Name.attr`` in docs/LEARN.md names a file of reactor/ that defines it."""
    missing = []
    cited = re.findall(r"`([\w/]+\.py):([\w.]+)", read(LEARN))
    assert len(cited) > 50, "LEARN.md should cite code by file and function name"
    for module, name in cited:
        path = os.path.join(ROOT, module if module.startswith("examples/") else "reactor/" + module)
        if not os.path.isfile(path):
            missing.append("%s (no such file)" % module)
        elif name not in definitions(path):
            missing.append("%s:%s" % (module, name))
    assert not missing, missing


def test_learn_cites_only_files_that_exist():
    """Every bare ``file.py`` or ``folder/`` of reactor/ named in docs/LEARN.md exists."""
    text = read(LEARN)
    missing = []
    for path in set(re.findall(r"`((?:protect/|apps/)?\w+\.py)`", text)):
        if not os.path.isfile(os.path.join(ROOT, "reactor", path)):
            missing.append(path)
    for path in set(re.findall(r"\b((?:examples|docs|tests|reactor)/[\w/.]*\w)", text)):
        if not os.path.exists(os.path.join(ROOT, path)):
            missing.append(path)
    assert not missing, sorted(missing)


def test_learn_cites_only_tests_that_exist():
    """Every ``tests/file.py::[Class::]test_name``, and every ``test_...`` name, in LEARN.md exists."""
    text = read(LEARN)
    missing = []
    cited = re.findall(r"tests/(\w+\.py)::(?:(\w+)::)?(test_\w+)", text)
    assert len(cited) > 20, "LEARN.md should cite the tests that prove its claims"
    for module, test_class, name in cited:
        path = os.path.join(ROOT, "tests", module)
        defined = definitions(path) if os.path.isfile(path) else set()
        # A test class may inherit its tests from a contract mixin in the same file.
        if (test_class and test_class not in defined) or name not in {
                qualified.rpartition(".")[2] for qualified in defined}:
            missing.append("tests/%s::%s%s" % (module, test_class + "::" if test_class else "",
                                               name))
    every_test = set()
    for module in os.listdir(os.path.join(ROOT, "tests")):
        if module.startswith("test_") and module.endswith(".py"):
            every_test |= {name.rpartition(".")[2]
                           for name in definitions(os.path.join(ROOT, "tests", module))}
    missing += sorted(name for name in set(re.findall(r"\b(test_\w+)\b(?!\.py)", text))
                      if name not in every_test)
    assert not missing, missing


def reading_order(lines, pattern):
    return [match.groups() for match in map(re.compile(pattern).match, lines) if match]


def test_learn_follows_the_reading_order_of_the_package_docstring():
    """docs/LEARN.md walks the same stops, in the same order, with the same questions."""
    import reactor
    package = reading_order(reactor.__doc__.splitlines(), r"\s*(\d+)\. (\S+\.py)\s+(.+)$")
    learn = reading_order(read(LEARN).splitlines(), r"\s*(\d+)\. \*\*`(\S+\.py)`\*\*: (.+)$")
    assert len(package) >= 10
    assert learn == package
